"""The explicit route: state hooks on flows and tasks, and the @track decorator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cmf_prefect import hooks
from cmf_prefect.adapter import Recorder
from prefect import flow, task

HOOKS = {"on_running": [hooks.on_running], "on_completion": [hooks.on_completion],
         "on_failure": [hooks.on_failure]}


@pytest.fixture
def recorder(prefect_api: str, cmf_settings: Any) -> Iterator[Recorder]:
    from cmf_core.openlineage.emit import get_emitter

    recorder = Recorder(cmf_settings, background=True)
    hooks.set_recorder(recorder)
    yield recorder
    hooks.set_recorder(Recorder(background=True))
    get_emitter(cmf_settings).close()


@task(**HOOKS)
def clean(rows: list[int]) -> list[int]:
    return [r for r in rows if r >= 0]


@task(retries=1, **HOOKS)
def upload(rows: list[int]) -> None:
    raise PermissionError(f"cannot upload {len(rows)} rows")


@flow(**HOOKS, on_crashed=[hooks.on_failure])
def hooked(rows: list[int]) -> list[int]:
    cleaned = clean(rows)
    upload(cleaned, return_state=True)
    return cleaned


def test_hooks_record_tasks_and_flows(recorder: Recorder, cmf_store: Any) -> None:
    state = hooked([3, -1, 2], return_state=True)
    assert state.is_completed()
    runs = {e.stage: e for e in cmf_store.list_executions()}
    assert set(runs) == {"hooked", "clean", "upload"}
    assert runs["hooked"].params == {"rows": [3, -1, 2]}
    assert runs["hooked"].status.value == "completed"
    assert runs["clean"].params == {"rows": [3, -1, 2]}
    assert runs["clean"].properties["prefect.route"] == "hooks"
    assert runs["upload"].status.value == "failed"  # after its retry: one execution
    assert "cannot upload 2 rows" in runs["upload"].error
    assert ("clean", "upload") in cmf_store.stage_edges("hooked")
    energy = {r.execution_id for r in cmf_store.energy()}
    assert energy == {runs["clean"].id, runs["upload"].id}
    # monitors are released: no entry is left for either task (keyed by task run id)
    assert not [k for k, v in hooks._RUNNING.items() if v[2] in (clean, upload)]


class StopButton(BaseException):
    """What a notebook's stop button or ``sys.exit()`` in a task is to Prefect: no Exception,
    so the task run crashes and Prefect calls none of its hooks (KeyboardInterrupt itself
    would also stop pytest)."""


@task(**HOOKS)
def interrupted(n: int) -> int:
    raise StopButton(f"stopped at {n}")


def test_a_crashed_task_run_is_ended_and_holds_nothing(recorder: Recorder,
                                                       cmf_store: Any) -> None:
    @flow(**HOOKS, on_crashed=[hooks.on_failure])
    def with_crash_hook(n: int) -> int:
        return interrupted(n)

    @flow
    def without_hooks(n: int) -> int:
        return interrupted(n)

    before = len(hooks._RUNNING)
    for n in range(3):
        with pytest.raises(StopButton):
            with_crash_hook(n)
        # the flow's crash hook ended the task run: no monitor (sampler thread) left behind
        assert len(hooks._RUNNING) == before
    with pytest.raises(StopButton):
        without_hooks(3)
    @flow
    def next_run() -> list[int]:
        return clean([1])

    next_run()  # the next run of a hooked task ends the crashed one that no hook reported
    assert len(hooks._RUNNING) == before
    recorder.flush(30)
    crashed = [e for e in cmf_store.list_executions() if e.stage == "interrupted"]
    assert len(crashed) == 4
    assert all(e.status.value == "failed" for e in crashed), [e.status for e in crashed]
    assert all("stopped at" in (e.error or "") for e in crashed), [e.error for e in crashed]
    assert {r.execution_id for r in cmf_store.energy()} >= {e.id for e in crashed}


def test_a_failing_flow_is_recorded_failed(recorder: Recorder, cmf_store: Any) -> None:
    @flow(**HOOKS)
    def doomed() -> None:
        raise RuntimeError("no GPU on this node")

    assert doomed(return_state=True).is_failed()
    (run,) = cmf_store.list_executions()
    assert run.status.value == "failed" and "no GPU on this node" in run.error


def test_track_records_one_flow_and_its_tasks(prefect_api: str, cmf_settings: Any,
                                             cmf_store: Any) -> None:
    from cmf_prefect import auto

    from cmf_core.openlineage.emit import get_emitter

    @task
    def square(x: int) -> int:
        return x * x

    @flow
    def child(x: int) -> int:
        return square(x)

    @hooks.track
    @flow
    def opted_in(x: int) -> int:
        return child(square(x))

    @flow
    def not_opted_in(x: int) -> int:
        return square(x)

    auto.install(cmf_settings, record_all=False)
    try:
        assert opted_in(2) == 16
        assert not_opted_in(3) == 9
    finally:
        auto.uninstall()
        get_emitter(cmf_settings).close()
    pipelines = {(e.pipeline, e.stage) for e in cmf_store.list_executions()}
    assert pipelines == {("opted-in", "opted-in"), ("opted-in", "square"),
                         ("child", "child"), ("child", "square")}  # the subflow comes along


def test_track_on_a_task_adds_the_hooks() -> None:
    @task
    def step() -> None:
        pass

    tracked = hooks.track(step)
    assert hooks.on_running in tracked.on_running_hooks
    assert hooks.on_completion in tracked.on_completion_hooks
    assert hooks.on_failure in tracked.on_failure_hooks
    assert step.on_running_hooks == []


def test_track_rejects_other_objects() -> None:
    from cmf_core.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="takes a Prefect flow or task"):
        hooks.track(print)


def test_the_hooks_identify_files_by_their_recorders_digest_max_mb(
        prefect_api: str, tmp_path: Path) -> None:
    """A file above ``digest_max_mb`` of the settings the route records with is identified by
    path, size and mtime, as by every other route (Prefect used its own 2 GiB limit, so a
    file of 1-2 GiB was another artifact than the Airflow listener's or Cmf.log_dataset's)."""
    from cmf_core.config import load_settings
    from cmf_core.identity import file_digest
    from cmf_core.openlineage.emit import get_emitter
    from cmf_core.openlineage.local import local_stat_identity
    from cmf_core.store import open_store

    settings = load_settings(store_url=f"sqlite:///{tmp_path / 'cmf.db'}", site="edge",
                             home=tmp_path / ".cmf", digest_max_mb=1 / 1024)  # 1 KiB
    small, big = tmp_path / "small.csv", tmp_path / "big.csv"
    small.write_bytes(b"x" * 512)
    big.write_bytes(b"y" * 4096)

    @task(**HOOKS)
    def read(paths: list[str]) -> int:
        return len(paths)

    @flow
    def reading(paths: list[str]) -> int:
        return read(paths)

    recorder = Recorder(settings, background=True)
    hooks.set_recorder(recorder)
    try:
        assert reading([str(small), str(big)]) == 2
        assert recorder.flush(timeout=60)
    finally:
        hooks.set_recorder(Recorder(background=True))
        get_emitter(settings).close()
    store = open_store(settings=settings)
    try:
        (run,) = [e for e in store.list_executions() if e.stage == "read"]
        ids = {store.get_artifact(e.artifact_id).uri: e.artifact_id
               for e in store.events(execution_ids=[run.id]) if e.type.value == "INPUT"}
    finally:
        store.close()
    assert ids[str(small)] == file_digest(small)
    assert ids[str(big)] == local_stat_identity(str(big))[0]
