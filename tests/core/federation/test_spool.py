"""Bundles received over HTTP (pushed to a site, pulled by ``sync``) go to a spool (memory up to
``bundle.SPOOL_BYTES``, then a temporary file) and are imported from there, not held whole in
memory; every spool is closed (its file removed) whatever happens: an import, a bad bundle, a
body over the limit (413), a client that goes away mid-body, pages downloaded ahead and never
imported. Real uvicorn servers on loopback, real SQLite stores; ``SPOOL_BYTES`` is patched small
so a bundle of a few kilobytes goes to disk, and ``tempfile.TemporaryFile`` is wrapped only to
see which files were made and that each was closed."""

from __future__ import annotations

import gzip
import socket
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from cmf_core.federation import bundle
from cmf_core.federation.bundle import spool
from cmf_core.federation.peer import _Ahead, sync
from cmf_core.server.routers import federation as route
from cmf_core.store import Store, open_store
from tests.core.federation.test_bad_input import EX, HEADER, RECORDS, record_dicts, signed, snapshot
from tests.core.server.conftest import live_server

PUSH = "/api/v1/federation/bundle"
NDJSON = {"Content-Type": "application/x-ndjson"}


HEAD = (b"POST " + PUSH.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        b"Content-Type: application/x-ndjson\r\n")


def chunk(data: bytes) -> bytes:
    """``data`` as one chunk of a chunked HTTP body."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


class Spools:
    """The temporary files spools rolled over to (made by ``tempfile.TemporaryFile``)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.files: list[Any] = []

    def all_closed(self) -> bool:
        return all(f.closed for f in self.files)

    def wait_for(self, n: int) -> bool:
        """Until the server has spooled ``n`` bodies to files."""
        deadline = time.monotonic() + 30
        while len(self.files) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return len(self.files) >= n

    def wait_closed(self) -> bool:
        """The server closes a spool after it answers, or once it sees the client gone."""
        deadline = time.monotonic() + 30
        while not self.all_closed() and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.all_closed()


@pytest.fixture
def spools(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Spools:
    folder = tmp_path / "tmp"
    folder.mkdir()
    seen = Spools(folder)
    made = tempfile.TemporaryFile

    def recording(*args: Any, **kwargs: Any) -> Any:
        f = made(*args, **kwargs)
        seen.files.append(f)
        return f

    monkeypatch.setattr(tempfile, "TemporaryFile", recording)
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    monkeypatch.setattr(bundle, "SPOOL_BYTES", 256)
    return seen


def test_push_over_the_spool_threshold_is_imported_from_a_file(sqlite_store: Store,
                                                              spools: Spools) -> None:
    body = signed(HEADER, record_dicts())
    assert len(body) > 4 * bundle.SPOOL_BYTES
    with live_server(sqlite_store) as server:
        r = httpx.post(server.url + PUSH, content=body, headers=NDJSON, timeout=60)
        assert r.status_code == 200, r.text
        assert r.json()["records"] == len(RECORDS)
        assert len(spools.files) == 1  # the body went to a file, not a list of chunks
        assert spools.wait_closed()
        # gzip, sent in small pieces (no Content-Length): the same records, imported again
        packed = gzip.compress(body)
        r = httpx.post(server.url + PUSH, headers=NDJSON, timeout=60,
                       content=(packed[i:i + 100] for i in range(0, len(packed), 100)))
        assert r.status_code == 200, r.text
        assert r.json()["records"] == len(RECORDS) and r.json()["written"] == 0
        assert spools.wait_closed()
    assert sqlite_store.get_execution(EX.id) is not None
    assert list(spools.folder.iterdir()) == []


def test_bad_bundle_and_413_close_their_spool_and_store_nothing(
        sqlite_store: Store, spools: Spools, monkeypatch: pytest.MonkeyPatch) -> None:
    before = snapshot(sqlite_store)
    body = signed(HEADER, record_dicts())
    damaged = body.replace(b'"value":0.5', b'"value":0.7', 1)
    assert damaged != body
    monkeypatch.setattr(route, "MAX_BUNDLE_BYTES", len(body) + 100)
    big = body + b" " * (route.MAX_BUNDLE_BYTES - len(body) + 1)
    with live_server(sqlite_store) as server:
        r = httpx.post(server.url + PUSH, content=damaged, headers=NDJSON, timeout=60)
        assert r.status_code == 400 and "checksum" in r.json()["message"], r.text
        assert len(spools.files) == 1 and spools.wait_closed()
        # streamed (chunked, no Content-Length): refused once the limit is passed, mid-body,
        # after the first part went to a file
        with socket.create_connection(("127.0.0.1", port_of(server.url)), timeout=30) as sock:
            sock.sendall(HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
                         + chunk(big[:3 * bundle.SPOOL_BYTES]))
            assert spools.wait_for(2)
            sock.sendall(chunk(big[3 * bundle.SPOOL_BYTES:]) + b"0\r\n\r\n")
            answer = sock.makefile("rb").read()
        assert answer.startswith(b"HTTP/1.1 413"), answer
        assert f"at most {route.MAX_BUNDLE_BYTES} bytes".encode() in answer
        assert spools.wait_closed()
        # a Content-Length over the limit: refused before any of the body is read
        r = httpx.post(server.url + PUSH, content=big, headers=NDJSON, timeout=60)
        assert r.status_code == 413, r.text
        assert len(spools.files) == 2
    assert snapshot(sqlite_store) == before
    assert list(spools.folder.iterdir()) == []


def test_client_gone_mid_body_closes_the_spool(sqlite_store: Store, spools: Spools) -> None:
    before = snapshot(sqlite_store)
    with live_server(sqlite_store) as server:
        with socket.create_connection(("127.0.0.1", port_of(server.url)), timeout=30) as sock:
            sock.sendall(HEAD + b"Content-Length: 100000\r\n\r\n" + signed(HEADER, record_dicts()))
            assert spools.wait_for(1)  # the server has spooled it to a file
        # the connection closed with most of the body unsent
        assert len(spools.files) == 1
        assert spools.wait_closed()
    assert snapshot(sqlite_store) == before


def test_pull_pages_go_through_spools(sqlite_store: Store, spools: Spools,
                                      tmp_path: Path) -> None:
    """``sync`` pulls each page into a spool, imports it from there and closes it."""
    peer = open_store(f"sqlite:///{tmp_path / 'peer.db'}", site="peer-b")
    try:
        with live_server(peer) as server:
            assert httpx.post(server.url + PUSH, content=signed(HEADER, record_dicts()),
                              headers=NDJSON, timeout=60).status_code == 200
            pushed = len(spools.files)
            report = sync(server.url, store=sqlite_store, direction="pull")
        assert report.pulled.records == len(RECORDS) and report.pulled.bytes > 4 * 256
        assert len(spools.files) - pushed >= 1  # pages over the threshold went to files
        assert spools.wait_closed()
        assert sqlite_store.get_execution(EX.id) is not None
    finally:
        peer.close()


def test_pages_downloaded_ahead_are_closed_when_the_pull_stops() -> None:
    made: list[Any] = []

    def fetch(start: int) -> tuple[Any, int, int, bool]:
        body = spool()
        body.write(b"x" * 10)
        made.append(body)
        return body, 10, start + 1, start >= 5

    ahead = _Ahead(fetch, 0)
    first = ahead.next()
    first[0].close()  # the importer's to close
    deadline = time.monotonic() + 30
    while len(made) < 2 and time.monotonic() < deadline:  # the next one downloaded meanwhile
        time.sleep(0.01)
    ahead.close()  # the pull stopped (an import failed, say)
    assert len(made) >= 2 and all(f.closed for f in made)


def test_pushes_are_imported_one_at_a_time(sqlite_store: Store, spools: Spools,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """An import parses every record before its transaction: two pushes at once held two parsed
    bundles (N peers, N of them) for no gain. The first import here waits until the second body
    has arrived and then up to 3 s for a second import to start beside it; none may."""
    real = route.import_bundle
    state = {"active": 0, "peak": 0}
    lock, second = threading.Lock(), threading.Event()

    def watched(*args: Any, **kwargs: Any) -> Any:
        with lock:
            state["active"] += 1
            state["peak"] = max(state["peak"], state["active"])
            if state["active"] > 1:
                second.set()
        try:
            if state["peak"] == 1 and spools.wait_for(2):
                second.wait(3)  # set only if a second import started meanwhile
            return real(*args, **kwargs)
        finally:
            with lock:
                state["active"] -= 1

    monkeypatch.setattr(route, "import_bundle", watched)
    body = signed(HEADER, record_dicts())
    with live_server(sqlite_store) as server:
        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(lambda _: httpx.post(server.url + PUSH, content=body,
                                                         headers=NDJSON, timeout=60), range(2)))
        assert [r.status_code for r in answers] == [200, 200], [r.text for r in answers]
        assert spools.wait_closed()
    assert state["peak"] == 1
    assert sorted(r.json()["written"] for r in answers)[0] == 0  # the second found it all
