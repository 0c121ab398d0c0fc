"""Small helpers shared by the Airflow tests (no side effects on import)."""

from __future__ import annotations

from typing import Any

from cmf_core.model import EventType


def flush() -> None:
    """Wait until the listener's queued DAG-run events are recorded."""
    from cmf_airflow.listener import get_listener

    assert get_listener().adapter.flush(timeout=30)


def by_stage(store: Any, pipeline: str) -> dict[str, Any]:
    from cmf_core.store.base import ExecutionFilter

    return {e.stage: e for e in store.list_executions(ExecutionFilter(pipeline=pipeline))}


def artifacts_of(store: Any, execution_id: str, kind: EventType) -> list[Any]:
    return [store.get_artifact(ev.artifact_id) for ev in store.events([execution_id])
            if ev.type is kind]


def clear_provider_cache(*fns: object) -> None:
    """The OpenLineage provider caches its options (except under pytest, where it does not)."""
    for fn in fns:
        getattr(fn, "cache_clear", lambda: None)()
