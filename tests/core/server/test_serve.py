"""``cmf serve``: a real server process, fed by openlineage-python's HTTP transport."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import typer
from openlineage.client import OpenLineageClient
from typer.testing import CliRunner

from cmf_core.cli import serve_cmds
from cmf_core.errors import ConfigError, StoreError
from cmf_core.model import ExecutionStatus
from cmf_core.openlineage.convert import to_run_events
from cmf_core.store import open_store
from tests.core.openlineage.conftest import build_lineage
from tests.support.postgres import free_port

ROOT = Path(__file__).resolve().parents[3]
APP = ("import typer\nfrom cmf_core.cli import serve_cmds\napp = typer.Typer()\n"
       "serve_cmds.register(app)\napp()\n")


def cli() -> typer.Typer:
    app = typer.Typer()
    serve_cmds.register(app)
    return app


def _wait_ready(proc: subprocess.Popen[str], url: str) -> None:
    """Until the `cmf serve` process ``proc`` answers its health route at ``url``."""
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(url + "/api/v1/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, "cmf serve did not start"
        time.sleep(0.2)


def test_cmf_serve_records_what_an_openlineage_client_posts(tmp_path: Path) -> None:
    db, port = tmp_path / "served.db", free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMF_")}
    env.update(CMF_HOME=str(tmp_path / "home"), CMF_TOKEN="tok", PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", APP, "--port", str(port), "--store",
                             f"sqlite:///{db}"], env=env, cwd=ROOT, stderr=subprocess.PIPE,
                            text=True)
    lineage = build_lineage()
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_ready(proc, url)
        client = OpenLineageClient(config={"transport": {
            "type": "http", "url": url, "auth": {"type": "api_key", "apiKey": "tok"}}})
        for event in to_run_events(lineage):
            client.emit(event)
        assert httpx.post(url + "/api/v1/lineage", json={}).status_code == 401
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert f"on http://127.0.0.1:{port}" in err and "writes need the token" in err
    assert f"no CMF store was at {db.resolve()}; created a NEW, empty one there" in err
    with open_store(f"sqlite:///{db}", site="x") as store:
        ex = store.get_execution(lineage.execution.id)
    assert ex is not None and ex.status is ExecutionStatus.COMPLETED


def test_a_web_page_under_another_host_name_is_refused(tmp_path: Path) -> None:
    """DNS rebinding: a page at http://evil.example:PORT/ whose name resolves to 127.0.0.1
    could read and write a token-less server on loopback (the browser sends its own name as
    the Host). Only loopback names and serve_allowed_hosts are answered now."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMF_")}
    env.update(CMF_HOME=str(tmp_path / "home"), PYTHONPATH=str(ROOT),
               CMF_SERVE_ALLOWED_HOSTS='["cmf.example.org"]')
    proc = subprocess.Popen([sys.executable, "-c", APP, "--port", str(port)], env=env,
                            cwd=ROOT, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(proc, url)
        event = {"eventType": "START", "eventTime": "2026-11-29T10:00:00Z",
                 "run": {"runId": "01936c1e-8f4a-7000-8000-000000000001"},
                 "job": {"namespace": "x", "name": "planted"}, "producer": "https://x",
                 "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"}
        for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.nip.io"):
            for r in (httpx.get(url + "/api/v1/pipelines", headers={"Host": host}),
                      httpx.post(url + "/api/v1/lineage", json=event, headers={"Host": host}),
                      httpx.get(url + "/", headers={"Host": host})):
                assert r.status_code == 400, (host, r.request.url, r.status_code)
                assert f"does not answer to the host name {host.split(':')[0]!r}" in r.text
        assert httpx.get(url + "/api/v1/pipelines").json()["items"] == []  # nothing planted
        for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}",
                     "cmf.example.org", f"CMF.example.org:{port}"):
            assert httpx.get(url + "/api/v1/health", headers={"Host": host}).status_code == 200
        # the same event under a name the server answers to is written
        assert httpx.post(url + "/api/v1/lineage", json=event).status_code < 300
        assert [p["name"] for p in httpx.get(url + "/api/v1/pipelines").json()["items"]] == [
            "planted"]
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]


def test_refuses_a_public_address_without_a_token() -> None:
    result = CliRunner().invoke(cli(), ["--host", "0.0.0.0", "--port", "1"])
    assert isinstance(result.exception, ConfigError)
    assert "refusing to serve on 0.0.0.0 without a token" in str(result.exception)


def test_protect_reads_needs_a_token() -> None:
    result = CliRunner().invoke(cli(), ["--protect-reads", "--port", "1"])
    assert isinstance(result.exception, ConfigError)
    assert "--protect-reads needs a token" in str(result.exception)


def test_a_missing_store_is_made_only_in_a_folder_that_exists_and_said(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    served: list[int] = []

    def run(self: uvicorn.Server, sockets: list[socket.socket]) -> None:  # serves nothing
        served.append(self.config.port)
        self.started = True

    monkeypatch.setattr(uvicorn.Server, "run", run)
    typo = tmp_path / "wrong" / "path" / "cmf.db"
    result = CliRunner().invoke(cli(), ["--store", f"sqlite:///{typo}", "--port", "0"])
    assert isinstance(result.exception, StoreError) and served == []
    assert str(result.exception) == (
        f"no CMF store at {typo} (create one with `cmf init`, or check the store URL: --store "
        "or CMF_STORE_URL); cmf serve creates a new store only in a folder that exists, and "
        f"{tmp_path / 'wrong'} does not")
    assert not (tmp_path / "wrong").exists()  # no store, no folder
    # a new file in a folder that exists (a fresh machine, a container's volume): made and said
    new = tmp_path / "new.db"
    for announced in (True, False):  # the second time the store is there: nothing to say
        result = CliRunner().invoke(cli(), ["--store", f"sqlite:///{new}", "--port", "0"])
        assert result.exit_code == 0, result.output
        said = f"cmf serve: no CMF store was at {new.resolve()}; created a NEW, empty one there"
        assert (said in result.stderr) is announced and new.is_file()
    # the default store of a home that does not exist yet is made with its folder
    monkeypatch.setenv("CMF_HOME", str(tmp_path / "fresh" / "home"))
    result = CliRunner().invoke(cli(), ["--port", "0"])
    assert result.exit_code == 0, result.output
    assert f"no CMF store was at {tmp_path / 'fresh' / 'home' / 'cmf.db'}; created" in \
        result.stderr
    assert len(served) == 3 and 0 not in served  # the port the system chose is served, said
    assert f"on http://127.0.0.1:{served[-1]} " in result.stderr


def test_a_port_in_use_is_named_before_the_store_is_made(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A port in use: uvicorn said so after the store was opened (a missing one created) and
    after the line announcing the server there, and cmf serve exited 3 without an Error line."""
    monkeypatch.setenv("CMF_HOME", str(tmp_path / "home"))
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        result = CliRunner().invoke(cli(), ["--port", str(port)])
    assert isinstance(result.exception, ConfigError)
    assert str(result.exception) == (
        f"cmf serve cannot listen on 127.0.0.1:{port}: Address already in use; another server "
        "holds that port: stop it, or give another --port or CMF_SERVE_PORT")
    assert "cmf serve: store" not in result.stderr and not (tmp_path / "home").exists()


def test_help_shows_an_example() -> None:
    result = CliRunner().invoke(cli(), ["--help"])
    assert result.exit_code == 0 and "Example: CMF_TOKEN=s3cret cmf serve" in result.output


@pytest.mark.parametrize("flag", ["--insecure", "--protect-reads", "--access-log"])
def test_options_are_documented(flag: str) -> None:
    text = (ROOT / "docs" / "server.md").read_text()
    assert flag in text
