"""DAG runs -> OpenLineage RunEvents (the scheduler, or the ``dag.test()`` process, reports
them): job ``<dag_id>``, run id as the provider's, which every task try names as its parent.

Airflow gives a failed DAG run only a reason (``task_failure``, ``timed_out``, ``Dag Run's state
was manually set to `failed`.``); the error recorded names the run's failed task instances too
(:func:`failure_message`), read from Airflow's database by :func:`failed_tasks` in the
background job, never in the scheduler's own thread."""

from __future__ import annotations

import datetime as dt
from typing import Any

from cmf_airflow.facts import PRODUCER, STACK_MAX
from cmf_airflow.ids import dag_run_id
from cmf_airflow.values import jsonable, redact

MAX_NAMED = 10
"""The failed task instances a DAG run's error names at most (then ``and N more``)."""


def dag_run_key(dag_run: Any, namespace: str) -> tuple[str, dt.datetime, int]:
    date = getattr(dag_run, "logical_date", None) or getattr(dag_run, "run_after", None) \
        or dag_run.start_date or dt.datetime.now(dt.UTC)
    return namespace, date, int(getattr(dag_run, "clear_number", 0) or 0)


def build_dag_run_event(dag_run: Any, status: str, message: str | None, site: str,
                        namespace: str) -> Any:
    """The RunEvent of a DAG run: job ``<dag_id>``, run id as the provider's
    ``build_dag_run_ol_run_id`` (the ``parent`` of every task run of it)."""
    from openlineage.client.event_v2 import Job, Run, RunEvent, RunState

    from cmf_core.openlineage.facets import ExecutionRunFacet, ParamsRunFacet, SiteRunFacet

    ns, date, clear_number = dag_run_key(dag_run, namespace)
    run_id = dag_run_id(ns, dag_run.dag_id, date, clear_number)
    terminal = status != "running"
    when = (dag_run.end_date if terminal else dag_run.start_date) or dt.datetime.now(dt.UTC)
    props = {"airflow": {"dag_id": dag_run.dag_id, "run_id": str(dag_run.run_id),
                         "run_type": str(getattr(dag_run, "run_type", "") or ""),
                         "clear_number": clear_number, "logical_date": date.isoformat()}}
    facets: dict[str, Any] = {
        "cmf_execution": ExecutionRunFacet(
            status=status, pipeline=dag_run.dag_id, stage=dag_run.dag_id,
            properties=jsonable(props), producer=PRODUCER),
        "cmf_site": SiteRunFacet(name=site, producer=PRODUCER),
    }
    conf_ = getattr(dag_run, "conf", None)
    if isinstance(conf_, dict) and conf_:
        facets["cmf_params"] = ParamsRunFacet(
            params={str(k): jsonable(redact(v, str(k))) for k, v in conf_.items()},
            producer=PRODUCER)
    if status == "failed" and message:
        facets["errorMessage"] = error_facet(str(message))
    event_type = {"running": "START", "completed": "COMPLETE", "failed": "FAIL"}[status]
    return RunEvent(eventType=RunState(event_type), eventTime=when.astimezone(dt.UTC).isoformat(),
                    run=Run(runId=run_id, facets=facets),
                    job=Job(namespace=ns, name=dag_run.dag_id), producer=PRODUCER)


def parent_facet(namespace: str, dag_id: str, parent_run_id: str) -> Any:
    """The ``parent`` (and root) facet a task try's events carry: its DAG run."""
    from openlineage.client.facet_v2 import parent_run

    return parent_run.ParentRunFacet(
        run=parent_run.Run(runId=parent_run_id),
        job=parent_run.Job(namespace=namespace, name=dag_id),
        root=parent_run.Root(run=parent_run.RootRun(runId=parent_run_id),
                             job=parent_run.RootJob(namespace=namespace, name=dag_id)),
        producer=PRODUCER)


def error_facet(message: str) -> Any:
    from openlineage.client.facet_v2 import error_message_run

    return error_message_run.ErrorMessageRunFacet(
        message=message[:STACK_MAX], programmingLanguage="python", producer=PRODUCER)


def failed_tasks(dag_id: str, run_id: str) -> list[str]:
    """The task instances of the DAG run in state ``failed``, as ``task_id`` (``task_id[i]``
    for map index ``i``), sorted; read in a session of its own (call it off the scheduler's
    thread: the scheduler's session and its ``DagRun`` are not thread-safe). Task instances
    that were never tried because of them (``upstream_failed``) are not named."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select

    ti = TaskInstance
    query = (select(ti.task_id, ti.map_index)
             .where(ti.dag_id == dag_id, ti.run_id == run_id,
                    ti.state == TaskInstanceState.FAILED)
             .order_by(ti.task_id, ti.map_index))
    with create_session(scoped=False) as session:  # a session of this thread's own
        rows = session.execute(query).all()
    return [task if index is None or index < 0 else f"{task}[{index}]" for task, index in rows]


def failure_message(reason: str | None, failed: list[str]) -> str | None:
    """``"task_failure: train, evaluate failed"``: Airflow's reason and the failed task
    instances (at most :data:`MAX_NAMED`, then ``and N more``); the reason alone when none."""
    if not failed:
        return reason
    named = ", ".join(failed[:MAX_NAMED])
    if len(failed) > MAX_NAMED:
        named += f" and {len(failed) - MAX_NAMED} more"
    head = (reason or "").strip().rstrip(".") or "failed"
    return f"{head}: {named} failed"
