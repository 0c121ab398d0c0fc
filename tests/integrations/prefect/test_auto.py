"""The in-process route: real flows against a real Prefect server, recorded with no code change."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.metadata
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pydantic
import pytest
from prefect import flow, task
from prefect.assets import materialize

from cmf_core.guard import FAILURES
from cmf_core.identity import file_digest
from cmf_core.openlineage.naming import dataset_naming

UNMODIFIED_FLOW = '''
import sys
from pathlib import Path

from prefect import flow, task


@task
def prepare(n: int, out: str) -> str:
    Path(out).write_text(",".join(str(i) for i in range(n)))
    return out


@task
def train(data: str, lr: float) -> dict:
    values = [int(x) for x in Path(data).read_text().split(",")]
    return {"loss": 1.0 / (1 + sum(values)), "lr": lr}


@task
def evaluate(metrics: dict) -> None:
    raise RuntimeError("evaluation data missing")


@flow
def edge_pipeline(n: int = 5, out: str = "data.csv", lr: float = 0.1):
    data = prepare(n, out)
    metrics = train(data, lr)
    evaluate(metrics, return_state=True)
    return metrics


if __name__ == "__main__":
    state = edge_pipeline(n=int(sys.argv[1]), out=sys.argv[2], return_state=True)
    print("FLOW_RUN_ID", state.state_details.flow_run_id)
'''


def _plugin_path(tmp_path: Path) -> str:
    """A folder whose dist-info declares the plugin, unless the installed package does."""
    if any(ep.name == "cmf" for ep in importlib.metadata.entry_points(group="prefect.plugins")):
        return ""
    info = tmp_path / "plugin-path" / "cmf_prefect_plugin-0.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: cmf-prefect-plugin\n"
                                   "Version: 0.0\n")
    (info / "entry_points.txt").write_text("[prefect.plugins]\ncmf = cmf_prefect.plugin\n")
    return str(info.parent)


def _task_runs(flow_run_id: str) -> dict[str, Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(flow_run_id)])))
    return {str(r.id): r for r in runs}


def _by_stage(store: Any, pipeline: str) -> dict[str, Any]:
    from cmf_core.store.base import ExecutionFilter

    return {e.stage: e for e in store.list_executions(ExecutionFilter(pipeline=pipeline))}


def _artifacts(store: Any, execution_id: str, kind: str) -> dict[str, Any]:
    events = [e for e in store.events([execution_id]) if e.type.value.lower() == kind]
    return {a.name: a for a in (store.get_artifact(e.artifact_id) for e in events)}


@pytest.mark.slow
def test_unmodified_flow_is_recorded_through_the_prefect_plugin(
        prefect_api: str, cmf_settings: Any, cmf_store: Any, tmp_path: Path) -> None:
    script = tmp_path / "edge_flow.py"
    script.write_text(UNMODIFIED_FLOW)
    data = tmp_path / "data.csv"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMF_")}
    env.update(PREFECT_API_URL=prefect_api, PREFECT_PLUGINS_ENABLED="true",
               CMF_STORE_URL=cmf_settings.resolved_store_url, CMF_SITE="edge",
               CMF_HOME=str(tmp_path / ".cmf"),
               PYTHONPATH=os.pathsep.join(p for p in (_plugin_path(tmp_path),
                                                      env.get("PYTHONPATH", "")) if p))
    done = subprocess.run([sys.executable, str(script), "5", str(data)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    flow_run_id = done.stdout.split("FLOW_RUN_ID", 1)[1].split()[0]
    task_runs = _task_runs(flow_run_id)
    assert len(task_runs) == 3

    executions = {e.id: e for e in cmf_store.list_executions()}
    # one execution per run, keyed by Prefect's own ids
    assert set(executions) == {flow_run_id, *task_runs}
    stages = _by_stage(cmf_store, "edge-pipeline")
    assert set(stages) == {"edge-pipeline", "prepare", "train", "evaluate"}  # Prefect: - for _
    assert stages["edge-pipeline"].status.value == "completed"
    assert stages["edge-pipeline"].params == {"n": 5, "out": str(data), "lr": 0.1}

    prepare, train, evaluate = stages["prepare"], stages["train"], stages["evaluate"]
    assert prepare.status.value == "completed" and prepare.params == {"n": 5, "out": str(data)}
    written = _artifacts(cmf_store, prepare.id, "output")
    assert written[str(data)].id == file_digest(data)
    assert train.params == {"data": str(data), "lr": 0.1}
    read = _artifacts(cmf_store, train.id, "input")
    assert read[str(data)].id == file_digest(data)  # the file came in through a future
    assert f"task-run/{prepare.id}/result" in read
    assert {m.name: m.value for m in cmf_store.metrics([train.id])} == \
        {"loss": pytest.approx(1 / 11), "lr": 0.1}

    assert evaluate.status.value == "failed"
    assert "evaluation data missing" in (evaluate.error or "")
    assert set(cmf_store.stage_edges("edge-pipeline")) == {("prepare", "train"),
                                                           ("train", "evaluate")}
    energy = {r.execution_id: r for r in cmf_store.energy()}
    assert set(energy) == set(task_runs)
    assert all(r.energy_kwh >= 0 and "components" in r.details for r in energy.values())


KILLED_FLOW = '''
import os
import signal

from prefect import flow, task


@task
def download(url: str) -> str:
    return url.rsplit("/", 1)[-1]


@task
def crash(name: str) -> None:
    os.kill(os.getpid(), signal.SIGKILL)  # the node dies mid-flow


@flow
def doomed_edge(url: str = "https://example.org/weights.bin"):
    crash(download(url))


if __name__ == "__main__":
    doomed_edge()
'''


@pytest.mark.slow
def test_a_killed_process_loses_no_recorded_event(prefect_api: str, cmf_settings: Any,
                                                  cmf_store: Any, tmp_path: Path) -> None:
    from cmf_core.openlineage.emit import Emitter

    script = tmp_path / "killed_flow.py"
    script.write_text(KILLED_FLOW)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMF_")}
    env.update(PREFECT_API_URL=prefect_api, PREFECT_PLUGINS_ENABLED="true",
               CMF_STORE_URL=cmf_settings.resolved_store_url, CMF_SITE="edge",
               CMF_HOME=str(cmf_settings.home_path),
               PYTHONPATH=os.pathsep.join(p for p in (_plugin_path(tmp_path),
                                                      env.get("PYTHONPATH", "")) if p))
    done = subprocess.run([sys.executable, str(script)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == -9, done.stderr[-3000:]
    # the next emitter at this site (any process) replays what the dead one had not recorded
    Emitter(cmf_settings).retry_spool()
    stages = _by_stage(cmf_store, "doomed-edge")
    assert set(stages) == {"doomed-edge", "download", "crash"}
    assert stages["download"].status.value == "completed"
    assert stages["crash"].status.value == "running"  # it never ended
    assert f"task-run/{stages['download'].id}/result" in _artifacts(
        cmf_store, stages["crash"].id, "input")


def test_failures_retries_and_tasks_that_never_ran(auto_route: Any, cmf_store: Any,
                                                   prefect_api: str) -> None:
    attempts: list[int] = []

    @task(retries=2)
    def flaky(x: int) -> int:
        attempts.append(x)
        raise ValueError(f"bad input {x}")

    @task(timeout_seconds=0.5)
    def slow() -> None:
        time.sleep(1.5)

    @task
    def after(x: int) -> int:
        return x + 1

    @flow
    def failing(x: int = 3) -> None:
        fut = flaky.submit(x)
        after.submit(fut).wait()
        slow(return_state=True)
        fut.result()

    state = failing(return_state=True)
    assert state.is_failed()
    assert len(attempts) == 3
    stages = _by_stage(cmf_store, "failing")
    assert stages["failing"].status.value == "failed"
    flaky_run = stages["flaky"]
    assert flaky_run.status.value == "failed"  # three tries, one execution
    assert "bad input 3" in flaky_run.error
    assert flaky_run.properties["prefect.run_count"] == 3
    assert stages["after"].status.value == "skipped"  # its upstream failed: it never ran
    assert stages["slow"].status.value == "failed"  # Prefect ends no span on a timeout
    assert "timeout" in stages["slow"].error.lower()
    stack = flaky_run.properties["openlineage.run_facets"]["errorMessage"]["stackTrace"]
    assert "ValueError: bad input 3" in stack
    assert len(cmf_store.list_executions()) == 4
    # each run links to its page in Prefect's UI (PREFECT_UI_URL, from the API URL), so its
    # logs are one click away
    ui = prefect_api.removesuffix("/").removesuffix("/api")
    assert ui.startswith("http://127.0.0.1:")
    assert stages["failing"].properties["cmf.run_url"] == \
        f"{ui}/runs/flow-run/{stages['failing'].id}"
    assert {s: e.properties["cmf.run_url"] for s, e in stages.items() if s != "failing"} == {
        s: f"{ui}/runs/task-run/{e.id}" for s, e in stages.items() if s != "failing"}


def test_a_timed_out_task_run_ends_before_the_next_task_run(auto_route: Any,
                                                            cmf_store: Any) -> None:
    @task(timeout_seconds=0.3)
    def stuck() -> None:
        time.sleep(1.5)

    @task
    def after_it() -> int:
        return 1

    @flow
    def timing_out() -> int:
        stuck(return_state=True)
        return after_it()

    assert timing_out() == 1
    stages = _by_stage(cmf_store, "timing-out")
    assert stages["stuck"].status.value == "failed"
    assert stages["stuck"].properties["prefect.state"] == "TimedOut"
    # measured until the next task run starts (Prefect ends no span for it), not until the
    # flow run ends: the next task's energy is not counted twice
    assert stages["stuck"].ended_at <= stages["after_it"].started_at
    assert {r.execution_id for r in cmf_store.energy()} == {stages["stuck"].id,
                                                            stages["after_it"].id}

@pytest.mark.filterwarnings("ignore:Logger 'prefect.task_runs' attempted to send logs")
def test_a_task_run_that_raises_a_timeout_outside_a_flow_is_recorded_failed(
        auto_route: Any, cmf_store: Any) -> None:
    @task
    def fetch(url: str) -> None:
        raise TimeoutError(f"{url} did not answer")  # socket.timeout is a TimeoutError

    state = fetch("http://10.0.0.1/weights", return_state=True)
    assert state.name == "TimedOut"  # Prefect ends no span for it
    auto_route.recorder.flush()
    [run] = cmf_store.list_executions()
    assert run.status.value == "failed"  # was: running forever, its energy monitor never stopped
    assert "did not answer" in run.error
    assert [r.execution_id for r in cmf_store.energy()] == [run.id]
    assert not auto_route.tasks

def test_a_task_run_not_waited_for_is_recorded_when_it_ends(auto_route: Any, cmf_store: Any,
                                                            wait_until: Any) -> None:
    import threading

    from opentelemetry import trace
    from opentelemetry.sdk.trace import SpanProcessor

    flow_ended = threading.Event()

    class FlowEnd(SpanProcessor):  # runs after cmf's processor: the flow run's span has ended
        def on_end(self, span: Any) -> None:
            if (span.attributes or {}).get("prefect.run.type") == "flow":
                flow_ended.set()

    trace.get_tracer_provider().add_span_processor(FlowEnd())  # type: ignore[attr-defined]

    @task
    def background(x: int) -> int:
        flow_ended.wait(30)
        return x

    @flow
    def fire_and_forget() -> None:
        background.submit(1)  # never waited for: Prefect runs it on after the flow run ends

    fire_and_forget()

    def recorded() -> list[str]:
        auto_route.recorder.flush()
        return [e.status.value for e in cmf_store.list_executions() if e.stage == "background"]

    assert wait_until(lambda: recorded() == ["completed"])  # was: aborted, "state Pending"

def test_materialized_assets_become_artifacts(auto_route: Any, cmf_store: Any,
                                              tmp_path: Path) -> None:
    raw = f"file://{tmp_path}/raw.csv"
    features = "s3://edge-bucket/features.parquet"

    @materialize(raw)
    def extract() -> str:
        (tmp_path / "raw.csv").write_text("a,b\n1,2\n")
        return "ok"

    @materialize(features)
    def featurize(raw_ok: str) -> int:
        return 2

    @flow
    def assets_flow() -> None:
        featurize(extract())

    assets_flow()
    stages = _by_stage(cmf_store, "assets-flow")
    out = _artifacts(cmf_store, stages["extract"].id, "output")
    assert dataset_naming(raw)[1] in out
    feat_in = _artifacts(cmf_store, stages["featurize"].id, "input")
    feat_out = _artifacts(cmf_store, stages["featurize"].id, "output")
    assert dataset_naming(raw)[1] in feat_in  # upstream asset, through Prefect's asset context
    assert "features.parquet" in feat_out
    assert ("extract", "featurize") in cmf_store.stage_edges("assets-flow")


def test_async_flows_and_subflows(auto_route: Any, cmf_store: Any) -> None:
    @task
    async def double(x: int) -> int:
        await asyncio.sleep(0.01)
        return 2 * x

    @flow
    async def inner(x: int) -> int:
        return await double(x)

    @flow
    async def outer() -> int:
        a = await double(1)
        return await inner(a)

    assert asyncio.run(outer()) == 4
    outer_stages = _by_stage(cmf_store, "outer")
    inner_stages = _by_stage(cmf_store, "inner")
    assert set(outer_stages) == {"outer", "double"}
    assert set(inner_stages) == {"inner", "double"}
    assert inner_stages["inner"].params == {"x": 2}
    assert all(e.status.value == "completed" for e in cmf_store.list_executions())
    assert "prefect.parent_task_run_id" in inner_stages["inner"].properties


def test_a_broken_store_never_breaks_the_flow(prefect_api: str, tmp_path: Path) -> None:
    from cmf_prefect import auto

    from cmf_core.config import load_settings

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    settings = load_settings(store_url=f"sqlite:///{blocker}/cmf.db", site="edge",
                             spool_dir=tmp_path / "spool", hook_timeout_s=2)
    before = sum(FAILURES.values())

    @task
    def step(x: int) -> int:
        return x + 1

    @flow
    def resilient() -> int:
        return step(1)

    assert auto.install(settings)
    try:
        assert resilient() == 2
    finally:
        auto.uninstall()
    assert sum(FAILURES.values()) > before
    spooled = list((tmp_path / "spool").glob("*.json"))
    assert len(spooled) == 4  # START and COMPLETE of the flow run and of the task run, kept


def test_a_span_that_cannot_be_read_is_reported_not_raised() -> None:
    """A span whose attributes raise (a stand-in: no real OpenTelemetry span does that, but a
    third-party SDK's might) is reported at start and at end; the run is never interrupted."""
    from cmf_prefect.auto import CmfSpanProcessor

    class Unreadable:
        @property
        def attributes(self) -> Any:
            raise RuntimeError("span closed")

    before = FAILURES["reading a Prefect run span"]
    processor = CmfSpanProcessor()
    processor.on_start(Unreadable())
    processor.on_end(Unreadable())
    assert FAILURES["reading a Prefect run span"] == before + 2


def test_disabled_installs_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    from cmf_prefect import auto

    monkeypatch.setenv("CMF_DISABLED", "true")
    assert auto.install() is False


def test_the_plugin_module_is_a_prefect_plugin() -> None:
    import pluggy
    from cmf_prefect import plugin
    from prefect._internal.plugins.manager import PM_PROJECT_NAME
    from prefect._internal.plugins.spec import HookSpec

    pm = pluggy.PluginManager(PM_PROJECT_NAME)
    pm.add_hookspecs(HookSpec)
    pm.register(plugin, name="cmf")
    assert [impl.plugin_name for impl in pm.hook.setup_environment.get_hookimpls()] == ["cmf"]


def test_a_folder_that_cannot_be_read_keeps_its_events(auto_route: Any, cmf_store: Any,
                                                       tmp_path: Path) -> None:
    folder = tmp_path / "scratch"
    folder.mkdir()
    (folder / "a.txt").write_text("a")
    (folder / "mem").symlink_to("/proc/self/mem")  # reading it fails (EIO), even as root

    @task
    def scan(path: str) -> str:
        return path

    @flow
    def scanning(path: str) -> str:
        return scan(path)

    assert scanning(str(folder)) == str(folder)
    stages = _by_stage(cmf_store, "scanning")
    assert stages["scan"].status.value == "completed"
    read = _artifacts(cmf_store, stages["scan"].id, "input")
    assert read[str(folder)].id.startswith("version:")  # identified by path, size and time
    assert str(folder) in _artifacts(cmf_store, stages["scan"].id, "output")


def test_subflows_do_not_wait_for_a_slow_store(prefect_api: str, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A locked store (another process's long transaction, held here with sqlite3): at most the
    outermost flow run waits, once, up to the hook timeout, and a flow run right after does
    not wait at all; every event is recorded once the store is free."""
    import sqlite3

    from cmf_prefect import adapter, auto

    from cmf_core.config import load_settings
    from cmf_core.openlineage.emit import get_emitter
    from cmf_core.store import open_store

    db = tmp_path / "cmf.db"
    settings = load_settings(store_url=f"sqlite:///{db}", site="edge", home=tmp_path / ".cmf",
                             hook_timeout_s=1.0)
    waits: list[float] = []
    flush = adapter.Recorder.flush

    def timed_flush(self: Any, timeout: float | None = None) -> bool:  # the real flush, timed
        t = time.monotonic()
        try:
            return flush(self, timeout)
        finally:
            waits.append(time.monotonic() - t)

    monkeypatch.setattr(adapter.Recorder, "flush", timed_flush)

    @task
    def tk(i: int) -> int:
        return i

    @flow
    def child(i: int) -> int:
        return tk(i)

    @flow
    def nesting(n: int = 3) -> list[int]:
        return [child(i) for i in range(n)]

    assert auto.install(settings)
    # the lock is held before the store exists: opening it, which creates its tables, waits (an
    # up-to-date store records to its journal without the lock, so it would not be slow)
    lock = sqlite3.connect(db, isolation_level=None)
    lock.execute("PRAGMA journal_mode=WAL")
    lock.execute("BEGIN IMMEDIATE")
    try:
        assert nesting() == [0, 1, 2]
        first, waits[:] = sum(waits), []
        assert nesting() == [0, 1, 2]
        second = sum(waits)
        t = time.monotonic()
        adapter._flush_at_exit()  # the interpreter's exit, the store still locked
        at_exit = time.monotonic() - t
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    # at most one bounded wait, at the outermost flow's end (was 4 x 1 s); none when the
    # emitter's start-up spool replay already timed out (its breaker then spools at once)
    assert first < 1.9
    assert second < 0.1  # the sink timed out just before: no wait
    assert at_exit < 2.5  # hook_timeout_s, not 30 s: the queued events are in the spool
    try:
        assert auto.ROUTE.recorder.flush(timeout=120)
        get_emitter(settings).retry_spool()
        store = open_store(settings=settings)
        assert len(store.list_executions()) == 2 * (1 + 3 * 2)  # nothing lost
        store.close()
    finally:
        auto.uninstall()
        get_emitter(settings).close()


def test_a_cached_task_run_is_completed_with_no_energy_of_its_own(auto_route: Any,
                                                                  cmf_store: Any) -> None:
    from prefect.cache_policies import INPUTS

    calls: list[int] = []

    @task(cache_policy=INPUTS)
    def costly(x: int) -> int:
        calls.append(x)
        return x * 10

    @task(cache_key_fn=lambda context, parameters: f"cmf-test-{parameters['x']}")
    def keyed(x: int) -> int:
        calls.append(x)
        return x + 1

    @flow
    def caching(x: int) -> int:
        return costly(x) + costly(x) + keyed(x) + keyed(x)

    x = uuid4().int  # Prefect keeps cached results across sessions: a key of this test's own
    assert caching(x) == 2 * 10 * x + 2 * (x + 1)
    assert len(calls) == 2  # each computed once
    runs = [e for e in cmf_store.list_executions() if e.stage in ("costly", "keyed")]
    assert len(runs) == 4 and all(e.status.value == "completed" for e in runs)
    cached = {e.id for e in runs if e.properties["prefect.state"] == "Cached"}
    assert len(cached) == 2
    measured = {r.execution_id for r in cmf_store.energy()}
    assert measured == {e.id for e in runs} - cached  # a cache lookup measures nothing


class TrainConfig(pydantic.BaseModel):
    lr: float = 0.01
    layers: list[int] = [64, 32]
    api_key: str = "sk-not-recorded"


@dataclasses.dataclass
class DataConfig:
    path: str = "data.csv"
    split: float = 0.2
    model: TrainConfig = dataclasses.field(default_factory=TrainConfig)


def test_pydantic_and_dataclass_parameters_are_recorded_by_their_fields(
        auto_route: Any, cmf_store: Any) -> None:
    @task
    def fit(cfg: TrainConfig, data: DataConfig) -> float:
        return cfg.lr * data.split

    @flow
    def configured(cfg: TrainConfig, data: DataConfig) -> float:
        return fit(cfg, data)

    configured(TrainConfig(lr=0.1), DataConfig())
    stages = _by_stage(cmf_store, "configured")
    train = {"lr": 0.1, "layers": [64, 32], "api_key": "***"}
    data = {"path": "data.csv", "split": 0.2,
            "model": {"lr": 0.01, "layers": [64, 32], "api_key": "***"}}
    assert stages["configured"].params == {"cfg": train, "data": data}
    assert stages["fit"].params == {"cfg": train, "data": data}


def test_files_are_identified_by_the_routes_digest_max_mb(prefect_api: str,
                                                          tmp_path: Path) -> None:
    """The in-process route reads files up to ``digest_max_mb`` of its settings (1 KiB here);
    a bigger one is identified by path, size and mtime, as by every other route."""
    from cmf_prefect import auto

    from cmf_core.config import load_settings
    from cmf_core.openlineage.emit import get_emitter
    from cmf_core.openlineage.local import local_stat_identity
    from cmf_core.store import open_store

    settings = load_settings(store_url=f"sqlite:///{tmp_path / 'cmf.db'}", site="edge",
                             home=tmp_path / ".cmf", digest_max_mb=1 / 1024)
    small, big = tmp_path / "small.csv", tmp_path / "big.csv"
    small.write_bytes(b"x" * 512)

    @task
    def write(path: str) -> str:
        Path(path).write_bytes(b"y" * 4096)
        return path

    @task
    def read(path: str) -> int:
        return len(Path(path).read_bytes())

    @flow
    def sized() -> int:
        write(str(big))
        return read(str(small))

    assert auto.install(settings)
    try:
        assert sized() == 512
    finally:
        auto.uninstall()
        get_emitter(settings).close()
    store = open_store(settings=settings)
    try:
        runs = _by_stage(store, "sized")
        written = _artifacts(store, runs["write"].id, "output")
        read_in = _artifacts(store, runs["read"].id, "input")
    finally:
        store.close()
    assert written[str(big)].id == local_stat_identity(str(big))[0]
    assert read_in[str(small)].id == file_digest(small)
