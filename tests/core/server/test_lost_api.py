"""The executions API marks a running execution ``lost`` as ``cmf executions`` does: recorded
on the server's host, its process gone, no event of it waiting in the server's spool; real
processes, a real store and a real server on loopback."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

import cmf_core.lost
from cmf_core.config import load_settings
from cmf_core.model import Execution, ExecutionStatus
from cmf_core.openlineage.emit import write_spool_file
from cmf_core.process import PROPERTY, describe, released_property, this_process
from cmf_core.store import Store
from tests.core.server.conftest import LiveServer
from tests.support.processes import RunningChild, start_execution

Serve = Callable[..., AbstractContextManager[LiveServer]]


def _ended_process() -> dict[str, Any]:
    """The ``cmf.process`` facts of a real process of this host that has run and ended."""
    proc = subprocess.Popen(["sleep", "30"])
    try:
        info = describe(proc.pid)
    finally:
        proc.kill()
        proc.wait()
    return info.to_dict()


@dataclass
class Recorded:
    """The executions of the store, by what the server must judge them."""

    killed: str  # a real Cmf task process, killed outright: lost
    ended: str  # facts of an ended process: lost
    live: str  # this (test) process: running
    elsewhere: str  # another host: running, never guessed lost
    bare: str  # no process facts: running
    odd: str  # a malformed cmf.process: running
    done: str  # completed, its process gone: not lost
    released: str  # its process gone, released by the orchestrator (deferred): running


@pytest.fixture
def recorded(sqlite_store: Store, tmp_path: Path) -> Iterator[Recorded]:
    child: RunningChild = start_execution(f"sqlite:///{tmp_path / 'cmf.db'}", pipeline="p",
                                          stage="killed")
    child.kill()
    gone = _ended_process()
    here = this_process().to_dict()

    def put(stage: str, props: dict[str, Any] | None,
            status: ExecutionStatus = ExecutionStatus.RUNNING, **more: Any) -> str:
        ex = Execution(pipeline="p", stage=stage, site="site-a", status=status,
                       properties={**({PROPERTY: props} if props is not None else {}), **more})
        sqlite_store.put([ex])
        return ex.id

    yield Recorded(
        killed=child.execution_id,
        ended=put("ended", gone),
        live=put("live", here),
        elsewhere=put("elsewhere", {**gone, "host": "another-host.example"}),
        bare=put("bare", None),
        odd=put("odd", {"host": here["host"], "pid": "1", "create_time": []}),
        done=put("done", gone, ExecutionStatus.COMPLETED),
        released=put("released", gone, **released_property("deferred")))


def _lost_flags(c: httpx.Client, **params: Any) -> dict[str, bool]:
    r = c.get("/api/v1/executions", params=params)
    assert r.status_code == 200, r.text
    return {e["id"]: e["lost"] for e in r.json()["items"]}


def test_only_running_executions_whose_process_here_is_gone_are_lost(
        serve: Serve, recorded: Recorded) -> None:
    lost = {recorded.killed, recorded.ended}
    with serve() as live, live.client() as c:
        flags = _lost_flags(c)
        assert flags == {i: i in lost for i in vars(recorded).values()}
        assert _lost_flags(c, status="running", limit=2) == {recorded.killed: True,
                                                              recorded.ended: True}
        for eid, want in flags.items():
            detail = c.get(f"/api/v1/executions/{eid}").json()
            assert (detail["lost"], detail["status"]) == (
                want, "completed" if eid == recorded.done else "running")
        graph = c.get("/api/v1/graph", params={"pipeline": "p"}).json()
        assert {e["id"]: e["lost"] for e in graph["executions"]} == flags
        # what the page's tooltip names: the recorded process
        killed = c.get(f"/api/v1/executions/{recorded.killed}").json()
        assert killed["properties"][PROPERTY]["pid"] > 0
        schema = c.get("/openapi.json").json()["paths"]["/api/v1/executions"]["get"]
        assert "`lost`" in schema["description"] and "cmf reap" in schema["description"]


def test_an_execution_with_an_event_in_the_server_s_spool_is_not_lost(
        serve: Serve, recorded: Recorded) -> None:
    spool = load_settings().spool_path  # the CMF home the server runs with
    write_spool_file(spool, {"eventType": "FAIL", "run": {"runId": recorded.ended.upper()}},
                     "x")
    with serve() as live, live.client() as c:
        flags = _lost_flags(c)
        assert [i for i, lost in flags.items() if lost] == [recorded.killed]
        assert c.get(f"/api/v1/executions/{recorded.ended}").json()["lost"] is False


def test_judging_that_fails_leaves_the_listing_whole(
        serve: Serve, recorded: Recorded, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(execution: Execution) -> Any:
        raise RuntimeError("a /proc that answers oddly")

    def unreadable(spool: Path) -> set[str]:
        raise PermissionError(13, "Permission denied", str(spool))

    with serve() as live, live.client() as c:
        monkeypatch.setattr(cmf_core.lost, "judge", broken)
        assert set(_lost_flags(c).values()) == {False}
        assert c.get(f"/api/v1/executions/{recorded.killed}").json()["lost"] is False
        assert c.get("/api/v1/graph", params={"pipeline": "p"}).status_code == 200
        monkeypatch.undo()
        assert _lost_flags(c)[recorded.killed] is True
        # a spool folder that cannot be read: which ends wait is not known, so none is lost
        monkeypatch.setattr(cmf_core.lost, "spooled_run_ids", unreadable)
        assert set(_lost_flags(c).values()) == {False}

