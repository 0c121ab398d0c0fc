"""Tries that Airflow ended without their task process reporting it, recorded at the DAG run's end.

Airflow calls no listener hook in a task process for a try that ends elsewhere: one its trigger
ends in the triggerer (``WaitSensor(deferrable=True)``, any trigger yielding a task end event:
success, failure), one the scheduler fails (heartbeat timeout, a killed process) or whose state
is set by hand (those reach ``on_task_instance_failed`` with a database ``TaskInstance``, which
has no running task to measure). Their executions would stay ``running``.

When a DAG run ends, the scheduler's DAG-run hook queues :func:`record_unended` to its background
worker, :data:`GRACE_TIMEOUTS` times ``hook_timeout_s`` later (a task process reports its state to
Airflow *before* its own end hook records the end: the last try of a run may still be recording
it). The job reads the run's tries from Airflow's database in a session of its own
(:func:`ended_tries`: task instances and their history), asks the CMF store (or server) which of
their executions are still ``running`` (:func:`still_running`), and emits for each of those
only the terminal event Airflow's state gives (:data:`END_OF_STATE`), at Airflow's end time,
under the id the task process uses (:class:`~cmf_airflow.ids.TaskKey`), so the running execution
is ended, not duplicated; a try that never ran (no execution) gets none. The event carries
``properties["airflow"]["ended_outside_task"] = {"state": <Airflow's state>}``.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cmf_airflow.dagrun import error_facet, parent_facet
from cmf_airflow.facts import PRODUCER
from cmf_airflow.ids import TaskKey

if TYPE_CHECKING:
    from cmf_core.config import Settings

log = logging.getLogger("cmf")

GRACE_TIMEOUTS = 4
"""The check waits this many ``hook_timeout_s`` after the DAG run's end: the longest a task
process's end hook takes to record the end (its START, digests, the event), or spool it."""

END_OF_STATE: dict[str, tuple[str, str]] = {
    "success": ("COMPLETE", "completed"),
    "skipped": ("COMPLETE", "skipped"),
    "failed": ("FAIL", "failed"),
    "up_for_retry": ("FAIL", "failed"),
    "upstream_failed": ("ABORT", "aborted"),
    "removed": ("ABORT", "aborted"),
}
"""Airflow's finished state of a try -> the OpenLineage event type and CMF status of its end.
A try in any other state (still running, queued, deferred) is left alone."""

PAGE = 1000
"""Executions one request to a CMF server lists at most (its largest page)."""


@dataclass(frozen=True, slots=True)
class EndedTry:
    """One try of a DAG run, as Airflow's database has it."""

    task_id: str
    map_index: int
    try_number: int
    state: str
    end_date: dt.datetime | None


def ended_tries(dag_id: str, run_id: str) -> list[EndedTry]:
    """The tries of the DAG run in a finished state (:data:`END_OF_STATE`): the current try of
    each task instance and the earlier ones (task instance history); read in a session of its
    own (call it off the scheduler's thread). A task instance never tried (try 0) has none."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.taskinstancehistory import TaskInstanceHistory
    from airflow.utils.session import create_session
    from sqlalchemy import select

    found: dict[tuple[str, int, int], EndedTry] = {}
    with create_session(scoped=False) as session:  # a session of this thread's own
        for model in (TaskInstanceHistory, TaskInstance):  # the current try wins
            query = select(model.task_id, model.map_index, model.try_number, model.state,
                           model.end_date).where(model.dag_id == dag_id,
                                                 model.run_id == run_id,
                                                 model.try_number > 0)
            for task, index, number, state, end in session.execute(query).all():
                name = str(getattr(state, "value", state) or "")
                index = -1 if index is None else int(index)
                if name in END_OF_STATE:
                    found[(task, index, int(number))] = EndedTry(task, index, int(number),
                                                                 name, end)
                else:
                    found.pop((task, index, int(number)), None)
    return sorted(found.values(), key=lambda t: (t.task_id, t.map_index, t.try_number))


def still_running(settings: Settings, pipeline: str, ids: set[str]) -> set[str]:
    """Those of ``ids`` whose execution (of ``pipeline``) is recorded and ``running``: read from
    the CMF server of ``settings`` when it has one, else from its store."""
    if not ids:
        return set()
    if settings.server_url:
        return _running_on_server(settings, pipeline) & ids
    from cmf_core.store import open_store
    from cmf_core.store.base import ExecutionFilter

    store = open_store(settings=settings)
    try:
        found = store.list_executions(ExecutionFilter(pipeline=pipeline, status="running",
                                                      ids=sorted(ids)))
    finally:
        store.close()
    return {e.id for e in found}


def _running_on_server(settings: Settings, pipeline: str) -> set[str]:
    import httpx

    headers = {"Authorization": f"Bearer {settings.server_token}"} \
        if settings.server_token else {}
    found: set[str] = set()
    offset: int | None = 0
    with httpx.Client(base_url=str(settings.server_url).rstrip("/"), headers=headers,
                      timeout=settings.hook_timeout_s) as client:
        while offset is not None:
            r = client.get("/api/v1/executions", params={
                "pipeline": pipeline, "status": "running", "limit": PAGE, "offset": offset})
            r.raise_for_status()
            body = r.json()
            found.update(str(item["id"]) for item in body.get("items") or [])
            offset = body.get("next_offset")
    return found


def end_event(t: EndedTry, key: TaskKey, site: str) -> Any:
    """The terminal RunEvent of try ``t`` (identified by ``key``) as Airflow ended it."""
    from openlineage.client.event_v2 import Job, Run, RunEvent, RunState

    from cmf_core.openlineage.facets import ExecutionRunFacet, SiteRunFacet

    event_type, status = END_OF_STATE[t.state]
    facets: dict[str, Any] = {
        "parent": parent_facet(key.namespace, key.dag_id, key.parent_run_id),
        "cmf_execution": ExecutionRunFacet(
            status=status, pipeline=key.dag_id, stage=key.task_id,
            properties={"airflow": {"ended_outside_task": {"state": t.state}}},
            producer=PRODUCER),
        "cmf_site": SiteRunFacet(name=site, producer=PRODUCER),
    }
    if status in ("failed", "aborted"):
        facets["errorMessage"] = error_facet(
            f"Airflow ended this try in state {t.state} without its task process reporting an "
            "end (its trigger failed, a heartbeat timeout, a killed process, or a state set by "
            "hand)")
    when = t.end_date or dt.datetime.now(dt.UTC)
    return RunEvent(
        eventType=RunState(event_type), eventTime=when.astimezone(dt.UTC).isoformat(),
        run=Run(runId=key.run_id, facets=facets),
        job=Job(namespace=key.namespace, name=key.job_name), producer=PRODUCER)


def record_unended(dag_id: str, run_id: str, namespace: str, logical_date: dt.datetime,
                   clear_number: int, settings: Settings) -> int:
    """Emit the end of each try of the DAG run that Airflow ended and the store still has
    ``running``; returns how many. The reads are bounded by ``hook_timeout_s`` each (the
    emits by the emitter, which spools what it cannot record in time)."""
    from cmf_core.guard import run_bounded
    from cmf_core.openlineage.emit import get_emitter

    timeout = settings.hook_timeout_s
    tries = run_bounded(lambda: ended_tries(dag_id, run_id), timeout,
                        "reading the tries of a DAG run")
    keys = [TaskKey(namespace, dag_id, t.task_id, t.try_number, t.map_index, logical_date,
                    clear_number, run_id) for t in tries]
    by_id = {key.run_id: (t, key) for t, key in zip(tries, keys, strict=True)}
    running = run_bounded(lambda: still_running(settings, dag_id, set(by_id)), timeout,
                          "reading which tries of a DAG run are still running")
    emitter = get_emitter(settings)
    for run in sorted(running):
        t, key = by_id[run]
        log.info("cmf: %s.%s try %d%s ended in Airflow (%s) without its task process recording "
                 "it; recording its end", dag_id, t.task_id, t.try_number,
                 f" [{t.map_index}]" if t.map_index >= 0 else "", t.state)
        emitter.emit(end_event(t, key, settings.site))
    return len(running)
