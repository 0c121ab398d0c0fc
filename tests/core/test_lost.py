"""Lost executions: a process killed outright (as the OOM killer does) leaves its execution
"running"; find_lost / mark_lost end it as failed, and nothing else (real processes, stores)."""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest

from cmf_core.lost import find_lost, judge, lost_among, mark_lost, spooled_run_ids
from cmf_core.model import Execution, ExecutionStatus
from cmf_core.openlineage.emit import write_spool_file
from cmf_core.openlineage.ingest import ingest
from cmf_core.process import (
    PROPERTY,
    RELEASED,
    ProcessState,
    host_name,
    released_property,
    this_process,
)
from cmf_core.store import Store, open_store
from tests.support.processes import start_execution


def _ended_pid() -> int:
    """The pid of a process that has run and ended."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _running(store: Store, host: str, pid: int, ticks_before: int = 0, stage: str = "s"
             ) -> Execution:
    """A running execution recorded by process ``pid`` on ``host``, started ``ticks_before``
    clock ticks before this process (this machine's boot and pid namespace)."""
    here = this_process()
    info = replace(here, host=host, pid=pid, start_ticks=(here.start_ticks or 0) - ticks_before,
                   create_time=here.create_time - ticks_before / 100)
    ex = Execution(pipeline="p", stage=stage, site="hpc", properties={PROPERTY: info.to_dict()})
    store.put([ex])
    return ex


def test_a_killed_process_s_execution_is_marked_failed_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cmf.db'}"
    child = start_execution(url)
    child.kill()
    with open_store(url, "hpc") as store:
        check = find_lost(store)
        assert [x.execution.id for x in check.lost] == [child.execution_id]
        assert (check.alive, check.unknown, check.waiting) == (0, 0, 0)
        before = time.time()
        assert mark_lost(store, check.lost) == list(check.lost)
        ex = store.get_execution(child.execution_id)
        assert ex is not None and ex.status is ExecutionStatus.FAILED
        assert ex.error == (f"process {child.proc.pid} on host {host_name()} ended without "
                            "reporting an end (killed, e.g. out of memory?)")
        assert ex.ended_at is not None and before <= ex.ended_at <= time.time()
        assert dict(ex.params) == {"lr": 0.1} and ex.properties[PROPERTY]["pid"] == child.proc.pid
        # recorded as any end is: a FAIL event, kept raw for the lineage API and federation
        (fail,) = store.lineage_events(child.execution_id)
        assert (fail.event_type, json.loads(fail.body)["run"]["facets"]["errorMessage"][
            "message"]) == ("FAIL", ex.error)
        # idempotent: nothing is lost any more, and marking again changes nothing
        assert find_lost(store).lost == ()
        assert mark_lost(store, check.lost) == []
        assert len(store.lineage_events(child.execution_id)) == 1


def test_live_processes_other_hosts_and_foreign_events_are_left_alone(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cmf.db'}"
    child = start_execution(url)
    try:
        with open_store(url, "hpc") as store:
            elsewhere = _running(store, "another-host.example", _ended_pid())
            foreign = {  # another OpenLineage producer's START: no process facts
                "eventType": "START", "eventTime": "2026-01-01T00:00:00Z",
                "producer": "https://example.com/spark",
                "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
                "run": {"runId": "01a21ae7-ac47-75d1-9cf5-e37460dee77c"},
                "job": {"namespace": "spark", "name": "etl.load"}}
            ingest(foreign, store, "hpc")
            check = find_lost(store)
            assert (check.lost, check.alive, check.unknown) == ((), 1, 2)
            assert mark_lost(store, check.lost) == []
            for eid in (child.execution_id, elsewhere.id, foreign["run"]["runId"]):
                ex = store.get_execution(eid)
                assert ex is not None and ex.status is ExecutionStatus.RUNNING, eid
            assert PROPERTY not in store.get_execution(foreign["run"]["runId"]).properties
    finally:
        child.stop()


def test_a_reused_pid_does_not_keep_an_execution_running(store: Store) -> None:
    # pid reuse, simulated: the recorded pid is this live process's, the start time is not
    here = this_process()
    # an hour earlier, or as early as this boot allows (a start before the boot is refused as
    # unknown, and CI machines may be up for minutes only)
    ticks = min(360_000, (here.start_ticks or 360_001) - 1)
    ex = _running(store, here.host, here.pid, ticks_before=ticks)
    (lost,) = find_lost(store).lost
    assert lost.execution.id == ex.id
    (marked,) = mark_lost(store, [lost])
    got = store.get_execution(ex.id)
    assert got.status is ExecutionStatus.FAILED and got.error == marked.error
    assert f"process {here.pid} on host {here.host}" in got.error


def test_an_execution_with_events_in_the_spool_waits_for_them(tmp_path: Path,
                                                              sqlite_store: Store) -> None:
    ex = _running(sqlite_store, host_name(), _ended_pid())
    other = _running(sqlite_store, host_name(), _ended_pid(), stage="t")
    spool = tmp_path / "spool"
    write_spool_file(spool, {"eventType": "COMPLETE", "run": {"runId": ex.id.upper()}}, "x")
    write_spool_file(spool / "rejected", {"run": {"runId": other.id}}, "x")  # set aside
    (spool / "torn.json").write_text('{"run": ')
    assert spooled_run_ids(spool) == {ex.id}
    check = find_lost(sqlite_store, waiting=spooled_run_ids(spool))
    assert [x.execution.id for x in check.lost] == [other.id] and check.waiting == 1


def test_only_the_pipeline_asked_for_is_judged(sqlite_store: Store) -> None:
    _running(sqlite_store, host_name(), _ended_pid())
    assert len(find_lost(sqlite_store).lost) == 1
    assert find_lost(sqlite_store, pipeline="other").lost == ()


def test_a_judged_execution_that_ended_meanwhile_keeps_its_end(sqlite_store: Store) -> None:
    ex = _running(sqlite_store, host_name(), _ended_pid())
    lost = find_lost(sqlite_store).lost
    sqlite_store.put([ex.ended(ExecutionStatus.COMPLETED)])  # its spooled end, replayed
    assert mark_lost(sqlite_store, lost) == []
    assert sqlite_store.get_execution(ex.id).status is ExecutionStatus.COMPLETED


def test_many_running_executions_are_read_page_by_page(sqlite_store: Store,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import cmf_core.lost

    monkeypatch.setattr(cmf_core.lost, "PAGE", 2)
    ids = {_running(sqlite_store, host_name(), _ended_pid(), stage=f"s{i}").id
           for i in range(5)}
    assert {x.execution.id for x in find_lost(sqlite_store).lost} == ids


def _event(execution_id: str, event_type: str, status: str, properties: dict | None = None
           ) -> dict:
    """An OpenLineage event of the ``oom.train`` run ``execution_id`` (a later event of it)."""
    return {
        "eventType": event_type, "eventTime": "2026-01-01T00:00:00Z",
        "producer": "https://example.com/orchestrator",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": execution_id, "facets": {"cmf_execution": {
            "_producer": "https://example.com/orchestrator",
            "_schemaURL": "https://example.com/schema.json",
            "status": status, "pipeline": "oom", "stage": "train",
            "properties": properties or {}}}},
        "job": {"namespace": "default", "name": "oom.train"}}


def test_a_run_whose_process_was_released_waits_and_is_never_lost(tmp_path: Path) -> None:
    """The orchestrator released the run's process (a deferred task): the process is gone,
    the run goes on without one. A later RUNNING event records it; nothing judges it lost."""
    url = f"sqlite:///{tmp_path / 'cmf.db'}"
    child = start_execution(url)
    with open_store(url, "hpc") as store:
        ingest(_event(child.execution_id, "RUNNING", "running",
                      released_property("deferred")), store, "hpc")
        child.kill()  # its process ends; the run waits for its trigger
        ex = store.get_execution(child.execution_id)
        assert ex is not None and ex.status is ExecutionStatus.RUNNING
        # the first process's facts stay; the release is added beside them
        assert ex.properties[PROPERTY]["pid"] == child.proc.pid
        assert ex.properties[RELEASED]["reason"] == "deferred"
        assert judge(ex)[0] is ProcessState.UNKNOWN
        assert lost_among([ex], tmp_path / "spool") == {}
        check = find_lost(store)
        assert (check.lost, check.alive, check.unknown) == ((), 0, 1)
        # resumed elsewhere and finished: its end is recorded as usual
        ingest(_event(child.execution_id, "COMPLETE", "completed"), store, "hpc")
        assert store.get_execution(child.execution_id).status is ExecutionStatus.COMPLETED


def test_a_run_released_after_it_was_judged_is_not_marked(tmp_path: Path) -> None:
    """`cmf reap` read the run while it ran; its process then recorded the release and exited
    (a deferral). Marking re-judges the run as stored now, so it is not failed, and the end
    its resume records stands (a failure recorded first would outrank it for good)."""
    url = f"sqlite:///{tmp_path / 'cmf.db'}"
    child = start_execution(url)
    with open_store(url, "hpc") as store:
        child.kill()
        (lost,) = find_lost(store).lost  # judged before the release landed
        ingest(_event(child.execution_id, "RUNNING", "running",
                      released_property("deferred")), store, "hpc")
        assert mark_lost(store, [lost]) == []
        ingest(_event(child.execution_id, "COMPLETE", "completed"), store, "hpc")
        assert store.get_execution(child.execution_id).status is ExecutionStatus.COMPLETED


def test_a_released_run_is_not_lost_whatever_the_release_says(sqlite_store: Store) -> None:
    gone = _running(sqlite_store, host_name(), _ended_pid())
    odd = replace(gone, id="01a21ae7-ac47-75d1-9cf5-e37460dee77d",
                  properties={**gone.properties, RELEASED: "yes"})  # malformed: still counts
    kept = replace(gone, id="01a21ae7-ac47-75d1-9cf5-e37460dee77e",
                   properties={**gone.properties, **released_property("awaiting_input", 0.0)})
    sqlite_store.put([odd, kept])
    assert kept.properties[RELEASED] == {"at": "1970-01-01T00:00:00.000000+00:00",
                                         "reason": "awaiting_input"}
    assert [x.execution.id for x in find_lost(sqlite_store).lost] == [gone.id]
    assert set(lost_among(sqlite_store.list_executions())) == {gone.id}
