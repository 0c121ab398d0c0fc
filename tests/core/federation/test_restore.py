"""A site restores an older backup of its store (`cmf store backup` / `cmf store restore`) and
syncs with a peer (a real server process): nothing is lost on either side."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cmf_core import Cmf
from cmf_core.federation.peer import sync
from cmf_core.store import open_store
from tests.core.federation.sites import Site, env

pytestmark = pytest.mark.slow


@pytest.fixture
def peer(tmp_path: Path) -> Iterator[Site]:
    site = Site("b", tmp_path / "b").start()
    yield site
    site.stop()


def _record(url: str, n: int) -> None:
    cmf = Cmf(pipeline_name="p", store=url, site="a", measure_energy=False)
    with cmf.create_execution("s", params={"n": n}) as ex:
        ex.log_dataset(f"s3://bucket/{n}.csv", "output", version="1")
    cmf.close()


def _numbers(url: str) -> set[int]:
    with open_store(url, site="check") as s:
        return {e.params["n"] for e in s.list_executions(limit=None)}


def _cmf(*args: str) -> str:
    r = subprocess.run([sys.executable, "-m", "cmf_core", *args], env=env(),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout


def _sync(site: Site, peer: Site) -> None:
    with site.open() as s:
        sync(peer.url, store=s)


def test_a_restored_site_gets_back_what_it_lost_and_its_new_records_reach_peers(
        peer: Site, tmp_path: Path) -> None:
    a = Site("a", tmp_path / "a")
    a.folder.mkdir()
    for n in range(5):
        _record(a.store_url, n)
    _sync(a, peer)
    _cmf("store", "backup", str(tmp_path / "backup.db"), "--store", a.store_url)
    for n in range(5, 10):  # recorded after the backup: only the peer will have them
        _record(a.store_url, n)
    _sync(a, peer)
    assert _numbers(peer.store_url) == set(range(10))
    with a.open() as s:
        old_id = s.store_id

    out = _cmf("store", "restore", str(tmp_path / "backup.db"), "--store", a.store_url)
    assert "new store id" in out and old_id in out
    assert list(a.folder.glob("cmf.db.replaced-*"))  # the replaced file is kept
    assert _numbers(a.store_url) == set(range(5))
    for n in range(100, 103):  # recorded after the restore
        _record(a.store_url, n)
    _sync(a, peer)
    every = set(range(10)) | set(range(100, 103))
    assert _numbers(a.store_url) == every  # what only the peer had came back
    assert _numbers(peer.store_url) == every  # what was recorded since the restore got there
    with a.open() as s:
        assert s.store_id != old_id
    # and on from there: both sides stay in step, sending nothing twice
    _record(a.store_url, 103)
    with a.open() as s:
        again = sync(peer.url, store=s)
    # the one new execution (with its artifact, location, event), nothing from before
    assert again.pushed.records == 4 and again.pulled.records == 0
    assert _numbers(peer.store_url) == every | {103}
