"""A try that leaves its process without an end (deferred to its trigger by an operator that
does not say it may defer) is recorded as waiting without a process: `cmf reap` and the lost
listings never take the wait for a kill, and its resume records its end (real Airflow)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest
from cmf_airflow.adapter import left_waiting

from cmf_core.lost import find_lost, judge, lost_among
from cmf_core.model import ExecutionStatus
from cmf_core.process import PROPERTY, RELEASED, ProcessState, this_process
from tests.integrations.airflow.helpers import by_stage
from tests.integrations.airflow.sources import DEFERRING

# a worker's part of a deferred try ends at the deferral: the triggerer runs the trigger and
# another process resumes the try. dag.test() runs the trigger in its own process; here the
# process exits instead, as a worker's does.
_WORKER = textwrap.dedent("""
    import os, sys
    import airflow.sdk.definitions.dag as dag_module
    from airflow.dag_processing.dagbag import DagBag

    def the_worker_exits(trigger, ti):
        os._exit(0)

    dag_module._run_inline_trigger = the_worker_exits
    DagBag(dag_folder=sys.argv[1]).get_dag(sys.argv[2]).test()
    sys.exit(3)  # the trigger was never reached
""")


def test_a_try_deferred_without_saying_so_is_not_lost_once_its_process_exits(
        write_dag, cmf_store) -> None:
    path = write_dag(DEFERRING, "defer_gone")
    worker = subprocess.Popen([sys.executable, "-c", _WORKER, str(path), "defer_gone"],
                              env=dict(os.environ), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    out, _ = worker.communicate(timeout=300)
    assert worker.returncode == 0, out[-5000:]

    store = cmf_store()
    runs = by_stage(store, "defer_gone")
    assert set(runs) == {"wait"}  # its resume and the next task never ran
    wait = runs["wait"]
    assert wait.status is ExecutionStatus.RUNNING  # deferred: Airflow has not ended it
    # its process was recorded at START (nothing said it may defer), and is gone now
    assert wait.properties[PROPERTY]["pid"] == worker.pid
    check = find_lost(store)  # neither `cmf reap` nor the listings take it for lost
    assert (check.lost, check.unknown) == ((), 1)
    assert lost_among([wait]) == {}
    assert judge(wait)[0] is ProcessState.UNKNOWN
    assert wait.properties[RELEASED]["reason"] == "deferred"  # why: its process was released


def test_a_try_deferred_without_saying_so_resumes_and_completes(run_dag, cmf_store) -> None:
    dr = run_dag(DEFERRING, "defer_resume")  # dag.test runs the trigger here, then resumes
    assert dr.state == "success"
    runs = by_stage(cmf_store(), "defer_resume")
    wait, after = runs["wait"], runs["after"]
    assert wait.status is ExecutionStatus.COMPLETED, wait.error
    assert after.status is ExecutionStatus.COMPLETED
    # one execution for the try: its START (process recorded), the release at the deferral,
    # and the end recorded by its resume
    assert [e.stage for e in runs.values()].count("wait") == 1
    assert wait.properties[PROPERTY] == this_process().to_dict()  # nothing said it may defer
    assert wait.properties[RELEASED]["reason"] == "deferred"
    assert RELEASED not in after.properties  # a try that ends in its process is not released
    assert wait.properties["airflow.xcom_return"]["value"] == "resumed"


@pytest.mark.parametrize(("state", "reason"), [
    ("deferred", "deferred"), ("awaiting_input", "awaiting_input"),
    ("up_for_reschedule", "up_for_reschedule"), (None, None), ("running", None),
    ("success", None), ("failed", None), ("up_for_retry", None), ("skipped", None)])
def test_which_tries_left_without_an_end_wait(state: str | None, reason: str | None) -> None:
    from airflow.utils.state import TaskInstanceState

    value = TaskInstanceState(state) if state else None
    assert left_waiting(SimpleNamespace(state=value)) == reason
