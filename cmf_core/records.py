"""Records as plain dicts and back: the wire form of export bundles and the REST API.

Each dict has a ``kind`` (``pipeline``, ``stage``, ``artifact``, ``location``, ``execution``,
``event``, ``metric``, ``energy``) and the record's fields; mappings and enums become JSON values.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from cmf_core.errors import InvalidInputError
from cmf_core.model import (
    Artifact,
    ArtifactLocation,
    EnergyRecord,
    Event,
    Execution,
    LineageEvent,
    Metric,
    Pipeline,
    Record,
    Stage,
)
from cmf_core.model._base import as_dict

KINDS: dict[str, type] = {
    "pipeline": Pipeline,
    "stage": Stage,
    "artifact": Artifact,
    "location": ArtifactLocation,
    "execution": Execution,
    "event": Event,
    "metric": Metric,
    "energy": EnergyRecord,
    "lineage_event": LineageEvent,
}
_KIND_OF = {cls: kind for kind, cls in KINDS.items()}


def record_to_dict(record: Record) -> dict[str, Any]:
    kind = _KIND_OF.get(type(record))
    if kind is None:
        raise InvalidInputError(f"{type(record).__name__} is not a CMF record")
    return {"kind": kind, **as_dict(record)}


def record_from_dict(data: dict[str, Any]) -> Record:
    if not isinstance(data, dict):
        raise InvalidInputError(f"a record must be a JSON object, got {type(data).__name__}")
    fields = dict(data)
    kind = fields.pop("kind", None)
    cls = KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise InvalidInputError(
            f"unknown record kind {kind!r}; expected one of {', '.join(KINDS)}")
    try:
        return cls(**fields)
    except TypeError as e:
        raise InvalidInputError(f"bad {kind} record: {_field_problem(cls, fields) or e}"
                                ) from None


def _field_problem(cls: type, fields: dict[str, Any]) -> str | None:
    """What is wrong with the field names of ``fields`` for record class ``cls``, in the
    record's terms (not Python's keyword-argument message)."""
    known = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(fields) - known.keys())
    missing = [name for name, f in known.items() if name not in fields
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if not (unknown or missing):
        return None
    problems = ([f"unknown field(s) {', '.join(unknown)}"] if unknown else []) + (
        [f"missing field(s) {', '.join(missing)}"] if missing else [])
    return f"{'; '.join(problems)} (its fields: {', '.join(known)})"
