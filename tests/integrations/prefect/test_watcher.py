"""The out-of-process route: `cmf prefect watch` follows a real Prefect server's event stream."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cmf_prefect.watcher import PREFIXES, Watcher
from prefect import flow, task
from typer.testing import CliRunner


@task
def extract(n: int) -> list[int]:
    return list(range(n))


@task
def fit(rows: list[int]) -> float:
    return sum(rows) / len(rows)


@task
def publish(score: float) -> None:
    raise ConnectionError("model registry unreachable")


@flow
def watched(n: int = 4) -> float:
    rows = extract(n)
    score = fit(rows)
    publish(score, return_state=True)
    return score


def _run_flow(n: int) -> tuple[str, dict[str, str]]:
    """Run ``watched``; return its flow run id and {task run id: stage}."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    state = watched(n, return_state=True)
    flow_run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(
            id=FlowRunFilterId(any_=[flow_run_id])))
    return str(flow_run_id), {str(r.id): r.name.rsplit("-", 1)[0] for r in runs}


def _recorded(store: Any, run_ids: list[str]) -> bool:
    """Every run is in the store with a final status."""
    for run_id in run_ids:
        ex = store.get_execution(run_id)
        if ex is None or not ex.status.is_terminal:
            return False
    return True


def _all_server_event_ids(api: str) -> set[str]:
    watcher = Watcher(api)
    ids: set[str] = set()
    with watcher._client() as client:
        page = client.read_events(filter=watcher._filter(None), limit=50)
        while True:
            ids |= {str(e.id) for e in page.events if e.event.startswith(PREFIXES)}
            if not page.next_page:
                return ids
            page = client.read_events_page(page.next_page)


def _start(watcher: Watcher) -> tuple[threading.Thread, threading.Event]:
    stop = threading.Event()
    thread = threading.Thread(target=watcher.run, args=(stop,), daemon=True)
    thread.start()
    return thread, stop


def test_watcher_records_an_unmodified_flow(prefect_api: str, cmf_settings: Any,
                                            cmf_store: Any, drain_events: Callable[[], None],
                                            wait_until: Callable[..., Any]) -> None:
    flow_run_id, tasks = _run_flow(4)
    drain_events()
    watcher = Watcher(prefect_api, settings=cmf_settings)

    def caught_up() -> bool:
        watcher.run(once=True)
        return _recorded(cmf_store, [flow_run_id, *tasks])

    assert wait_until(caught_up), f"not recorded after catch-up: {watcher.stats}"
    by_stage = {cmf_store.get_execution(t).stage: cmf_store.get_execution(t) for t in tasks}
    assert set(by_stage) == {"extract", "fit", "publish"}
    assert by_stage["extract"].status.value == "completed"
    assert by_stage["publish"].status.value == "failed"
    assert "model registry unreachable" in by_stage["publish"].error
    assert by_stage["fit"].properties["prefect.route"] == "watcher"
    run = cmf_store.get_execution(flow_run_id)
    assert (run.pipeline, run.stage, run.status.value) == ("watched", "watched", "completed")
    # links back to the runs in the watched server's UI (PREFECT_UI_URL, from its API URL)
    ui = prefect_api.removesuffix("/").removesuffix("/api")
    assert run.properties["cmf.run_url"] == f"{ui}/runs/flow-run/{flow_run_id}"
    assert by_stage["fit"].properties["cmf.run_url"] == \
        f"{ui}/runs/task-run/{by_stage['fit'].id}"
    assert run.params == {"n": 4}  # read from the flow run on the server
    assert {("extract", "fit"), ("fit", "publish")} <= set(cmf_store.stage_edges("watched"))


@pytest.mark.slow
def test_watcher_restart_loses_nothing_and_records_nothing_twice(
        prefect_api: str, cmf_settings: Any, cmf_store: Any, drain_events: Callable[[], None],
        wait_until: Callable[..., Any]) -> None:
    first = Watcher(prefect_api, settings=cmf_settings, rescan_s=2)
    thread, stop = _start(first)
    run1, tasks1 = _run_flow(3)
    assert wait_until(lambda: _recorded(cmf_store, [run1, *tasks1]), timeout=60)
    stop.set()
    thread.join(30)
    assert not thread.is_alive()

    run2, tasks2 = _run_flow(5)  # while no watcher runs
    drain_events()
    second = Watcher(prefect_api, settings=cmf_settings, rescan_s=2)
    thread, stop = _start(second)
    assert wait_until(lambda: _recorded(cmf_store, [run2, *tasks2]), timeout=60)
    run3, tasks3 = _run_flow(2)  # live, after the restart
    assert wait_until(lambda: _recorded(cmf_store, [run3, *tasks3]), timeout=60)
    drain_events()
    on_server = _all_server_event_ids(prefect_api)
    assert wait_until(lambda: on_server <= set(first.stats.handled_ids)
                      | set(second.stats.handled_ids), timeout=30)
    stop.set()
    thread.join(30)

    handled1, handled2 = first.stats.handled_ids, second.stats.handled_ids
    assert not set(handled1) & set(handled2)  # the restart skipped what was handled before
    assert len(handled1) == len(set(handled1)) and len(handled2) == len(set(handled2))
    assert second.stats.duplicates > 0  # it did look at them again (look-back, stream replay)
    # no loss: every event on the server was handled by one of the two sessions
    assert on_server <= set(handled1) | set(handled2)
    # nothing twice: each RunEvent the watchers sent is stored once, none was sent again
    assert len(cmf_store.lineage_events()) == first.stats.recorded + second.stats.recorded
    for run_id in [run1, run2, run3, *tasks1, *tasks2, *tasks3]:
        assert cmf_store.get_execution(run_id).status.is_terminal


def test_watcher_follows_the_stream_where_an_event_loop_runs(
        prefect_api: str, cmf_settings: Any, cmf_store: Any, drain_events: Callable[[], None],
        wait_until: Callable[..., Any], caplog: pytest.LogCaptureFixture) -> None:
    """A Jupyter cell runs inside ipykernel's event loop, where ``asyncio.run`` raises: the
    watcher follows the stream anyway, and logs no failure."""
    caplog.set_level(logging.WARNING, logger="cmf.prefect")
    watcher = Watcher(prefect_api, settings=cmf_settings, rescan_s=3600)  # no rescan here
    stop = threading.Event()
    stats: list[Any] = []

    async def notebook_cell() -> None:
        asyncio.get_running_loop()  # the cell's code runs in the kernel's loop
        stats.append(watcher.run(stop))  # a blocking call, as a user writes it in a cell

    cell = threading.Thread(target=lambda: asyncio.run(notebook_cell()), daemon=True)
    cell.start()
    try:
        # the live stream is being followed (the catch-up before it is over) ...
        assert wait_until(lambda: any(t.name == "cmf-prefect-watch" and t.is_alive()
                                      for t in threading.enumerate()), timeout=60), \
            [r.getMessage() for r in caplog.records if r.name == "cmf.prefect"]
        run_id, tasks = _run_flow(2)  # ... so this run can only be recorded from the stream
        drain_events()
        assert wait_until(lambda: _recorded(cmf_store, [run_id, *tasks]), timeout=60)
    finally:
        stop.set()
        cell.join(30)
    assert not cell.is_alive()
    assert stats and stats[0].recorded > 0
    assert not [r.getMessage() for r in caplog.records if r.name == "cmf.prefect"]


def _watch_command(api: str, store_url: str, *extra: str) -> list[str]:
    args = ["prefect", "watch", "--api", api, "--store", store_url, "--rescan", "2", *extra]
    if any(ep.name == "prefect" for ep in importlib.metadata.entry_points(group="cmf.commands")):
        return [sys.executable, "-m", "cmf_core", *args]
    code = ("import sys; from cmf_core.cli import app, main; from cmf_prefect.cli import "
            "register; register(app); main(sys.argv[1:])")
    return [sys.executable, "-c", code, *args]


@pytest.mark.slow
def test_watcher_killed_mid_stream_resumes_without_loss(
        prefect_api: str, cmf_settings: Any, cmf_store: Any, tmp_path: Path,
        drain_events: Callable[[], None], wait_until: Callable[..., Any]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMF_")}
    env["CMF_HOME"] = str(tmp_path / ".cmf")
    store_url = cmf_settings.resolved_store_url
    proc = subprocess.Popen(_watch_command(prefect_api, store_url), env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        run1, tasks1 = _run_flow(3)
        assert wait_until(lambda: _recorded(cmf_store, [run1, *tasks1]), timeout=120)
        run2, tasks2 = _run_flow(6)
        drain_events()
    finally:
        proc.send_signal(signal.SIGKILL)  # no chance to save its cursor
        proc.wait(30)
    run3, tasks3 = _run_flow(2)
    drain_events()
    runs = [run1, run2, run3, *tasks1, *tasks2, *tasks3]

    def restarted() -> bool:
        again = subprocess.run(_watch_command(prefect_api, store_url, "--once"), env=env,
                               cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "Prefect events handled" in again.stdout
        return _recorded(cmf_store, runs)

    assert wait_until(restarted, timeout=60)
    for run_id in runs:  # each state change stored once, even those handled twice
        kinds = Counter((e.event_type, e.event_time) for e in cmf_store.lineage_events(run_id))
        assert kinds and max(kinds.values()) == 1, kinds


def test_cli_watch_once(prefect_api: str, cmf_settings: Any, cmf_store: Any,
                        drain_events: Callable[[], None]) -> None:
    import typer
    from cmf_prefect.cli import register

    flow_run_id, _ = _run_flow(2)
    drain_events()
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, ["prefect", "watch", "--api", prefect_api, "--store",
                                      cmf_settings.resolved_store_url, "--once"])
    assert result.exit_code == 0, result.output
    assert "Prefect events handled" in result.output
    assert cmf_store.get_execution(flow_run_id) is not None


def test_cli_watch_needs_an_api_url(monkeypatch: pytest.MonkeyPatch) -> None:
    import typer
    from cmf_prefect.cli import register

    from cmf_core.errors import ConfigError

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, ["prefect", "watch", "--once"])
    assert isinstance(result.exception, ConfigError)
    assert "PREFECT_API_URL" in str(result.exception)


def test_cli_watch_an_unreachable_api_names_it(tmp_path: Path) -> None:
    import socket

    import typer
    from cmf_prefect.cli import register

    from cmf_core.errors import ServiceError

    with socket.socket() as s:  # a port nothing listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    api = f"http://127.0.0.1:{port}/api"
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, ["prefect", "watch", "--api", api, "--once", "--store",
                                      f"sqlite:///{tmp_path / 'cmf.db'}"])
    assert isinstance(result.exception, ServiceError)
    assert str(result.exception).startswith(
        f"cannot read the events of the Prefect API at {api}: ")


def test_cli_watch_a_server_that_never_answers_stops_on_a_second_ctrl_c(tmp_path: Path) -> None:
    """An API address that accepts the connection and never answers (a proxy, a port of some
    other service): Ctrl-C only set the stop flag, checked between requests, and the request
    waits out the Prefect client's timeout and retries, so `cmf prefect watch` went on for
    minutes after "Ctrl-C to stop." The first Ctrl-C says it is stopping; a second stops at
    once (130), without a traceback. A real listening socket on loopback, the real script."""
    import socket

    accepted = threading.Event()
    held: list[socket.socket] = []
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        api = f"http://127.0.0.1:{server.getsockname()[1]}/api"

        def accept() -> None:
            with contextlib.suppress(OSError):
                while True:
                    held.append(server.accept()[0])  # kept open, never answered
                    accepted.set()

        threading.Thread(target=accept, daemon=True).start()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CMF_", "PREFECT_"))}
        env["CMF_HOME"] = str(tmp_path / ".cmf")
        proc = subprocess.Popen(_watch_command(api, f"sqlite:///{tmp_path / 'cmf.db'}"),
                                env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None and proc.stderr is not None
            assert proc.stdout.readline().startswith(f"Watching {api} ")
            assert accepted.wait(60), "the watcher never connected"
            lines: queue.Queue[str] = queue.Queue()

            def read(stream: Any) -> None:
                for line in stream:
                    lines.put(line)
                lines.put("")  # the end

            threading.Thread(target=read, args=(proc.stderr,), daemon=True).start()
            proc.send_signal(signal.SIGINT)
            said = ""  # queue.Empty below: the first Ctrl-C said nothing
            while not said.endswith("Stopping after the current request (Ctrl-C again to stop "
                                    "now).\n"):
                said += lines.get(timeout=60)
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)
            err = said + "".join(iter(lambda: lines.get(timeout=10), ""))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for conn in held:
                conn.close()
    assert proc.returncode == 130, err
    assert "Traceback" not in err, err


def test_two_routes_record_one_execution(auto_route: Any, prefect_api: str, cmf_settings: Any,
                                         cmf_store: Any, drain_events: Callable[[], None],
                                         wait_until: Callable[..., Any]) -> None:
    from cmf_core.store.base import ExecutionFilter

    flow_run_id, tasks = _run_flow(3)
    drain_events()
    runs = [flow_run_id, *tasks]
    watcher = Watcher(prefect_api, settings=cmf_settings, name="second-route")

    def routes(run_id: str) -> set[str]:
        return {json.loads(e.body)["run"]["facets"]["cmf_execution"]["properties"]
                ["prefect.route"] for e in cmf_store.lineage_events(run_id)}

    def both() -> bool:
        watcher.run(once=True)
        return all(routes(r) == {"in-process", "watcher"} for r in runs)

    assert wait_until(both), {r: routes(r) for r in runs}
    mine = [e for e in cmf_store.list_executions(ExecutionFilter(pipeline="watched"))
            if e.id == flow_run_id or e.properties.get("prefect.flow_run_id") == flow_run_id]
    assert sorted(e.id for e in mine) == sorted(runs)  # one execution per run, not two
    assert all(e.status.is_terminal for e in mine)
    # the in-process route got there first: its parameters and energy are kept
    fit = next(e for e in mine if e.stage == "fit")
    assert fit.params == {"rows": [0, 1, 2]}
    assert fit.properties["prefect.route"] == "in-process"
    assert len(cmf_store.energy([fit.id])) == 1


@flow
def pushed(url: str, token: str) -> str:
    return url


def test_watcher_records_flow_parameters_with_secrets_redacted(
        prefect_api: str, cmf_settings: Any, cmf_store: Any,
        drain_events: Callable[[], None], wait_until: Callable[..., Any]) -> None:
    """The in-process route and the hooks record a ``token`` parameter as ``***``; the watcher
    wrote the flow run's parameters as the server gave them, the secret in plain."""
    state = pushed("https://hpc.example.org", "hpc-secret", return_state=True)
    flow_run_id = str(state.state_details.flow_run_id)
    drain_events()
    watcher = Watcher(prefect_api, settings=cmf_settings)

    def caught_up() -> bool:
        watcher.run(once=True)
        return _recorded(cmf_store, [flow_run_id])

    assert wait_until(caught_up), f"not recorded after catch-up: {watcher.stats}"
    run = cmf_store.get_execution(flow_run_id)
    assert run.params == {"url": "https://hpc.example.org", "token": "***"}


@task
def square(x: int) -> int:
    return x * x


@task
def total(squares: list[int]) -> int:
    return sum(squares)


@flow
def mapped(n: int = 3) -> int:
    return total(square.map(range(n)))  # total starts with its parameter still futures


def test_in_process_events_after_the_watchers_keep_resolved_parameters(
        prefect_api: str, cmf_settings: Any, cmf_store: Any, tmp_path: Path,
        drain_events: Callable[[], None], wait_until: Callable[..., Any]) -> None:
    """A deployment run (``flow.serve()``, a worker) records in its own subprocess, often after
    ``cmf prefect watch`` recorded the same runs: the watcher's COMPLETE is then the stored one,
    and a key of the in-process events is kept only where the watcher's have none. The START
    of ``total`` must not carry its still-unresolved futures as the ``squares`` parameter, or
    their tags stay in the store instead of the values the in-process COMPLETE brings."""
    from cmf_prefect import auto
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from cmf_core.config import load_settings
    from cmf_core.openlineage.emit import get_emitter
    from cmf_core.openlineage.ingest import ingest
    from cmf_core.store import open_store

    # the in-process route records into a store of its own (its events arrive later)...
    late = load_settings(store_url=f"sqlite:///{tmp_path / 'late.db'}", site="edge",
                         home=tmp_path / ".cmf-late")
    assert auto.install(late)
    try:
        state = mapped(3, return_state=True)
    finally:
        auto.uninstall()
        get_emitter(late).close()
    drain_events()
    flow_run_id = str(state.state_details.flow_run_id)
    with get_client(sync_client=True) as client:
        tasks = {str(r.id): r.name.rsplit("-", 1)[0] for r in client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))}
    runs = [flow_run_id, *tasks]
    total_id = next(r for r, stage in tasks.items() if stage == "total")
    # ...the watcher records the runs first...
    watcher = Watcher(prefect_api, settings=cmf_settings, name="first-route")
    assert wait_until(lambda: watcher.run(once=True) or _recorded(cmf_store, runs))
    assert cmf_store.get_execution(total_id).properties["prefect.route"] == "watcher"
    # ...then the in-process route's events arrive, in the order it sent them
    late_store = open_store(settings=late)
    try:
        events = [json.loads(e.body) for r in runs for e in late_store.lineage_events(r)]
    finally:
        late_store.close()
    for event in sorted(events, key=lambda e: e["eventTime"]):
        ingest(event, cmf_store, "edge")
    ex = cmf_store.get_execution(total_id)
    assert ex.params == {"squares": [0, 1, 4]}, ex.params
    assert len(cmf_store.energy([total_id])) == 1
    assert sorted(e.id for e in cmf_store.list_executions() if e.id in runs) == sorted(runs)
