"""Prefect facts -> OpenLineage RunEvents: naming, mapping, determinism (no server needed)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from cmf_prefect.adapter import (
    ROUTE_WATCHER,
    RunFacts,
    event_type_of,
    flow_ref,
    run_event,
    stage_of,
    status_of,
    task_ref,
    ui_link,
)
from cmf_prefect.datasets import (
    path_dataset,
    result_dataset,
    upstream_run_ids,
    value_datasets,
)
from cmf_prefect.values import jsonable, metrics_of, resolved_params
from cmf_prefect.watcher import Cursor, run_events

from cmf_core.identity import file_digest
from cmf_core.openlineage.ingest import event_to_records
from cmf_core.openlineage.validate import validate_event
from cmf_core.process import this_process

FLOW_RUN = "908d56ea-fbcf-4b75-956e-596388768f42"
LOAD_RUN = "01a21ae7-ac39-7ca5-8462-65e147489433"
TOTAL_RUN = "01a21ae7-ac47-75d1-9cf5-e37460dee77c"

# a `prefect.task-run.Completed` event as Prefect 3.7 stores it (trimmed)
COMPLETED: dict[str, Any] = {
    "occurred": "2026-11-27T02:48:40.264738Z",
    "event": "prefect.task-run.Completed",
    "resource": {
        "prefect.resource.id": f"prefect.task-run.{TOTAL_RUN}",
        "prefect.resource.name": "total-a61",
        "prefect.run-count": "1",
        "prefect.state-message": "",
        "prefect.state-name": "Completed",
        "prefect.state-type": "COMPLETED",
    },
    "related": [
        {"prefect.resource.id": f"prefect.flow-run.{FLOW_RUN}",
         "prefect.resource.role": "flow-run", "prefect.resource.name": "ebony-gerbil"},
        {"prefect.resource.id": "prefect.flow.535a7858-a017-443a-a542-b4e48b7bcf99",
         "prefect.resource.role": "flow", "prefect.resource.name": "demo"},
    ],
    "payload": {"task_run": {
        "name": "total-a61", "task_key": "total-6fde3a83",
        "dynamic_key": "a619ebcc-eec3-4f7d-bfb8-3763ccf94da5", "tags": ["edge"],
        "task_inputs": {"xs": [{"input_type": "task_run", "id": LOAD_RUN}],
                        "__parents__": [{"input_type": "task_run", "id": FLOW_RUN}]},
        "run_count": 1}},
    "id": "01a21ae7-ac45-7e84-b84e-b1927d251c77",
}


def test_stage_is_the_task_name_without_the_run_suffix() -> None:
    assert stage_of("total-a61", "a619ebcc-eec3", "total-6fde3a83") == "total"
    assert stage_of("fine-tune-3fa", "3fa0c2", "fine_tune-1a2b3c4d") == "fine-tune"
    # outside a flow the run is named after the task; its dynamic key starts with the task key
    assert stage_of("load", "load-482d80a0-77aa", "load-482d80a0") == "load"
    # renamed with task_run_name: the function name from the task key
    assert stage_of("load-for-2024", "7d6c7f65", "load-482d80a0") == "load"


@pytest.mark.parametrize(("state_type", "status", "event_type"), [
    ("COMPLETED", "completed", "COMPLETE"), ("FAILED", "failed", "FAIL"),
    ("CRASHED", "failed", "FAIL"), ("CANCELLED", "aborted", "ABORT"), ("RUNNING", None, None),
    ("PENDING", None, None)])
def test_state_types_map_to_statuses(state_type: str, status: str | None,
                                     event_type: str | None) -> None:
    assert status_of(state_type) == status
    if status:
        assert event_type_of(status) == event_type
    assert event_type_of("running") == "START"
    assert event_type_of("running", first=False) == "RUNNING"


def test_upstream_runs_come_from_task_inputs_not_parents() -> None:
    assert upstream_run_ids(COMPLETED["payload"]["task_run"]["task_inputs"]) == [LOAD_RUN]
    assert upstream_run_ids({"x": [{"input_type": "parameter", "name": "x"}]}) == []


def test_a_watched_event_becomes_a_valid_run_event_with_lineage() -> None:
    (event,) = run_events(COMPLETED)
    validate_event(event)
    assert event["eventType"] == "COMPLETE"
    assert event["run"]["runId"] == TOTAL_RUN
    assert (event["job"]["namespace"], event["job"]["name"]) == ("prefect", "demo.total")
    assert event["run"]["facets"]["parent"]["run"]["runId"] == FLOW_RUN
    assert [i["name"] for i in event["inputs"]] == [f"task-run/{LOAD_RUN}/result"]
    assert [o["name"] for o in event["outputs"]] == [f"task-run/{TOTAL_RUN}/result"]
    records = event_to_records(event, "edge")
    execution = next(r for r in records if type(r).__name__ == "Execution")
    assert (execution.pipeline, execution.stage, execution.status.value) == \
        ("demo", "total", "completed")
    assert execution.properties["prefect.tags"] == ["edge"]


def test_the_same_prefect_event_always_gives_the_same_run_event() -> None:
    # the stream and the REST API spell times differently; the RunEvent must not change
    other = copy.deepcopy(COMPLETED)
    other["occurred"] = "2026-11-27T02:48:40.264738+00:00"
    assert run_events(COMPLETED) == run_events(other)


def test_a_failed_task_run_carries_the_state_message() -> None:
    failed = copy.deepcopy(COMPLETED)
    failed["resource"].update({"prefect.state-type": "FAILED", "prefect.state-name": "Failed",
                               "prefect.state-message": "Task run encountered an exception"})
    (event,) = run_events(failed)
    assert event["eventType"] == "FAIL"
    assert event["run"]["facets"]["errorMessage"]["message"] == \
        "Task run encountered an exception"
    # its result is the exception (allow_failure hands it downstream), as in-process
    assert [o["name"] for o in event["outputs"]] == [f"task-run/{TOTAL_RUN}/result"]


def test_a_failed_state_whose_error_cannot_be_printed_still_has_a_message() -> None:
    """The exception's __str__ raises: building the failed run's message raised with it."""
    from cmf_prefect.runs import state_error
    from prefect.states import Failed

    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no text for this error")

    message, trace = state_error(Failed(data=Unprintable()))
    assert message == "Unprintable: <exception str() failed>"
    assert trace is not None and "Unprintable" in trace


def test_states_cmf_does_not_record_give_no_event() -> None:
    pending = copy.deepcopy(COMPLETED)
    pending["resource"].update({"prefect.state-type": "SCHEDULED",
                                "prefect.state-name": "AwaitingRetry"})
    assert run_events(pending) == []
    assert run_events({**COMPLETED, "event": "prefect.flow-run.heartbeat"}) == []


def test_a_materialization_adds_the_asset_to_its_task_run() -> None:
    asset = {
        "occurred": "2026-11-27T02:48:41Z", "event": "prefect.asset.materialization.succeeded",
        "id": "01a21ae7-0000-7000-8000-000000000001",
        "resource": {"prefect.resource.id": "s3://bucket/features.parquet"},
        "related": [
            {"prefect.resource.id": "s3://bucket/raw.csv", "prefect.resource.role": "asset"},
            {"prefect.resource.id": f"prefect.task-run.{TOTAL_RUN}",
             "prefect.resource.role": "task-run", "prefect.resource.name": "total-a61"},
            *COMPLETED["related"]],
        "payload": {}}
    from cmf_prefect.watcher import Resolver

    resolver = Resolver()
    resolver.remember_stage(TOTAL_RUN, "total")
    (event,) = run_events(asset, resolver)
    assert event["eventType"] == "OTHER"
    assert [(o["namespace"], o["name"]) for o in event["outputs"]] == \
        [("s3://bucket", "features.parquet")]
    assert [(i["namespace"], i["name"]) for i in event["inputs"]] == [("s3://bucket", "raw.csv")]


def test_run_event_carries_params_metrics_and_files(tmp_path: Path) -> None:
    model = tmp_path / "model.pt"
    model.write_bytes(b"weights")
    facts = RunFacts(status="completed", at=1_800_000_000.5, params={"lr": 0.01},
                     outputs=[result_dataset("r"), *value_datasets(str(model))],
                     metrics={"accuracy": 0.93})
    event = run_event(task_ref("01a21ae7-ac47-75d1-9cf5-e37460dee77c", "train", "fl", None),
                      facts, "hooks")
    validate_event(event)
    facets = event["run"]["facets"]
    assert "parent" not in facets
    assert facets["cmf_params"]["params"] == {"lr": 0.01}
    assert facets["cmf_metrics"]["metrics"][0]["name"] == "accuracy"
    art = next(o for o in event["outputs"] if o["name"] == str(model))
    assert art["facets"]["cmf_artifact"]["digest"] == file_digest(model)
    assert art["facets"]["cmf_artifact"]["type"] == "Model"


@pytest.mark.parametrize(("route", "status", "recorded"), [
    ("in-process", "running", True), ("hooks", "running", True),
    ("watcher", "running", False),  # the watcher is not the run's process
    ("in-process", "completed", False),  # only the start says where the run runs
])
def test_a_start_seen_in_the_run_s_own_process_records_that_process(
        route: str, status: str, recorded: bool) -> None:
    event = run_event(task_ref(TOTAL_RUN, "total", "demo", FLOW_RUN),
                      RunFacts(status=status, at=1_800_000_000.0), route)
    validate_event(event)
    properties = event["run"]["facets"]["cmf_execution"]["properties"]
    assert properties.get("cmf.process") == (this_process().to_dict() if recorded else None)


def test_a_flow_run_s_start_records_no_process() -> None:
    # a flow may pause or suspend: its process ends while the run stays running, which `cmf
    # reap` must not take for a kill
    event = run_event(flow_ref(FLOW_RUN, "demo"), RunFacts(status="running", at=1.8e9),
                      "in-process")
    assert "cmf.process" not in event["run"]["facets"]["cmf_execution"]["properties"]


def test_values_are_bounded_and_never_repr() -> None:
    class Model:
        def __repr__(self) -> str:  # pragma: no cover - must not be called
            raise AssertionError("repr called")

    assert jsonable({"m": Model(), "s": "x" * 5000, "l": list(range(100))}) == {
        "m": f"<{Model.__module__}.{Model.__qualname__}>", "s": "x" * 1000 + "...",
        "l": [*range(50), "... 50 more"]}
    assert metrics_of({"acc": 0.9, "loss": 1}) == {"acc": 0.9, "loss": 1.0}
    assert metrics_of({"acc": 0.9, "name": "x"}) == {}
    assert metrics_of({"acc": 0.9, "loss": float("inf")}) == {"acc": 0.9}  # a number, not stored
    assert path_dataset("/no/such/file") is None


def test_cursor_keeps_the_watermark_and_prunes_old_ids() -> None:
    cursor = Cursor()
    cursor.add("a", "2026-01-01T00:00:00+00:00")
    cursor.add("b", "2026-01-01T00:20:00+00:00")
    cursor.add("c", "2026-01-01T00:15:00+00:00")  # late: the watermark stays
    assert cursor.watermark == "2026-01-01T00:20:00+00:00"
    cursor.prune(600)
    assert set(cursor.seen) == {"b", "c"}
    assert Cursor.loads(cursor.dumps()) == cursor


def _unreadable_folder(tmp_path: Path) -> Path:
    """A folder holding a file whose read fails (EIO): ``/proc/self/mem`` through a link, as
    tests run as root, where permissions cannot make a file unreadable."""
    folder = tmp_path / "scratch"
    folder.mkdir()
    (folder / "a.txt").write_text("a")
    (folder / "mem").symlink_to("/proc/self/mem")
    return folder


def test_a_folder_that_cannot_be_read_is_identified_by_stat(tmp_path: Path) -> None:
    (ds,) = value_datasets(str(_unreadable_folder(tmp_path)))
    facet = ds.facets["cmf_artifact"]
    assert facet.digest.startswith("version:")
    assert facet.properties == {"digest_method": "stat"}


def test_folders_get_the_size_file_and_time_caps(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from cmf_core.openlineage import local

    big = tmp_path / "big"
    big.mkdir()
    with open(big / "sparse.bin", "wb") as fh:
        fh.truncate(4096)  # a sparse file: cheap, and above the cap lowered here
    found = path_dataset(big, max_bytes=1024)
    assert found.facets["cmf_artifact"].properties == {"digest_method": "stat"}

    many = tmp_path / "many"
    many.mkdir()
    for i in range(6):
        (many / f"f{i}").write_text(str(i))
    monkeypatch.setattr(local, "MAX_WALK_FILES", 5)
    assert path_dataset(many).facets["cmf_artifact"].properties == {"digest_method": "stat"}
    monkeypatch.setattr(local, "MAX_WALK_FILES", 10_000)
    assert "digest_method" not in path_dataset(many).facets["cmf_artifact"].properties

    slow = tmp_path / "slow"
    slow.mkdir()
    (slow / "data").write_bytes(b"x" * (4 << 20))
    found = path_dataset(slow, budget_s=1e-9)  # not hashed in time: its stat identity
    assert found.facets["cmf_artifact"].properties == {"digest_method": "stat"}


def test_roots_home_and_working_directory_are_only_named(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from cmf_core.openlineage.local import too_broad

    home, work = tmp_path / "home", tmp_path / "work" / "sub"
    work.mkdir(parents=True)
    home.mkdir()
    (work / "f").write_text("x")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    for value in (".", "~", str(home), str(work), str(tmp_path / "work")):
        ds = path_dataset(value)
        assert ds is not None and ds.facets == {}, value  # ingest identifies it by its URI
    assert too_broad("/") and too_broad(str(tmp_path)) and not too_broad(str(work / "f"))
    assert path_dataset(work / "f").facets["cmf_artifact"].digest == file_digest(work / "f")


def test_an_event_written_ahead_is_not_lost_when_the_spool_cannot_take_a_copy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The recorder's write-ahead copy stays in the spool when the server is down and the
    emitter could not have written a copy of its own (a full disk, which cannot be made on
    cue here: the emitter's spool writes are made to fail as a full disk fails them)."""
    from cmf_prefect.adapter import Recorder

    from cmf_core.config import load_settings
    from cmf_core.openlineage.emit import Emitter
    from cmf_core.store import open_store
    from tests.support.postgres import free_port

    down = f"http://127.0.0.1:{free_port()}"
    settings = load_settings(home=tmp_path, site="edge", server_url=down)
    monkeypatch.setattr(Emitter, "spool", lambda self, data, rejected=False: None)
    recorder = Recorder(settings, background=True)
    event = run_event(task_ref("01a21ae7-ac47-75d1-9cf5-e37460dee77c", "train", "fl", None),
                      RunFacts(status="completed", at=1e9), "hooks")
    assert recorder.emit(event) is True
    assert recorder.flush(60)
    assert len(list((tmp_path / "spool").glob("*.json"))) == 1  # the only copy, spooled
    monkeypatch.undo()
    local = load_settings(home=tmp_path, site="edge")  # replayed into a working store
    em = Emitter(local)
    assert em.retry_spool(from_target=down) == (1, 0)
    em.close()
    with open_store(settings=local) as s:
        assert s.get_execution(event["run"]["runId"]) is not None


def test_a_run_links_to_prefect_s_ui_only_when_its_url_is_known() -> None:
    """``cmf.run_url`` comes from Prefect's own settings (``PREFECT_UI_URL``, else derived from
    ``PREFECT_API_URL``), as Prefect links its runs; none is guessed without them, and a value
    that is no http(s) URL is never recorded as a link."""
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL, temporary_settings

    ref = task_ref("0196d1a2-0000-7000-8000-000000000001", "fit", "train", None)
    flow = flow_ref("0196d1a2-0000-7000-8000-000000000002", "train")
    with temporary_settings(updates={PREFECT_UI_URL: "https://prefect.example.org/ui/"}):
        assert ui_link(ref) == {"cmf.run_url": "https://prefect.example.org/ui/runs/task-run/"
                                               "0196d1a2-0000-7000-8000-000000000001"}
        props = run_event(flow, RunFacts(status="running", at=1.7e9), ROUTE_WATCHER)[
            "run"]["facets"]["cmf_execution"]["properties"]
        assert props["cmf.run_url"] == ("https://prefect.example.org/ui/runs/flow-run/"
                                        "0196d1a2-0000-7000-8000-000000000002")
    with temporary_settings(updates={PREFECT_API_URL: "https://prefect.example.org/api"},
                            restore_defaults={PREFECT_UI_URL}):
        assert ui_link(flow) == {"cmf.run_url": "https://prefect.example.org/runs/flow-run/"
                                                "0196d1a2-0000-7000-8000-000000000002"}
    with temporary_settings(restore_defaults={PREFECT_API_URL, PREFECT_UI_URL}):
        assert PREFECT_UI_URL.value() is None
        assert ui_link(ref) == {}
        props = run_event(ref, RunFacts(status="running", at=1.7e9), ROUTE_WATCHER)[
            "run"]["facets"]["cmf_execution"]["properties"]
        assert "cmf.run_url" not in props
    with temporary_settings(updates={PREFECT_UI_URL: "javascript:alert(1)//"}):
        assert ui_link(ref) == {}


def test_a_file_rewritten_with_its_size_and_mtime_restored_gets_its_new_digest(
        tmp_path: Path) -> None:
    """``cp -p`` / ``rsync -t`` over a file of the same size keep its modification time: the
    digest cached by (path, size, mtime) was the old content's, so the new version was
    recorded as the old artifact. The cache is ``cmf_core.openlineage.local``'s, keyed on the
    status change time too."""
    import os
    import time

    from cmf_core.openlineage import local

    data = tmp_path / "features.csv"
    data.write_text("a,b\n1,2\n")
    os.utime(data, ns=(10**18, 10**18))
    time.sleep(1.1)  # older than a second: its digest is cached
    first = path_dataset(data).facets["cmf_artifact"].digest
    assert first == file_digest(data)
    data.write_text("a,b\n3,4\n")  # same size, then its time put back
    os.utime(data, ns=(10**18, 10**18))
    again = path_dataset(data).facets["cmf_artifact"].digest
    assert again == file_digest(data) != first
    assert first in local._CACHE.values()  # the first read was cached: the cache was asked


def test_an_overrun_file_hash_is_cached_for_the_next_reader(tmp_path: Path) -> None:
    """A file above the inline size not hashed in its hook's time is identified by stat; the
    hash goes on in the background and lands in the shared cache."""
    import time

    from cmf_prefect.datasets import INLINE_HASH_BYTES

    from cmf_core.openlineage import local

    data = tmp_path / "shard.bin"
    data.write_bytes(b"x" * (INLINE_HASH_BYTES + 1))
    time.sleep(1.1)  # older than a second: its digest may be cached
    found = path_dataset(data, budget_s=1e-9)
    assert found.facets["cmf_artifact"].properties == {"digest_method": "stat"}
    assert found.facets["cmf_artifact"].digest == local.local_stat_identity(str(data))[0]
    expected = file_digest(data)
    deadline = time.monotonic() + 60
    while expected not in local._CACHE.values() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert expected in local._CACHE.values()
    assert path_dataset(data).facets["cmf_artifact"].digest == expected


def test_the_size_limit_is_cmf_digest_max_mb(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a route's own settings, the limit is ``digest_max_mb`` read now
    (``CMF_DIGEST_MAX_MB``), not a limit of Prefect's own."""
    from cmf_core.openlineage.local import local_stat_identity

    data = tmp_path / "part.csv"
    data.write_bytes(b"x" * 4096)
    assert path_dataset(data).facets["cmf_artifact"].digest == file_digest(data)
    monkeypatch.setenv("CMF_DIGEST_MAX_MB", str(1 / 1024))  # 1 KiB
    (ds,) = value_datasets([str(data)])
    assert ds.facets["cmf_artifact"].digest == local_stat_identity(str(data))[0]
    assert ds.facets["cmf_artifact"].properties == {"digest_method": "stat"}


def test_a_starting_task_run_records_no_unresolved_parameter() -> None:
    """Futures and states, alone or inside the collections Prefect resolves, are left to the
    end event (real Prefect objects: a completed future and a Completed state)."""
    from concurrent.futures import Future
    from uuid import uuid4

    from prefect.futures import PrefectConcurrentFuture
    from prefect.states import Completed

    future = PrefectConcurrentFuture(task_run_id=uuid4(), wrapped_future=Future())
    params = {"lr": 0.1, "data": "a.csv", "upstream": future, "states": [Completed()],
              "nested": {"k": (1, [future])}, "plain": [1, [2, {"x": 3}]]}
    assert resolved_params(params) == {"lr": 0.1, "data": "a.csv",
                                       "plain": [1, [2, {"x": 3}]]}
    long = [*range(5000), future]  # past the walk's budget: taken as resolved, bounded
    assert "long" in resolved_params({"long": long})
