"""The federation commands (cmf export/import selectors, cmf sync, cmf artifact fetch,
cmf conflicts) through the CLI, on real stores and a real site server."""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cmf_core import Cmf
from cmf_core.cli import records_cmds, sync_cmds
from cmf_core.errors import AuthError, InvalidInputError
from cmf_core.model import Execution, Metric, Pipeline, Stage
from cmf_core.store import open_store
from tests.core.federation.sites import Site, dump

runner = CliRunner()


@pytest.fixture
def app() -> typer.Typer:
    """The commands as ``cmf`` registers them (records_cmds.register, sync_cmds.register)."""
    test_app = typer.Typer()
    records_cmds.register(test_app)
    sync_cmds.register(test_app)
    return test_app


def invoke(app: typer.Typer, *args: str) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def record(url: str, site: str, tmp: Path) -> dict[str, str]:
    """etl: raw -> clean; train: clean -> model (local files, real digests)."""
    (tmp / "raw.csv").write_text("x\n1\n")
    (tmp / "clean.csv").write_text("x\n1\n2\n")
    (tmp / "model.bin").write_bytes(b"m" * 100)
    ids = {}
    with Cmf(pipeline_name="etl", store=url, site=site, measure_energy=False) as cmf, \
            cmf.create_execution("clean") as ex:
        ex.log_dataset(str(tmp / "raw.csv"), "input")
        ids["clean"] = ex.log_dataset(str(tmp / "clean.csv"), "output").id
    with Cmf(pipeline_name="train", store=url, site=site, measure_energy=False) as cmf, \
            cmf.create_execution("fit") as ex:
        ex.log_dataset(str(tmp / "clean.csv"), "input")
        ids["model"] = ex.log_model(str(tmp / "model.bin"), "output").id
    return ids


def test_export_selectors_and_import(app: typer.Typer, tmp_path: Path) -> None:
    src = f"sqlite:///{tmp_path / 'src.db'}"
    ids = record(src, "hpc", tmp_path)
    out = tmp_path / "train.jsonl.gz"
    text = invoke(app, "export", str(out), "--pipeline", "train", "--store", src)
    assert text.startswith("Exported ") and str(out) in text
    lines = gzip.decompress(out.read_bytes()).decode().splitlines()
    header = json.loads(lines[0])
    assert header["selector"] == {"pipelines": ["train"]} and header["origin_site"]
    assert {json.loads(x).get("pipeline") for x in lines[1:-1]} >= {"train"}
    assert "etl" not in {json.loads(x).get("pipeline") for x in lines[1:-1]}
    closure = tmp_path / "closure.jsonl"
    invoke(app, "export", str(closure), "--artifact", ids["model"], "--store", src)
    kinds = [json.loads(x)["kind"] for x in closure.read_text().splitlines()[1:-1]]
    assert kinds.count("execution") == 2  # fit, and clean upstream of it
    since = tmp_path / "since.jsonl"
    invoke(app, "export", str(since), "--since", "2000-01-01T00:00", "--store", src)
    assert sum('"kind":"execution"' in x for x in since.read_text().splitlines()) == 2
    dst = f"sqlite:///{tmp_path / 'dst.db'}"
    report = json.loads(invoke(app, "import", str(out), "--json", "--store", dst))
    assert report["records"] == len(lines) - 2 and report["conflicts"] == []
    assert report["high_water"] > 0 and not report["adopted_vector"]  # a pipeline subset
    assert invoke(app, "conflicts", "--store", dst).strip() == "No conflicts."


def test_conflicts_are_listed(app: typer.Typer, tmp_path: Path) -> None:
    src, dst = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    record(src, "a", tmp_path)
    bundle = tmp_path / "a.jsonl"
    invoke(app, "export", str(bundle), "--store", src)
    with open_store(src, site="a") as a, open_store(dst, site="b") as b:
        ex = a.list_executions()[0]
        b.put([Metric(ex.id, "acc", 0.1, timestamp=1.0)])
        a.put([Metric(ex.id, "acc", 0.9, timestamp=1.0)])
    invoke(app, "export", str(bundle), "--force", "--store", src)
    result = runner.invoke(app, ["import", str(bundle), "--store", dst])
    assert result.exit_code == 0
    assert "1 conflict(s) recorded" in result.output
    found = json.loads(invoke(app, "conflicts", "--json", "--store", dst))
    assert [(c["kind"], c["detail"]["fields"]) for c in found] == [("metric", ["value"])]
    assert "acc" in invoke(app, "conflicts", "--store", dst)


def test_an_execution_id_at_two_sites_gets_a_hint(app: typer.Typer, tmp_path: Path) -> None:
    """The same Airflow DAG run at two sites under one OpenLineage namespace makes the same
    execution ids; the conflict listing says so and what to do."""
    src, dst = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    same = Execution(pipeline="etl", stage="extract", site="a").ended()
    with open_store(src, site="a") as a, open_store(dst, site="b") as b:
        a.put([Pipeline("etl", "a"), Stage("etl", "extract", "a"), same])
        b.put([Pipeline("etl", "b"), Stage("etl", "extract", "b"),
               dataclasses.replace(same, site="b")])
    invoke(app, "export", str(tmp_path / "a.jsonl"), "--store", src)
    assert "1 conflict(s) recorded" in invoke(app, "import", str(tmp_path / "a.jsonl"),
                                              "--store", dst)
    listed = invoke(app, "conflicts", "--store", dst)
    assert "give each site its own [openlineage] namespace" in listed


def test_sync_and_fetch_commands(app: typer.Typer, tmp_path: Path) -> None:
    data = tmp_path / "b"
    data.mkdir()
    b = Site("b", data, token="s3cret",
             settings={"federation_artifact_roots": [str(data)]})
    ids = record(b.store_url, "b", data)
    b.start()
    local = f"sqlite:///{tmp_path / 'a.db'}"
    try:
        open_store(local, site="a").close()
        assert invoke(app, "peers", "--store", local) == \
            "Peers: none (cmf sync PEER_URL adds one).\n"
        before = time.time()
        out = invoke(app, "sync", b.url, "--pull", "--token", "s3cret", "--store", local)
        assert out.startswith(f"Synced with b at {b.url}: pulled ") and "pushed" not in out
        moved = re.search(r"pulled ([\d,]+) records \(([\d,]+) new or changed, ", out)
        assert moved, out
        [peer] = json.loads(invoke(app, "peers", "--json", "--store", local))
        assert before <= peer.pop("synced_at") <= time.time()
        assert peer == {"site": "b", "url": b.url, "direction": "pull", "pipeline": None,
                        "pulled": int(moved[1].replace(",", "")), "pushed": 0, "conflicts": 0}
        listed = invoke(app, "peers", "--store", local)
        assert "b" in listed and b.url in listed and "pull" in listed
        with open_store(local, site="a") as a:  # a new store: every record pulled is new
            assert int(moved[2].replace(",", "")) == int(moved[1].replace(",", "")) \
                == len(dump(a)) > 0
        again = json.loads(invoke(app, "sync", b.url, "--token", "s3cret", "--json",
                                  "--store", local))
        assert again["pulled"]["records"] == 0 and again["pushed"]["records"] == 0
        assert again["pulled"]["written"] == again["pushed"]["written"] == 0
        cmf = Cmf(pipeline_name="mine", store=local, site="a", measure_energy=False)
        with cmf.create_execution("s") as ex:
            ex.log_execution_metrics("m", {"acc": 0.5})
        cmf.close()
        pushed = json.loads(invoke(app, "sync", b.url, "--push", "--token", "s3cret", "--json",
                                   "--store", local))["pushed"]
        assert pushed["written"] == pushed["records"] > 0  # as the peer's reply counts them
        with open_store(local, site="a") as a, b.open() as sb:
            assert dump(a) == dump(sb)
        got = tmp_path / "fetched.bin"
        out = invoke(app, "artifact", "fetch", ids["model"], "-o", str(got), "--token",
                     "s3cret", "--store", local)
        assert "digest verified" in out and got.read_bytes() == b"m" * 100
        # an existing file is refused, naming it, and kept; --force replaces it
        got.write_bytes(b"mine")
        with pytest.raises(InvalidInputError, match=re.escape(
                f"cannot fetch to {got}: it already exists; give another --out, or --force")):
            runner.invoke(app, ["artifact", "fetch", ids["model"], "-o", str(got), "--token",
                                "s3cret", "--store", local], catch_exceptions=False)
        assert got.read_bytes() == b"mine"
        invoke(app, "artifact", "fetch", ids["model"], "-o", str(got), "--force", "--token",
               "s3cret", "--store", local)
        assert got.read_bytes() == b"m" * 100
        # a folder as --out: the artifact's name in it (os.replace onto a folder failed)
        folder = tmp_path / "into"
        folder.mkdir()
        invoke(app, "artifact", "fetch", ids["model"], "-o", str(folder), "--token", "s3cret",
               "--store", local)
        assert (folder / "model.bin").read_bytes() == b"m" * 100
        # the short digest `cmf lineage` prints (sha256: + 12 hex) names the artifact too
        short = tmp_path / "short.bin"
        said = invoke(app, "artifact", "fetch", ids["model"][:19], "-o", str(short), "--token",
                      "s3cret", "--store", local)
        assert short.read_bytes() == b"m" * 100
        assert said == f"Fetched {ids['model']} to {short} (digest verified)\n"  # whole
        # a file where a folder should be: an error naming the target, not a traceback
        with pytest.raises(InvalidInputError, match=re.escape(
                f"cannot write {got / 'x.bin'}: ")):
            runner.invoke(app, ["artifact", "fetch", ids["model"], "-o", str(got / "x.bin"),
                                "--token", "s3cret", "--store", local], catch_exceptions=False)
        assert not list(tmp_path.rglob(".cmf-fetch-*"))
        with pytest.raises(InvalidInputError, match="choose one of"):
            runner.invoke(app, ["sync", b.url, "--push", "--pull", "--store", local],
                          catch_exceptions=False)
        with pytest.raises(AuthError, match=r"\(this command's token: --token\)"):
            runner.invoke(app, ["sync", b.url, "--token", "wrong", "--store", local],
                          catch_exceptions=False)
    finally:
        b.stop()


def test_every_federation_command_has_help(app: typer.Typer) -> None:
    for args in (["sync", "--help"], ["artifact", "fetch", "--help"], ["conflicts", "--help"],
                 ["export", "--help"], ["import", "--help"]):
        assert "Usage" in invoke(app, *args)


@contextlib.contextmanager
def _peer(handler: type) -> Iterator[str]:
    """A web server on loopback answering with ``handler`` (not cmf serve); yields its URL."""
    import threading
    from http.server import ThreadingHTTPServer

    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _pages(answer: Callable[[str], tuple[bytes, str]]) -> type:
    """A request handler answering every GET 200 with ``answer(path)``: (body, content type)."""
    from http.server import BaseHTTPRequestHandler

    class Pages(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body, kind = answer(self.path)
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    return Pages


def test_sync_with_a_server_answering_200_not_json(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """A web server that is not cmf serve (a login page, a proxy's banner) answering 200."""

    from cmf_core.cli import main

    html = _pages(lambda _path: (b"<html>Welcome</html>", "text/html"))
    with _peer(html) as url, pytest.raises(SystemExit) as e:
        main(["sync", url, "--store", f"sqlite:///{tmp_path / 'cmf.db'}"])
    assert e.value.code == 1
    assert capsys.readouterr().err.strip() == (
        f"Error: {url}/api/v1/federation/info answered 200 with '<html>Welcome</html>' "
        f"(text/html), not a JSON object; is {url} a cmf serve of cmf-foundation?")


def test_sync_timeout_is_an_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A peer that accepts the connection but answers late (an overloaded site, a stuck proxy):
    ``--timeout`` bounds each request (the default, 120 s, suits large pages on slow links)."""
    import threading
    import time
    from http.server import BaseHTTPRequestHandler

    from cmf_core.cli import main

    release = threading.Event()

    class Late(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            release.wait(60)  # far longer than the --timeout: a sync that waited for it shows

        def log_message(self, *_args: object) -> None:
            pass

    try:
        with _peer(Late) as url:
            started = time.monotonic()
            with pytest.raises(SystemExit) as e:
                main(["sync", url, "--store", f"sqlite:///{tmp_path / 'cmf.db'}", "--timeout",
                      "0.5"])
            took = time.monotonic() - started
            release.set()
    finally:
        release.set()
    assert e.value.code == 1 and took < 30, took  # gave up at its timeout, not the answer
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and url in err and "Traceback" not in err, err


def test_a_push_answered_200_with_a_page_not_a_report(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """A proxy in front of the peer that passes reads through but answers a push with its own
    page (200, HTML): the push names the reply instead of a raw JSONDecodeError."""
    import json
    from http.server import BaseHTTPRequestHandler

    from cmf_core import Cmf
    from cmf_core.cli import main

    store = f"sqlite:///{tmp_path / 'cmf.db'}"
    cmf = Cmf(pipeline_name="p", store=store, site="a", measure_energy=False)
    with cmf.create_execution("s"):
        pass
    cmf.close()
    info = json.dumps({"format": 1, "formats": [1, 2], "site": "b", "store_id": "peer-store",
                       "vector": {}, "scope": "all", "pipelines": None, "high_water": 0,
                       "serves_artifacts": False}).encode()  # as cmf serve's /info

    class Proxy(BaseHTTPRequestHandler):
        def _answer(self, body: bytes, kind: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._answer(info, "application/json")

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self._answer(b"<html>Upload accepted</html>", "text/html")

        def log_message(self, *_args: object) -> None:
            pass

    with _peer(Proxy) as url, pytest.raises(SystemExit) as e:
        main(["sync", url, "--push", "--store", store])
    assert e.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"Error: {url}/api/v1/federation/bundle answered the push with "
                          "'<html>Upload accepted</html>', not a JSON report; is"), err


def test_a_pull_answered_200_with_a_page_not_a_bundle(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """A proxy in front of the peer that passes /info through but answers the page request with
    its own page (200, HTML, e.g. a login page): the pull names the reply, not a JSON parse
    error at 'page since 0:1'."""
    import json

    from cmf_core.cli import main

    store = f"sqlite:///{tmp_path / 'cmf.db'}"
    info = json.dumps({"format": 1, "formats": [1, 2], "site": "b", "store_id": "peer-store",
                       "vector": {}, "scope": "all", "pipelines": None, "high_water": 0,
                       "serves_artifacts": False}).encode()  # as cmf serve's /info

    proxy = _pages(lambda path: (info, "application/json") if "/info" in path else
                   (b"<html>Please log in</html>", "text/html"))
    with _peer(proxy) as url, pytest.raises(SystemExit) as e:
        main(["sync", url, "--pull", "--store", store])
    assert e.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err == (f"Error: {url}/api/v1/federation/bundle answered 200 with "
                   "'<html>Please log in</html>' (text/html), not a bundle; is "
                   f"{url} a cmf serve of cmf-foundation?"), err
