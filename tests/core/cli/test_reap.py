"""`cmf reap` and the lost mark of `cmf executions`, on a real process killed outright."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cmf_core.cli import app
from cmf_core.model import ExecutionStatus
from cmf_core.process import host_name
from cmf_core.store import open_store
from tests.support.processes import RunningChild, start_execution

runner = CliRunner()


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args), env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def killed(tmp_path: Path) -> Iterator[tuple[str, RunningChild]]:
    """A store with one execution whose process was killed with SIGKILL (as by the OOM
    killer) and one whose process still runs."""
    url = f"sqlite:///{tmp_path / 'cmf.db'}"
    dead = start_execution(url, stage="train")
    alive = start_execution(url, stage="serve")
    dead.kill()
    try:
        yield url, dead
    finally:
        alive.stop()


def _statuses(url: str) -> dict[str, tuple[ExecutionStatus, str | None]]:
    with open_store(url, "hpc") as s:
        return {e.stage: (e.status, e.error) for e in s.list_executions()}


def test_reap_marks_the_killed_execution_failed_once(killed: tuple[str, RunningChild]) -> None:
    url, dead = killed
    listing = invoke("executions", "--store", url)
    assert "running (lost)" in listing and listing.count("(lost)") == 1
    assert "1 running execution(s) listed are lost" in listing
    rows = json.loads(invoke("executions", "--store", url, "--json"))
    assert {r["stage"]: r["lost"] for r in rows} == {"train": True, "serve": False}
    assert json.loads(invoke("show", dead.execution_id, "--store", url, "--json"))["lost"] is True

    # --dry-run lists it and changes nothing
    text = invoke("reap", "--dry-run", "--store", url)
    assert dead.execution_id in text and str(dead.proc.pid) in text
    assert ("Would mark 1 lost execution(s) failed. Left running: 1 whose process still runs."
            in text)
    data = json.loads(invoke("reap", "--dry-run", "--store", url, "--json"))
    assert (data["dry_run"], data["marked"], data["alive"]) == (True, 0, 1)
    assert [x["id"] for x in data["lost"]] == [dead.execution_id]
    assert _statuses(url) == {"train": (ExecutionStatus.RUNNING, None),
                              "serve": (ExecutionStatus.RUNNING, None)}

    text = invoke("reap", "--store", url)
    assert "Marked 1 lost execution(s) failed. Left running: 1 whose process still runs." in text
    error = (f"process {dead.proc.pid} on host {host_name()} ended without reporting an end "
             "(killed, e.g. out of memory?)")
    assert _statuses(url) == {"train": (ExecutionStatus.FAILED, error),
                              "serve": (ExecutionStatus.RUNNING, None)}

    # idempotent
    again = json.loads(invoke("reap", "--store", url, "--json"))
    assert (again["marked"], again["lost"], again["alive"]) == (0, [], 1)
    assert "No lost executions." in invoke("reap", "--store", url)
    assert "(lost)" not in invoke("executions", "--store", url)
    assert not any(r["lost"] for r in json.loads(invoke("executions", "--store", url, "--json")))
    assert json.loads(invoke("show", dead.execution_id, "--store", url, "--json"))["lost"] is False


def test_an_unknown_pipeline_is_named(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cmf.db'}"
    open_store(url, "hpc").close()
    result = runner.invoke(app, ["reap", "--pipeline", "nope", "--store", url])
    assert result.exit_code != 0 and "no pipeline named 'nope'" in str(result.exception)
