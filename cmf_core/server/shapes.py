"""JSON shapes of CMF records in the REST API (the same keys as ``cmf ... --json``; the
executions routes and the UI's graph add ``lost``, see :func:`executions_json`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from cmf_core.config import Settings
from cmf_core.lineage.query import artifact_dict, execution_dict
from cmf_core.model import (
    ROLE_PROPERTY,
    Artifact,
    ArtifactLocation,
    EnergyRecord,
    Event,
    Execution,
    Metric,
    Pipeline,
    Stage,
    run_url,
)

LOST_DOC = ("Each execution has `lost`: true for a running execution recorded on the server's "
            "host (`properties[\"cmf.process\"]`: host, pid) whose process has ended without "
            "reporting an end (killed, e.g. out of memory) and has no event waiting in the "
            "server's spool folder; `cmf reap` on that host marks it failed. Recorded on "
            "another host, boot or pid namespace, without process facts, or whose process "
            "the orchestrator released while it waits (`cmf.process_released`, e.g. a "
            "deferred task): false (never guessed). Shown as `running (lost)` by "
            "`cmf executions`.")
"""What ``lost`` means, in the route descriptions (OpenAPI)."""


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


def executions_json(executions: Sequence[Execution], settings: Settings
                    ) -> list[dict[str, Any]]:
    """``executions`` as :func:`execution_json`, each with ``lost``: true for a running one
    whose process on the server's host is gone without an event waiting in the spool folder
    of ``settings``, judged as ``cmf executions`` judges (:func:`cmf_core.lost.lost_among`;
    never raises), and ``run_url``: its run's page in the orchestrator's UI when recorded
    (:func:`cmf_core.model.run_url`: an http/https URL only; else None)."""
    from cmf_core.lost import lost_among

    lost = lost_among(executions, lambda: settings.spool_path)
    return [{**execution_json(e), "lost": e.id in lost, "run_url": run_url(e.properties)}
            for e in executions]


def artifact_json(a: Artifact) -> dict[str, Any]:
    """An artifact; with ``role`` when it has one (``properties["cmf.role"]``, e.g.
    ``task_value``: a value one task handed the next in memory), as ``cmf lineage --json``
    gives it, so a client need not know the property's name."""
    out = _plain(artifact_dict(a))
    if ROLE_PROPERTY in a.properties:
        out["role"] = out["properties"][ROLE_PROPERTY]
    return out


def location_json(loc: ArtifactLocation) -> dict[str, Any]:
    return {"site": loc.site, "uri": loc.uri}


def event_json(ev: Event) -> dict[str, Any]:
    return {"execution_id": ev.execution_id, "artifact_id": ev.artifact_id,
            "type": ev.type.value}


def metric_json(m: Metric) -> dict[str, Any]:
    return {"execution_id": m.execution_id, "name": m.name, "value": m.value, "step": m.step,
            "timestamp": m.timestamp}


def energy_json(r: EnergyRecord) -> dict[str, Any]:
    """An energy record; ``measured`` false: the monitor read nothing (its 0 is no
    measurement, the notes say why)."""
    return {"execution_id": r.execution_id, "site": r.site, "energy_kwh": r.energy_kwh,
            "co2e_kg": r.co2e_kg, "measured": r.measured, "details": _plain(r.details)}
