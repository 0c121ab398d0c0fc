"""Tries Airflow ends without their task process reporting it (a trigger ending the try in the
triggerer, the scheduler failing a killed try) are ended in CMF at the DAG run's end, from
Airflow's database, under the id the task process used (real Airflow: the try's START recorded
by a real task process, the DAG run ended by Airflow's own ``DagRun.update_state``)."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
from typing import Any

from cmf_airflow.ids import TaskKey
from cmf_airflow.unended import END_OF_STATE, EndedTry, end_event, still_running

from cmf_core.config import load_settings
from cmf_core.model import Execution, ExecutionStatus
from cmf_core.store import open_store
from tests.integrations.airflow.helpers import by_stage, flush
from tests.support.asgi import served

WAITING = '''
import datetime as dt
from airflow.providers.standard.sensors.time_delta import WaitSensor
from airflow.sdk import dag

@dag(dag_id="{dag_id}", schedule=None)
def waiting():
    WaitSensor(task_id="wait", time_to_wait=dt.timedelta(seconds=1), deferrable=True)

waiting()
'''

KILLED = '''
import os, signal
from airflow.sdk import dag, task

@dag(dag_id="{dag_id}", schedule=None)
def killed():
    @task
    def ok():
        return 1

    @task
    def doomed(x):
        from cmf_airflow.listener import get_listener

        get_listener().adapter.background.flush(60)  # its START is recorded
        os.kill(os.getpid(), signal.SIGKILL)  # the out-of-memory killer, say

    @task
    def never(y):
        return y

    never(doomed(ok()))

killed()
'''

# A worker's part of a try: dag.test() in a process of its own that ends where a worker's
# task process would end, at the deferral (a WaitSensor's trigger ends the try in the
# triggerer: no task process sees its end), or is killed.
_WORKER = textwrap.dedent("""
    import os, sys
    import airflow.sdk.definitions.dag as dag_module
    from airflow.dag_processing.dagbag import DagBag

    def the_worker_exits(trigger, ti):
        os._exit(0)

    dag_module._run_inline_trigger = the_worker_exits
    DagBag(dag_folder=sys.argv[1]).get_dag(sys.argv[2]).test()
    sys.exit(3)  # never reached
""")


def _worker(path: Any, dag_id: str) -> int:
    proc = subprocess.run([sys.executable, "-c", _WORKER, str(path), dag_id],
                          env=dict(os.environ), capture_output=True, text=True, timeout=300,
                          check=False)
    return proc.returncode


def _end_run(dag_id: str, change: Any) -> Any:
    """``change(ti_by_task, session)`` as Airflow's triggerer or scheduler would, then let the
    scheduler's ``DagRun.update_state`` end the run (it calls the DAG-run listener hooks)."""
    from airflow.models.dagbag import DBDagBag
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        dr = session.query(DagRun).filter_by(dag_id=dag_id).one()
        tis = {ti.task_id: ti for ti in dr.get_task_instances(session=session)}
        change(tis, session)
        session.flush()
        dr.dag = DBDagBag().get_dag_for_run(dag_run=dr, session=session)
        dr.update_state(session=session)
        state, tis = dr.state, {k: (ti.state, ti.end_date) for k, ti in tis.items()}
    flush()  # runs the delayed check now
    return state, tis


def test_a_try_its_trigger_ends_in_the_triggerer_is_recorded_completed(
        write_dag, cmf_store) -> None:
    from airflow.models.trigger import handle_event_submit
    from airflow.triggers.base import TaskSuccessEvent

    assert _worker(write_dag(WAITING, "trig_end"), "trig_end") == 0
    store = cmf_store()
    before = by_stage(store, "trig_end")["wait"]
    assert before.status is ExecutionStatus.RUNNING  # deferred, its process gone

    def the_triggerer_ends_it(tis: dict[str, Any], session: Any) -> None:
        from airflow.utils.state import TaskInstanceState

        # dag.test() queues the try again before it would run the trigger in line; under a
        # scheduler it waits `deferred` while the triggerer runs the trigger
        assert tis["wait"].state == "queued"
        tis["wait"].state = TaskInstanceState.DEFERRED
        # what the triggerer does with a TimeDeltaTrigger(end_from_trigger=True) event
        handle_event_submit(TaskSuccessEvent(), task_instance=tis["wait"], session=session)

    state, tis = _end_run("trig_end", the_triggerer_ends_it)
    assert state == "success"
    runs = store.list_executions()
    waits = [e for e in runs if e.stage == "wait"]
    assert [e.id for e in waits] == [before.id]  # ended, not duplicated
    wait = waits[0]
    assert wait.status is ExecutionStatus.COMPLETED, wait.error
    assert wait.error is None
    assert abs(wait.ended_at - tis["wait"][1].timestamp()) < 1e-3  # Airflow's end time
    assert wait.properties["airflow"]["ended_outside_task"] == {"state": "success"}
    assert wait.properties["airflow"]["try_number"] == 1  # the START's facts are kept
    dag_run = by_stage(store, "trig_end")["trig_end"]
    assert dag_run.status is ExecutionStatus.COMPLETED


def test_a_killed_try_the_scheduler_fails_is_recorded_failed(write_dag, cmf_store) -> None:
    from airflow.utils.state import TaskInstanceState

    assert _worker(write_dag(KILLED, "killed_try"), "killed_try") == -signal.SIGKILL
    store = cmf_store()
    assert by_stage(store, "killed_try")["doomed"].status is ExecutionStatus.RUNNING

    def the_scheduler_fails_it(tis: dict[str, Any], session: Any) -> None:
        assert tis["doomed"].state == "running"
        # what the scheduler does once the try's heartbeat stops (no process reports it)
        tis["doomed"].set_state(TaskInstanceState.FAILED, session=session)
        tis["never"].set_state(TaskInstanceState.UPSTREAM_FAILED, session=session)

    state, _ = _end_run("killed_try", the_scheduler_fails_it)
    assert state == "failed"
    runs = by_stage(store, "killed_try")
    assert set(runs) == {"ok", "doomed", "killed_try"}  # `never` never ran: no execution
    doomed = runs["doomed"]
    assert doomed.status is ExecutionStatus.FAILED
    assert "without its task process reporting an end" in (doomed.error or "")
    assert doomed.properties["airflow"]["ended_outside_task"] == {"state": "failed"}
    ok = runs["ok"]  # ended by its own process: left as it recorded it
    assert ok.status is ExecutionStatus.COMPLETED
    assert "ended_outside_task" not in ok.properties["airflow"]
    assert runs["killed_try"].status is ExecutionStatus.FAILED


def test_tries_their_processes_ended_are_left_alone(run_dag, cmf_store) -> None:
    from tests.integrations.airflow.sources import FLAKY

    dr = run_dag(FLAKY, "ended_alone")
    assert dr.state == "failed"
    runs = by_stage(cmf_store(), "ended_alone")
    assert {k: e.status.value for k, e in runs.items()} == {
        "ok": "completed", "boom": "failed", "ended_alone": "failed"}
    assert all("ended_outside_task" not in e.properties.get("airflow", {})
               for e in runs.values())
    assert "bad input" in (runs["boom"].error or "")  # its own error, not ours


def test_every_try_of_a_run_is_read_earlier_tries_from_the_history(
        run_dag, cmf_store, tmp_path) -> None:
    from cmf_airflow.unended import ended_tries

    from tests.integrations.airflow.sources import RETRIED

    dr = run_dag(RETRIED, "read_tries", data=tmp_path)
    assert dr.state == "success"
    got = [(t.task_id, t.map_index, t.try_number, t.state)
           for t in ended_tries("read_tries", dr.run_id)]
    assert got == [("flaky_io", -1, 1, "failed"), ("flaky_io", -1, 2, "success"),
                   ("shard", 0, 1, "success"), ("shard", 1, 1, "success"),
                   ("shard", 2, 1, "success")]
    runs = cmf_store().list_executions()  # all ended by their processes: left alone
    assert sorted((e.stage, e.status.value) for e in runs if e.stage == "flaky_io") == [
        ("flaky_io", "completed"), ("flaky_io", "failed")]
    assert all("ended_outside_task" not in e.properties.get("airflow", {}) for e in runs)


def test_which_executions_are_still_running_from_a_store_or_a_server(tmp_path) -> None:
    from cmf_core.server.app import create_app

    store = open_store(f"sqlite:///{tmp_path / 'cmf.db'}", site="s")
    ids = {s: str(__import__("uuid").uuid4()) for s in ("run", "done", "other")}
    store.put([Execution(pipeline="p", stage="run", site="s", id=ids["run"]),
               Execution(pipeline="p", stage="done", site="s", id=ids["done"],
                         status=ExecutionStatus.COMPLETED, ended_at=2e9),
               Execution(pipeline="q", stage="other", site="s", id=ids["other"])])
    asked = set(ids.values()) | {str(__import__("uuid").uuid4())}
    local = load_settings(store_url=f"sqlite:///{tmp_path / 'cmf.db'}")
    assert still_running(local, "p", asked) == {ids["run"]}
    assert still_running(local, "p", set()) == set()
    with served(create_app(store, load_settings(token="t0k"))) as url:
        remote = load_settings(server_url=url, server_token="t0k")
        assert still_running(remote, "p", asked) == {ids["run"]}
    store.close()


def test_the_end_event_of_each_finished_state() -> None:
    date = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    for state, (event_type, status) in END_OF_STATE.items():
        ev = end_event(EndedTry("t", 2, 3, state, date),
                       TaskKey("ns", "d", "t", 3, 2, date, 0, "run"), "site")
        assert (ev.eventType.value, ev.run.facets["cmf_execution"].status) == \
            (event_type, status)
        assert ev.job.name == "d.t" and ev.eventTime.startswith("2026-01-02")
        assert ("errorMessage" in ev.run.facets) == (status in ("failed", "aborted"))
