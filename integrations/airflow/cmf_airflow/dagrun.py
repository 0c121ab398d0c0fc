"""DAG runs -> OpenLineage RunEvents (the scheduler, or the ``dag.test()`` process, reports
them): job ``<dag_id>``, run id as the provider's, which every task try names as its parent."""

from __future__ import annotations

import datetime as dt
from typing import Any

from cmf_airflow.facts import PRODUCER, STACK_MAX
from cmf_airflow.ids import dag_run_id
from cmf_airflow.values import jsonable, redact


def dag_run_key(dag_run: Any, namespace: str) -> tuple[str, dt.datetime, int]:
    date = getattr(dag_run, "logical_date", None) or getattr(dag_run, "run_after", None) \
        or dag_run.start_date or dt.datetime.now(dt.UTC)
    return namespace, date, int(getattr(dag_run, "clear_number", 0) or 0)


def build_dag_run_event(dag_run: Any, status: str, message: str | None, site: str,
                        namespace: str) -> Any:
    """The RunEvent of a DAG run: job ``<dag_id>``, run id as the provider's
    ``build_dag_run_ol_run_id`` (the ``parent`` of every task run of it)."""
    from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
    from openlineage.client.facet_v2 import error_message_run

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
        facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=str(message)[:STACK_MAX], programmingLanguage="python", producer=PRODUCER)
    event_type = {"running": "START", "completed": "COMPLETE", "failed": "FAIL"}[status]
    return RunEvent(eventType=RunState(event_type), eventTime=when.astimezone(dt.UTC).isoformat(),
                    run=Run(runId=run_id, facets=facets),
                    job=Job(namespace=ns, name=dag_run.dag_id), producer=PRODUCER)
