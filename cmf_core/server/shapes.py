"""JSON shapes of CMF records in the REST API (the same keys as ``cmf ... --json``)."""

from __future__ import annotations

import json
from typing import Any

from cmf_core.lineage.query import artifact_dict, execution_dict
from cmf_core.model import (
    Artifact,
    ArtifactLocation,
    EnergyRecord,
    Event,
    Execution,
    Metric,
    Pipeline,
    Stage,
)


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=dict))


def pipeline_json(p: Pipeline) -> dict[str, Any]:
    return {"id": p.id, "name": p.name, "site": p.site, "created_at": p.created_at,
            "properties": _plain(p.properties), "custom_properties": _plain(p.custom_properties)}


def stage_json(s: Stage) -> dict[str, Any]:
    return {"id": s.id, "pipeline": s.pipeline, "name": s.name, "site": s.site,
            "created_at": s.created_at, "properties": _plain(s.properties),
            "custom_properties": _plain(s.custom_properties)}


def execution_json(e: Execution) -> dict[str, Any]:
    return _plain(execution_dict(e))


def artifact_json(a: Artifact) -> dict[str, Any]:
    return _plain(artifact_dict(a))


def location_json(loc: ArtifactLocation) -> dict[str, Any]:
    return {"site": loc.site, "uri": loc.uri}


def event_json(ev: Event) -> dict[str, Any]:
    return {"execution_id": ev.execution_id, "artifact_id": ev.artifact_id,
            "type": ev.type.value}


def metric_json(m: Metric) -> dict[str, Any]:
    return {"execution_id": m.execution_id, "name": m.name, "value": m.value, "step": m.step,
            "timestamp": m.timestamp}


def energy_json(r: EnergyRecord) -> dict[str, Any]:
    return {"execution_id": r.execution_id, "site": r.site, "energy_kwh": r.energy_kwh,
            "co2e_kg": r.co2e_kg, "details": _plain(r.details)}
