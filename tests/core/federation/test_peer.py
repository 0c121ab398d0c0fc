"""Peer sync between real sites: server processes on loopback ports, each with its own store."""

from __future__ import annotations

import dataclasses
import os
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cmf_core import Cmf
from cmf_core.errors import AuthError, CmfError, InvalidInputError, NotFoundError
from cmf_core.federation.bundle import COMPACT, FORMAT, FORMATS, Reader, bundle_bytes
from cmf_core.federation.export import (
    Selector,
    export_bundle,
    header_for,
    page_lines,
)
from cmf_core.federation.merge import get_hwm, hwm_key, import_bundle
from cmf_core.federation.peer import (
    PEER_URL_KEY,
    PeerError,
    TokenSource,
    fetch_artifact,
    is_loopback,
    sync,
)
from cmf_core.store import ExecutionFilter, Store, open_store
from cmf_core.store.base import ExportPage
from tests.core.federation.sites import (
    CorruptingProxy,
    CuttingProxy,
    Site,
    dump,
    site_settings,
    start_recorder,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def sites(tmp_path: Path) -> Iterator[dict[str, Site]]:
    started: dict[str, Site] = {}
    yield started
    for site in started.values():
        site.stop()


def record(site: Site, pipeline: str, uri: str) -> None:
    """One execution writing one remote dataset, recorded into the site's store."""
    cmf = Cmf(pipeline_name=pipeline, store=site.store_url, site=site.name, measure_energy=False)
    with cmf.create_execution("s") as ex:
        ex.log_dataset(uri, "output", version="1")
    cmf.close()


def peer_tokens(me: str, others: list[str]) -> dict[str, str]:
    """Site ``me`` accepts peer ``x`` with the token ``x-to-me``."""
    return {x: f"{x}-to-{me}" for x in others}


def test_three_sites_converge_while_recording(sites: dict[str, Site], tmp_path: Path) -> None:
    """Concurrent recording at three sites while syncing in a ring and in random orders; then
    all three stores hold the same metadata, nothing duplicated or lost."""
    names = ["hpc", "cloud", "edge"]
    for n in names:
        sites[n] = Site(n, tmp_path / n, token=f"admin-{n}",
                        settings={"federation_peer_tokens": peer_tokens(
                            n, [x for x in names if x != n])}).start()
    local = {n: sites[n].open() for n in names}
    per_site = 25
    recorders = [start_recorder(sites[n], per_site) for n in names]
    rng = random.Random(7)
    rounds = 0
    try:
        while any(p.poll() is None for p in recorders) or rounds < 3:
            for x, y in [("hpc", "cloud"), ("cloud", "edge"), ("edge", "hpc")]:  # a ring
                sync(sites[y].url, token=f"{x}-to-{y}", store=local[x])
            x, y = rng.sample(names, 2)  # and a random pair, random direction
            sync(sites[y].url, token=f"{x}-to-{y}", store=local[x],
                 direction=rng.choice(["push", "pull", "both"]))
            rounds += 1
        for p in recorders:
            assert p.wait() == 0, p.stderr.read().decode() if p.stderr else ""
        for _ in range(2):  # quiescent: one ring of two-way syncs reaches everyone
            for x, y in [("hpc", "cloud"), ("cloud", "edge"), ("edge", "hpc")]:
                sync(sites[y].url, token=f"{x}-to-{y}", store=local[x])
        dumps = {n: dump(local[n]) for n in names}
        assert dumps["hpc"] == dumps["cloud"] == dumps["edge"]
        for s in local.values():
            assert s.count_executions() == 3 * per_site
            for n in names:
                assert s.count_executions(ExecutionFilter(site=n)) == per_site
            assert len(s.energy()) == 3 * per_site  # one energy record each, none twice
            total = sum(e.energy_kwh for e in s.energy())
            expected = 3 * sum(0.001 * (i + 1) for i in range(per_site))
            assert total == pytest.approx(expected)
            common = s.find_artifacts(name="common.csv")
            assert len(common) == 1  # one digest, one artifact ...
            assert {loc.site for loc in s.artifact_locations(common[0].id)} == set(names)
        assert rounds >= 3
    finally:
        for s in local.values():
            s.close()


def assert_mark_is_backed(local: Store, remote: Store, mark: int, tmp_path: Path) -> None:
    """Every record the remote holds up to seq ``mark`` (the local high-water mark on it) is in
    the local store: no page was marked as synced without its rows."""
    page = remote.export_page(0, None)
    upto = ExportPage(rows={k: [r for r in v if r[-1] <= mark] for k, v in page.rows.items()},
                      since=0, end=mark, snapshot=page.snapshot)
    header = header_for(remote, Selector(), since=0, snapshot=page.snapshot, exclude=None,
                        vector=None)
    check = open_store(f"sqlite:///{tmp_path / f'upto-{mark}.db'}", site="check")
    try:
        import_bundle(check, [b"".join(bundle_bytes(header, page_lines(upto), mark, False))])
        expected = dump(check)
        assert expected and set(expected) <= set(dump(local))
    finally:
        check.close()


def test_interrupted_transfer_resumes(sites: dict[str, Site], tmp_path: Path) -> None:
    """A connection cut mid-page loses that page only; the next sync resumes after the last
    imported page and ends with the same store."""
    b = sites["b"] = Site("b", tmp_path / "b").start()
    p = start_recorder(b, 40)
    assert p.wait() == 0
    a = Site("a", tmp_path / "a").open()
    proxy = CuttingProxy(b.port, cut_after=20_000)
    try:
        with pytest.raises(PeerError, match="cut off"):
            sync(proxy.url, store=a, direction="pull", page_size=3, compress=False)
        assert proxy.cuts >= 1
        with b.open() as sb:
            remote = dump(sb)
            total = sb.max_seq()
            mark = get_hwm(a, sb.store_id, "all")
        assert 0 < mark < total  # some pages are in, the cut one is not
        partial = dump(a)
        assert partial and set(partial) <= set(remote)
        with b.open() as sb:
            assert_mark_is_backed(a, sb, mark, tmp_path)
        report = sync(b.url, store=a, direction="pull", page_size=10)
        assert report.pulled.since == mark  # resumed, did not start over
        assert 0 < report.pulled.records < len(remote)
        assert dump(a) == remote
    finally:
        proxy.close()
        a.close()


def test_server_killed_mid_sync_resumes(sites: dict[str, Site], tmp_path: Path) -> None:
    b = sites["b"] = Site("b", tmp_path / "b").start()
    assert start_recorder(b, 60).wait() == 0
    a = Site("a", tmp_path / "a").open()
    with b.open() as sb:
        remote, key = dump(sb), hwm_key(sb.store_id, "all")
    errors: list[BaseException] = []

    def pull() -> None:
        try:
            sync(b.url, store=a, direction="pull", page_size=5, compress=False)
        except BaseException as e:  # handed to the test thread
            errors.append(e)

    t = threading.Thread(target=pull)
    t.start()
    deadline = time.monotonic() + 60
    while not a.get_state(key) and time.monotonic() < deadline:
        time.sleep(0.005)
    b.kill()  # SIGKILL, mid-transfer
    t.join(60)
    assert errors and isinstance(errors[0], CmfError), errors
    mark = int(a.get_state(key) or 0)
    assert mark > 0 and set(dump(a)) <= set(remote)
    b.port = 0
    b.start()  # the same store, after a crash
    report = sync(b.url, store=a, direction="pull")
    assert report.pulled.since == mark
    assert dump(a) == remote
    a.close()


def test_tokens(sites: dict[str, Site], tmp_path: Path) -> None:
    b = sites["b"] = Site("b", tmp_path / "b", token="admin",
                          settings={"federation_peer_tokens": {"a": "a-secret"}}).start()
    a = Site("a", tmp_path / "a").open()
    try:
        for token in ("wrong", None, "a-secret-not"):
            with pytest.raises(AuthError):
                sync(b.url, token=token, store=a)
        with httpx.Client(base_url=b.url) as http:
            for method, path in (("GET", "/info"), ("GET", "/bundle"), ("POST", "/bundle"),
                                 ("GET", "/artifacts/sha256:" + "0" * 64)):
                r = http.request(method, "/api/v1/federation" + path,
                                 headers={"Authorization": "Bearer wrong"})
                assert r.status_code == 401, (path, r.text)
        assert sync(b.url, token="a-secret", store=a).peer_site == "b"  # the peer's own token
        # read from a file or a Kubernetes secret: the line break is not part of the token
        assert sync(b.url, token="a-secret\n", store=a).peer_site == "b"
        with pytest.raises(InvalidInputError, match="control character") as bad:
            sync(b.url, token="a-sec\nret", store=a)
        assert "a-sec" not in str(bad.value)  # a token never shows in an error (or a log)
        assert sync(b.url, token="admin", store=a).peer_site == "b"  # the site's token
    finally:
        a.close()


def test_token_from_settings_whatever_the_url_spelling(sites: dict[str, Site],
                                                      tmp_path: Path) -> None:
    """federation_tokens is found for the peer however the setting and the command spell the
    trailing slash and the case of the scheme and host (a key written 'http://h:8080/' was
    never found for 'cmf sync http://h:8080': the sync failed with 401)."""
    b = sites["b"] = Site("b", tmp_path / "b", token="admin").start()
    a = Site("a", tmp_path / "a").open()
    shout = b.url.replace("http://", "HTTP://")
    try:
        for key, url in ((b.url + "/", b.url), (b.url, b.url + "/"), (b.url, shout),
                         (shout + "/", b.url)):
            settings = site_settings(site="a", federation_tokens={key: "admin"})
            assert sync(url, store=a, settings=settings).peer_site == "b", (key, url)
        with pytest.raises(AuthError):  # another port is another peer
            sync(b.url, store=a,
                 settings=site_settings(site="a", federation_tokens={b.url + "1": "admin"}))
    finally:
        a.close()


def test_a_refused_token_names_where_it_came_from(sites: dict[str, Site],
                                                  tmp_path: Path) -> None:
    """With a TokenSource (every sync step and cmf sync pass one), the AuthError names the
    token's source: the one passed in, the federation_tokens setting, or none and how to give
    one. (The Airflow step said 'connection has no password' when the setting gave the token.)"""
    b = sites["b"] = Site("b", tmp_path / "b", token="admin").start()
    a = Site("a", tmp_path / "a").open()
    source = TokenSource("$PEER_TOKEN", "$PEER_TOKEN is not set", who="step")
    try:
        with pytest.raises(AuthError, match=r"\(this step's token: \$PEER_TOKEN\)$"):
            sync(b.url, token="wrong", store=a, token_source=source)
        with pytest.raises(AuthError, match=r"token: none; \$PEER_TOKEN is not set\)$"):
            sync(b.url, store=a, settings=site_settings(site="a"), token_source=source)
        wrong = site_settings(site="a", federation_tokens={b.url + "/": "wrong"})
        with pytest.raises(AuthError, match="token: the federation_tokens setting for this URL"):
            sync(b.url, store=a, settings=wrong, token_source=source)
        with pytest.raises(AuthError) as plain:  # no source: the peer's message alone
            sync(b.url, token="wrong", store=a)
        assert "this step's token" not in str(plain.value)
    finally:
        a.close()


def test_tampered_bundle_is_rejected(sites: dict[str, Site], tmp_path: Path) -> None:
    b = sites["b"] = Site("b", tmp_path / "b", token="t").start()
    a = Site("a", tmp_path / "a")
    assert start_recorder(a, 3).wait() == 0
    with a.open() as sa:
        good = b"".join(export_bundle(sa, Selector()))
    bad = good.replace(b'"score":0.1', b'"score":0.9', 1)
    assert bad != good
    with httpx.Client(base_url=b.url, headers={"Authorization": "Bearer t",
                                               "Content-Type": "application/x-ndjson"}) as http:
        r = http.post("/api/v1/federation/bundle", content=bad)
        assert r.status_code == 400 and "checksum" in r.json()["message"]
        r = http.post("/api/v1/federation/bundle", content=good[:-50])
        assert r.status_code == 400 and "cut off" in r.json()["message"]
        with b.open() as sb:
            assert dump(sb) == []  # nothing of either was imported
        r = http.post("/api/v1/federation/bundle", content=good)
        assert r.status_code == 200 and r.json()["records"] > 0
    with b.open() as sb, a.open() as sa:
        assert dump(sb) == dump(sa)


def test_incremental_sync_moves_only_the_delta(sites: dict[str, Site], tmp_path: Path) -> None:
    b = sites["b"] = Site("b", tmp_path / "b").start()
    assert start_recorder(b, 50).wait() == 0
    a_site = Site("a", tmp_path / "a")
    a = a_site.open()
    try:
        full = sync(b.url, store=a)
        again = sync(b.url, store=a)
        assert again.pulled.records == 0 and again.pushed.records == 0
        assert again.bytes < 2500  # headers (with format 2 columns) and trailers only
        record(b, "new", "s3://new/x.csv")
        delta = sync(b.url, store=a)
        assert 0 < delta.pulled.records < 15 and delta.pushed.records == 0
        assert delta.pulled.bytes < full.pulled.bytes / 5
        with b.open() as sb:
            assert dump(sb) == dump(a)
        # a push of one pipeline (the sync step's pipeline=) resumes where the last one ended:
        # the peer is asked how far it has this store in that scope, not in "all"
        record(a_site, "mine", "s3://mine/x.csv")
        first = sync(b.url, store=a, direction="push", pipeline="mine")
        assert first.pushed.records > 0 and first.scope == "pipelines=mine"
        again = sync(b.url, store=a, direction="push", pipeline="mine")
        assert again.pushed.since == first.pushed.end and again.pushed.records == 0
    finally:
        a.close()


def test_sharing_policy_limits_what_a_peer_gets(sites: dict[str, Site], tmp_path: Path) -> None:
    b = sites["b"] = Site("b", tmp_path / "b",
                          settings={"federation_share_pipelines": ["public"]}).start()
    for pipeline in ("public", "secret"):
        record(b, pipeline, f"s3://{pipeline}/x.csv")
    a = Site("a", tmp_path / "a").open()
    try:
        report = sync(b.url, store=a, direction="pull")
        assert report.scope == "pipelines=public"
        assert [p.name for p in a.list_pipelines()] == ["public"]
        assert all("secret" not in line for line in dump(a))
        with b.open() as sb:  # a subset does not let a adopt b's vector
            assert get_hwm(a, sb.store_id, "pipelines=public") > 0
            assert get_hwm(a, sb.store_id, "all") == 0
        with httpx.Client(base_url=b.url) as http:
            r = http.get("/api/v1/federation/bundle", params={"pipeline": "secret",
                                                              "gzip": False})
            assert r.status_code == 200 and "secret" not in r.text
    finally:
        a.close()


def test_artifact_bytes_on_demand(sites: dict[str, Site], tmp_path: Path) -> None:
    shared = tmp_path / "b" / "data"
    shared.mkdir(parents=True)
    (shared / "model.bin").write_bytes(b"weights" * 1000)
    (tmp_path / "elsewhere.bin").write_bytes(b"private")
    b = sites["b"] = Site("b", tmp_path / "b", token="t",
                          settings={"federation_artifact_roots": [str(shared)]}).start()
    c = sites["c"] = Site("c", tmp_path / "c", token="t").start()  # serves no bytes
    cmf = Cmf(pipeline_name="p", store=b.store_url, site="b", measure_energy=False)
    with cmf.create_execution("train") as ex:
        model = ex.log_model(str(shared / "model.bin"), "output")
        private = ex.log_dataset(str(tmp_path / "elsewhere.bin"), "output")
        (shared / "images").mkdir()
        (shared / "images" / "1.png").write_bytes(b"png")
        folder = ex.log_dataset(str(shared / "images"), "output")
    cmf.close()
    a = Site("a", tmp_path / "a").open()
    try:
        with pytest.raises(CmfError, match="sync with the site"):
            fetch_artifact(model.id, tmp_path / "x.bin", store=a)
        sync(b.url, token="t", store=a, direction="pull")  # a learns where b is
        old_mask = os.umask(0o027)
        try:
            out = fetch_artifact(model.id, tmp_path / "got" / "model.bin", token="t", store=a)
        finally:
            os.umask(old_mask)
        assert out.read_bytes() == b"weights" * 1000
        assert out.stat().st_mode & 0o777 == 0o640  # an ordinary file under the umask
        with pytest.raises(CmfError, match="outside the folders"):
            fetch_artifact(private.id, tmp_path / "p.bin", token="t", store=a)
        with pytest.raises(PeerError, match=r"is a folder at this site \(site b\); cmf "
                                            r"serves files only"):  # not "no local file"
            fetch_artifact(folder.id, tmp_path / "images", token="t", store=a)
        with pytest.raises(CmfError, match="does not serve artifact bytes"):
            fetch_artifact(model.id, tmp_path / "c.bin", peer_url=c.url, token="t", store=a)
        (shared / "model.bin").write_bytes(b"changed since it was logged")
        with pytest.raises(CmfError, match="no longer has the artifact's bytes"):
            fetch_artifact(model.id, tmp_path / "bad.bin", token="t", store=a)
        for url in (b.url, "http://127.0.0.1:9"):  # a URL's password never shows
            with pytest.raises(CmfError) as failed:
                fetch_artifact(model.id, tmp_path / "bad.bin", token="t", store=a,
                               peer_url=url.replace("://", "://ops:hunter2@"))
            assert "hunter2" not in str(failed.value) and "ops:***@" in str(failed.value)
        assert not (tmp_path / "bad.bin").exists() and not (tmp_path / "p.bin").exists()
        assert list(tmp_path.glob(".cmf-fetch-*")) == []
        # once c is known to hold the same bytes, a token given for one site is not sent to
        # every site that may hold them
        a.put([dataclasses.replace(model, site="c", uri="/c/data/model.bin")])
        a.set_state(PEER_URL_KEY + "c", c.url)
        with pytest.raises(InvalidInputError, match=r"2 sites may hold .*a token is one "
                                                     r"site's: name that site with --from"):
            fetch_artifact(model.id, tmp_path / "two.bin", token="t", store=a)
        (shared / "model.bin").write_bytes(b"weights" * 1000)  # as logged again
        out = fetch_artifact(model.id, tmp_path / "two.bin", token="t", store=a,
                             peer_url=b.url)
        assert out.read_bytes() == b"weights" * 1000
    finally:
        a.close()


def test_a_pushed_location_does_not_open_files_to_a_peer(sites: dict[str, Site],
                                                          tmp_path: Path) -> None:
    """A peer allowed only pipeline 'public' pushes an artifact of 'public' with a digest of
    its own and, as its location at this site, the path of a 'secret' pipeline's file under the
    served root: the site must not send that file's bytes (it served them, under the false
    digest)."""
    shared = tmp_path / "b" / "data"
    shared.mkdir(parents=True)
    (shared / "secret.bin").write_bytes(b"secret weights")
    b = sites["b"] = Site("b", tmp_path / "b", token="admin", settings={
        "federation_artifact_roots": [str(shared)],
        "federation_peer_tokens": {"mallory": "m-tok"},
        "federation_peer_pipelines": {"mallory": ["public"]}}).start()
    record(b, "secret", str(shared / "secret.bin"))
    mallory = Site("b", tmp_path / "mallory")  # names itself after the site it pushes to
    cmf = Cmf(pipeline_name="public", store=mallory.store_url, site="b", measure_energy=False)
    with cmf.create_execution("s") as ex:  # she has no such file: she names a digest
        fake = ex.log_dataset(str(shared / "secret.bin"), "output", digest="sha256:" + "ab" * 32)
    cmf.close()
    with mallory.open() as sm:
        body = b"".join(export_bundle(sm, Selector()))
    with httpx.Client(base_url=b.url, headers={"Authorization": "Bearer m-tok"}) as http:
        r = http.post("/api/v1/federation/bundle", content=body,
                      headers={"Content-Type": "application/x-ndjson"})
        assert r.status_code == 200 and r.json()["kinds"]["location"] == 1
        r = http.get(f"/api/v1/federation/artifacts/{fake.id}")
        assert b"secret weights" not in r.content
        assert r.status_code == 409 and "no longer has the artifact's bytes" in r.text


def test_sync_with_itself_and_unreachable_peer(tmp_path: Path, sites: dict[str, Site]) -> None:
    b = sites["b"] = Site("b", tmp_path / "b").start()
    sb: Store = b.open()
    try:
        with pytest.raises(CmfError, match="this very store"):
            sync(b.url, store=sb)
        with pytest.raises(PeerError, match="cannot reach"):
            sync("http://127.0.0.1:9", store=sb)
        # a password in the URL (basic auth to a proxy in front) never shows in a message
        for url in ("http://ops:hunter2@127.0.0.1:9", b.url.replace("://", "://ops:hunter2@"),
                    "ftp://ops:hunter2@h", "http://ops:hunter2@[::1"):
            with pytest.raises(CmfError) as failed:
                sync(url, store=sb)
            assert "hunter2" not in str(failed.value) and "ops:***@" in str(failed.value)
        # a pipeline neither site has (a typo in the sync step's pipeline=) is named, not
        # "synced" with nothing moved
        record(b, "churn", "s3://b/churn.csv")
        a = Site("a", tmp_path / "a")
        record(a, "mine", "s3://a/x.csv")
        with a.open() as sa:
            with pytest.raises(NotFoundError, match=r"no pipeline named 'chrun' in this store "
                               r"nor at b .*pipelines here: mine"):
                sync(b.url, store=sa, pipeline="chrun")
            with pytest.raises(NotFoundError, match="'churn' in this store; pipelines here"):
                sync(b.url, store=sa, pipeline="churn", direction="push")
            assert sync(b.url, store=sa, pipeline="churn", direction="pull").pulled.records
    finally:
        sb.close()


def test_own_sharing_policy_limits_what_is_pushed(sites: dict[str, Site],
                                                   tmp_path: Path) -> None:
    """What a site pushes obeys its own policy; a requested pipeline narrows both ways."""
    b = sites["b"] = Site("b", tmp_path / "b").start()
    a = Site("a", tmp_path / "a")
    for pipeline in ("public", "secret", "other"):
        record(a, pipeline, f"s3://{pipeline}/x.csv")
    record(b, "other", "s3://b-other/x.csv")
    record(b, "public", "s3://b-public/x.csv")
    settings = site_settings(site="a", store_url=a.store_url,
                             federation_share_pipelines=["public", "other"])
    with a.open() as sa:
        report = sync(b.url, store=sa, settings=settings, direction="push")
        assert report.scope == "all"  # b shares everything with us ...
        with b.open() as sb:  # ... but we only gave b what we share
            assert {p.name for p in sb.list_pipelines()} == {"public", "other"}
            assert all("secret" not in line for line in dump(sb))
        one = sync(b.url, store=sa, settings=settings, pipeline="public")
        assert one.scope == "pipelines=public" and one.pulled.records > 0
        assert {e.pipeline for e in sa.list_executions()} == {"public", "secret", "other"}
        assert len(sa.list_executions(ExecutionFilter(pipeline="other"))) == 1  # not b's


def test_interrupted_push_resumes(sites: dict[str, Site], tmp_path: Path) -> None:
    """A push cut off after some pages resumes where the receiver says it has us up to."""
    b = sites["b"] = Site("b", tmp_path / "b").start()
    a = Site("a", tmp_path / "a")
    assert start_recorder(a, 30).wait() == 0
    proxy = CuttingProxy(b.port, cut_after=2500)  # a few small answers, then the line drops
    with a.open() as sa:
        try:
            with pytest.raises(PeerError, match="cut off"):
                sync(proxy.url, store=sa, direction="push", page_size=3)
        finally:
            proxy.close()
        with b.open() as sb:
            partial = dump(sb)
            assert partial and set(partial) < set(dump(sa))
            mark = get_hwm(sb, sa.store_id, "all")
        report = sync(b.url, store=sa, direction="push", page_size=3)
        assert report.pushed.since == mark > 0
        with b.open() as sb:
            assert dump(sb) == dump(sa)


def test_page_damaged_in_transit_mid_sync(sites: dict[str, Site], tmp_path: Path) -> None:
    """A page damaged on the way (while the page before it is being imported, as the next page
    downloads during an import) fails the sync; the pages before it are stored and marked, it
    is not, and the next sync resumes after the last good page."""
    b = sites["b"] = Site("b", tmp_path / "b").start()
    assert start_recorder(b, 40).wait() == 0
    a = Site("a", tmp_path / "a").open()
    proxy = CorruptingProxy(b.port, cut_after=40_000)
    try:
        with pytest.raises(CmfError):
            sync(proxy.url, store=a, direction="pull", page_size=4)
        assert proxy.cuts == 1
        with b.open() as sb:
            mark = get_hwm(a, sb.store_id, "all")
            assert 0 < mark < sb.max_seq()
            assert_mark_is_backed(a, sb, mark, tmp_path)
            assert set(dump(a)) < set(dump(sb))
            report = sync(b.url, store=a, direction="pull", page_size=4)
            assert report.pulled.since == mark
            assert dump(a) == dump(sb)
    finally:
        proxy.close()
        a.close()


def test_formats_and_compression_are_negotiated(sites: dict[str, Site], tmp_path: Path) -> None:
    """A peer offers both bundle formats: format 1 unless asked (older callers), format 2 when
    asked; sync uses format 2 and, on loopback, sends no gzip."""
    b = sites["b"] = Site("b", tmp_path / "b").start()
    assert start_recorder(b, 3).wait() == 0
    with httpx.Client(base_url=b.url + "/api/v1/federation") as http:
        info = http.get("/info").json()
        assert info["format"] == FORMAT and info["formats"] == list(FORMATS)
        for params, fmt in (({}, FORMAT), ({"format": COMPACT}, COMPACT)):
            r = http.get("/bundle", params={**params, "gzip": False})
            assert r.status_code == 200 and Reader([r.content]).open().format == fmt
        assert http.get("/bundle", params={"format": 9}).status_code == 400
    a, c = Site("a", tmp_path / "a").open(), Site("c", tmp_path / "c").open()
    try:
        plain = sync(b.url, store=a, direction="pull")  # loopback: not compressed
        zipped = sync(b.url, store=c, direction="pull", compress=True)
        assert plain.pulled.records == zipped.pulled.records > 0
        assert zipped.pulled.bytes < plain.pulled.bytes / 2
        with b.open() as sb:
            assert dump(a) == dump(c) == dump(sb)
    finally:
        a.close()
        c.close()
    assert is_loopback("http://127.0.0.1:8080") and is_loopback("http://localhost:1")
    assert is_loopback("http://[::1]:80") and not is_loopback("https://cloud.example.org")
    assert not is_loopback("http://10.0.0.2:8080")
