"""Validate OpenLineage events (spec 2-0-2) and their facets, offline.

An event is checked in two layers, as an OpenLineage consumer would:

1. the event against ``OpenLineage.json`` (``RunEvent``, ``DatasetEvent`` or ``JobEvent``,
   with the spec's ``oneOf`` semantics), ``$ref`` resolved through a local
   :class:`referencing.Registry` built from the vendored ``spec/`` files: never the network;
2. every *known* facet against its own schema, chosen by its key and where it sits (run, job,
   dataset, input or output facets): the spec's facets (``parent``, ``errorMessage``,
   ``schema``, ...) and CMF's (``cmf_params``, ``cmf_artifact``, ...). Unknown custom facets
   only need what every facet needs (``_producer`` and ``_schemaURL``). A job or dataset facet
   marked ``"_deleted": true`` is a deletion marker and is not checked against its schema.

Formats are checked strictly: ``uuid`` (8-4-4-4-12 hex), ``date-time`` (RFC 3339: date, time
*and* UTC offset) and ``uri`` (a scheme, no spaces).

Speed: every schema is compiled once per process into plain predicates
(:mod:`cmf_core.openlineage.fastschema`); ``jsonschema`` is consulted only for events that
fail, to name each problem by its JSON path, e.g. ``run.runId: 'abc' is not a UUID``.
"""

from __future__ import annotations

import ast
import enum
import functools
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

import attr
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource

from cmf_core.errors import InvalidEventError
from cmf_core.openlineage import facets as cmf_facets
from cmf_core.openlineage.fastschema import Check, SchemaCompiler, UnsupportedSchema
from cmf_core.openlineage.times import is_date_time

SPEC_VERSION = "2-0-2"
SPEC_URL = f"https://openlineage.io/spec/{SPEC_VERSION}/OpenLineage.json"

# \Z, not $: "$" also matches before a trailing newline
_UUID = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S*\Z")


class EventKind(enum.StrEnum):
    RUN = "RunEvent"
    DATASET = "DatasetEvent"
    JOB = "JobEvent"


class FacetLocation(enum.StrEnum):
    """Where a facet sits in an event; the same key can mean different facets in each."""

    RUN = "run"  # run.facets
    JOB = "job"  # job.facets
    DATASET = "dataset"  # <dataset>.facets
    INPUT = "input"  # inputs[i].inputFacets
    OUTPUT = "output"  # outputs[i].outputFacets


_BASE_DEFS = {
    "RunFacet": FacetLocation.RUN,
    "JobFacet": FacetLocation.JOB,
    "DatasetFacet": FacetLocation.DATASET,
    "InputDatasetFacet": FacetLocation.INPUT,
    "OutputDatasetFacet": FacetLocation.OUTPUT,
}


_DELETABLE = frozenset({FacetLocation.JOB, FacetLocation.DATASET})  # where the spec has _deleted


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason an event is invalid: a JSON path (``run.runId``) and what is wrong there."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


# formats ------------------------------------------------------------------------------------
def is_uuid(text: str) -> bool:
    return _UUID.match(text) is not None


def is_uri(text: str) -> bool:
    return _URI.match(text) is not None


FORMATS: dict[str, Callable[[str], bool]] = {
    "uuid": is_uuid,
    "date-time": is_date_time,
    "uri": is_uri,
}
_FORMAT_TEXT = {
    "uuid": "is not a UUID (expected 8-4-4-4-12 hex digits, e.g. from uuid.uuid4())",
    "date-time": "is not an RFC 3339 date-time; it needs a date, a time and a UTC offset, "
                 "e.g. '2024-05-01T12:00:00Z'",
    "uri": "is not a URI (it needs a scheme, e.g. 'https://...', and no spaces)",
}


def _format_checker() -> FormatChecker:
    checker = FormatChecker(formats=())
    for name, fn in FORMATS.items():
        checker.checks(name)(lambda x, fn=fn: not isinstance(x, str) or fn(x))
    return checker


# schemas ------------------------------------------------------------------------------------
def spec_files() -> list[Traversable]:
    """The vendored OpenLineage schema files (package data, no network, no ../shared)."""
    root = resources.files("cmf_core.openlineage").joinpath("spec")
    facet_dir = root.joinpath("facets")
    facet_files = sorted((f for f in facet_dir.iterdir() if f.name.endswith(".json")),
                         key=lambda f: f.name)
    return [root.joinpath("OpenLineage.json"), *facet_files]


@dataclass(frozen=True, slots=True)
class _FacetSchema:
    key: str
    location: FacetLocation
    uri: str  # absolute URI of the facet's subschema
    fast: Check | None
    validator: Draft202012Validator


@dataclass(frozen=True, slots=True)
class _Schemas:
    registry: Registry
    format_checker: FormatChecker
    events: dict[EventKind, tuple[Check | None, Draft202012Validator]]
    facets: dict[tuple[FacetLocation, str], _FacetSchema]


def _facet_locations(doc: dict[str, Any], key: str) -> set[FacetLocation]:
    """Locations of the facet that ``doc``'s top-level property ``key`` describes."""
    defs = doc.get("$defs", {})
    found: set[FacetLocation] = set()

    def visit(schema: Any, depth: int) -> None:
        if not isinstance(schema, dict) or depth > 4:
            return
        ref = schema.get("$ref", "")
        if ref.startswith(SPEC_URL + "#/$defs/"):
            loc = _BASE_DEFS.get(ref.rsplit("/", 1)[1])
            if loc is not None:
                found.add(loc)
        elif ref.startswith("#/$defs/"):
            visit(defs.get(ref.rsplit("/", 1)[1]), depth + 1)
        for word in ("allOf", "anyOf", "oneOf"):
            for sub in schema.get(word, []):
                visit(sub, depth + 1)

    visit(doc["properties"][key], 0)
    return found


@functools.cache
def _schemas() -> _Schemas:
    docs = [json.loads(f.read_text(encoding="utf-8"))
            for f in [*spec_files(), *cmf_facets.schema_files()]]
    registry: Registry = Registry().with_resources(
        (doc["$id"], Resource.from_contents(doc)) for doc in docs
    )
    registry = registry.crawl()
    formats = _format_checker()
    compiler = SchemaCompiler(registry, FORMATS)

    def build(uri: str) -> tuple[Check | None, Draft202012Validator]:
        validator = Draft202012Validator({"$ref": uri}, registry=registry, format_checker=formats)
        try:
            fast: Check | None = compiler.compile_uri(uri)
        except UnsupportedSchema:
            fast = None  # jsonschema alone decides for this schema
        return fast, validator

    events = {kind: build(f"{SPEC_URL}#/$defs/{kind.value}") for kind in EventKind}
    facets: dict[tuple[FacetLocation, str], _FacetSchema] = {}
    for doc in docs[1:]:
        for key in doc.get("properties", {}):
            uri = f"{doc['$id']}#/properties/{key}"
            for loc in sorted(_facet_locations(doc, key)):
                if (loc, key) in facets:
                    raise RuntimeError(  # a packaging bug, caught by the test suite
                        f"two schemas for the {loc} facet {key!r}: {facets[loc, key].uri}, {uri}"
                    )
                fast, validator = build(uri)
                facets[loc, key] = _FacetSchema(key, loc, uri, fast, validator)
    return _Schemas(registry, formats, events, facets)


def known_facets(location: FacetLocation | str) -> frozenset[str]:
    """Facet keys with a schema at ``location`` (spec facets and CMF facets)."""
    loc = FacetLocation(location)
    return frozenset(key for (where, key) in _schemas().facets if where is loc)


# walking an event ---------------------------------------------------------------------------
def _facet_containers(event: Mapping[str, Any], kind: EventKind, paths: bool
                      ) -> Iterator[tuple[str, FacetLocation, Any]]:
    """(path, location, facets dict) for every facet map in the event (path "" unless
    ``paths``: the fast path does not need them)."""
    if kind is EventKind.RUN:
        run = event.get("run")
        if isinstance(run, dict):
            yield "run.facets", FacetLocation.RUN, run.get("facets")
    if kind is not EventKind.DATASET:
        job = event.get("job")
        if isinstance(job, dict):
            yield "job.facets", FacetLocation.JOB, job.get("facets")
        for side, extra, loc in (("inputs", "inputFacets", FacetLocation.INPUT),
                                 ("outputs", "outputFacets", FacetLocation.OUTPUT)):
            datasets = event.get(side)
            if isinstance(datasets, list):
                for i, ds in enumerate(datasets):
                    if isinstance(ds, dict):
                        yield (f"{side}[{i}].facets" if paths else "", FacetLocation.DATASET,
                               ds.get("facets"))
                        yield f"{side}[{i}].{extra}" if paths else "", loc, ds.get(extra)
    else:
        ds = event.get("dataset")
        if isinstance(ds, dict):
            yield "dataset.facets", FacetLocation.DATASET, ds.get("facets")


def _facets_to_check(event: Mapping[str, Any], kind: EventKind, paths: bool = True
                     ) -> Iterator[tuple[str, _FacetSchema, Any]]:
    table = _schemas().facets
    for path, loc, container in _facet_containers(event, kind, paths):
        if not isinstance(container, dict):
            continue
        for key, facet in container.items():
            schema = table.get((loc, key))
            if schema is None:
                continue
            if loc in _DELETABLE and isinstance(facet, dict) and facet.get("_deleted") is True:
                continue
            yield f"{path}.{key}" if paths else "", schema, facet


def _candidate_kind(event: Mapping[str, Any]) -> EventKind:
    if "run" in event or "eventType" in event:
        return EventKind.RUN
    if "dataset" in event:
        return EventKind.DATASET
    if "job" in event:
        return EventKind.JOB
    raise InvalidEventError(
        "invalid OpenLineage event: it has none of 'run', 'job' or 'dataset' (a RunEvent needs "
        "run and job, a JobEvent job, a DatasetEvent dataset)"
    )


def _kind_of(event: Mapping[str, Any]) -> tuple[EventKind, bool]:
    """The event's kind, and whether the event itself (facets aside) is valid."""
    events = _schemas().events
    kind = _candidate_kind(event)

    def ok(k: EventKind) -> bool:
        fast, validator = events[k]
        return fast(event) if fast is not None else validator.is_valid(event)

    if ok(kind):
        if kind is EventKind.RUN:
            return kind, True  # run + job present: neither other kind can also match
        others = [k for k in EventKind if k is not kind and ok(k)]
        return kind, not others
    if "eventType" in event:  # only a RunEvent has one: judged as a RunEvent (run is missing
        return kind, False  # or wrong), not taken for a JobEvent that ignores the field
    valid = [k for k in EventKind if ok(k)]
    if len(valid) == 1:
        return valid[0], True
    return kind, False


def _facets_ok(event: Mapping[str, Any], kind: EventKind) -> bool:
    for _, schema, facet in _facets_to_check(event, kind, paths=False):
        ok = schema.fast(facet) if schema.fast is not None else schema.validator.is_valid(facet)
        if not ok:
            return False
    return True


# messages -----------------------------------------------------------------------------------
def _join_path(prefix: str, parts: Any) -> str:
    out = prefix
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out = f"{out}.{p}" if out else str(p)
    return out


def _leaves(error: ValidationError) -> Iterator[ValidationError]:
    """The errors under an ``anyOf``/``oneOf`` that has one branch (the spec wraps every facet
    map in one), each on its own; any other error as it is."""
    if error.validator in ("anyOf", "oneOf") and error.context and \
            len({e.relative_schema_path[0] for e in error.context}) == 1:
        for sub in error.context:
            yield from _leaves(sub)
    else:
        yield error


def _problem(error: ValidationError, prefix: str) -> Problem:
    error = best_match([error])
    path = _join_path(prefix, error.absolute_path)
    kw, value = error.validator, error.instance
    if kw == "required":
        missing = error.message.rsplit(" is a required property", 1)[0]
        try:
            name = ast.literal_eval(missing)
        except (ValueError, SyntaxError):
            name = missing
        return Problem(_join_path(path, [name]), "required field is missing")
    if kw == "format" and error.validator_value in _FORMAT_TEXT:
        return Problem(path, f"{value!r} {_FORMAT_TEXT[error.validator_value]}")
    if kw == "enum":
        options = ", ".join(map(str, error.validator_value))
        return Problem(path, f"{value!r} is not one of {options}")
    if kw == "not" and isinstance(error.validator_value, dict) and \
            set(error.validator_value) == {"required"}:
        names = " and ".join(repr(n) for n in error.validator_value["required"])
        return Problem(path, f"must not have {names} together")
    if kw == "oneOf" and not error.context:
        return Problem(path, "matches more than one of the allowed shapes")
    if kw in ("anyOf", "oneOf"):  # jsonschema's message repeats the whole value
        return Problem(path, "matches none of the allowed shapes")
    return Problem(path, error.message)


def _sort_key(p: Problem) -> tuple[str, str]:
    return p.path, p.message


def _as_data(event: Any) -> Any:
    if isinstance(event, Mapping) or not attr.has(type(event)):
        return event
    from cmf_core.openlineage.convert import event_to_dict

    return event_to_dict(event)  # an openlineage-python event object


def problems(event: Any) -> list[Problem]:
    """Every problem found in ``event`` (a dict or an openlineage-python event); an empty list
    means the event is valid."""
    event = _as_data(event)
    if not isinstance(event, Mapping):
        return [Problem("", f"an OpenLineage event is a JSON object, not {type(event).__name__}")]
    try:
        kind, ok = _kind_of(event)
    except InvalidEventError as e:
        return [Problem("", str(e).split(": ", 1)[1])]
    event = dict(event)
    found: list[Problem] = []
    if not ok:
        _, validator = _schemas().events[kind]
        found += sorted((_problem(leaf, "") for e in validator.iter_errors(event)
                         for leaf in _leaves(e)), key=_sort_key)
        if not found:
            other = [k.value for k in EventKind if k is not kind
                     and _schemas().events[k][1].is_valid(event)]
            found.append(Problem("", f"the event is both a {kind.value} and a "
                                     f"{' and a '.join(other)}; it must be exactly one"))
    for path, schema, facet in _facets_to_check(event, kind):
        found += sorted((_problem(leaf, path) for e in schema.validator.iter_errors(facet)
                         for leaf in _leaves(e)), key=_sort_key)
    return list(dict.fromkeys(found))  # one problem, reached through two schema branches


def validate_event(event: Any) -> EventKind:
    """Check ``event`` (a dict or an openlineage-python event) and its known facets; return its
    kind. Raises :class:`InvalidEventError` naming each bad field by its JSON path.
    """
    event = _as_data(event)
    if isinstance(event, Mapping):
        kind, ok = _kind_of(event)
        if ok and _facets_ok(event, kind):
            return kind
        found = problems(event)
        if not found:  # the fast path and jsonschema disagree: jsonschema is the reference
            return kind
        what = f"OpenLineage {kind.value}"
    else:
        found = problems(event)
        what = "OpenLineage event"
    shown = "; ".join(str(p) for p in found[:5])
    more = f" (and {len(found) - 5} more)" if len(found) > 5 else ""
    raise InvalidEventError(f"invalid {what}: {shown}{more}")


def validate_facet(location: FacetLocation | str, key: str, facet: Any) -> None:
    """Check one facet against its schema at ``location``; unknown keys need a base facet."""
    loc = FacetLocation(location)
    schemas = _schemas()
    known = schemas.facets.get((loc, key))
    path = f"{loc.value} facet {key}"
    if known is None:
        base = next(name for name, where in _BASE_DEFS.items() if where is loc)
        validator = Draft202012Validator({"$ref": f"{SPEC_URL}#/$defs/{base}"},
                                         registry=schemas.registry,
                                         format_checker=schemas.format_checker)
    else:
        validator = known.validator
    found = sorted((_problem(e, path) for e in validator.iter_errors(facet)), key=_sort_key)
    if found:
        raise InvalidEventError("invalid facet: " + "; ".join(str(p) for p in found[:5]))


def warm_up() -> None:
    """Load and compile every schema now (otherwise done on first use)."""
    _schemas()
