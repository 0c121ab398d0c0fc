"""``cmf serve`` behind a reverse proxy that publishes it under a path prefix
(``https://portal.example.org/cmf/``), as HPC centres and cloud teams deploy it.

The proxy is :mod:`tests.support.proxy`, a real HTTP proxy on loopback doing what nginx does
(prefix stripped or passed on, ``Host``/``X-Forwarded-*`` set, a body limit); the same
checks were made by hand through nginx 1.22 with TLS.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import Job, Run, RunEvent, RunState

from cmf_core.config import load_settings
from cmf_core.errors import ConfigError
from cmf_core.openlineage.emit import HttpSink
from cmf_core.store import Store, open_store
from tests.core.server.conftest import live_server
from tests.core.server.test_serve import APP, ROOT, _wait_ready
from tests.support.postgres import free_port
from tests.support.proxy import reverse_proxy

HOST = "portal.example.org"


def _event(job: str) -> dict[str, object]:
    return {"eventType": "COMPLETE", "eventTime": "2026-11-29T10:00:00Z",
            "run": {"runId": str(uuid.uuid4())}, "job": {"namespace": "proxy", "name": job},
            "producer": "https://example.org/test",
            "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"}


@pytest.mark.parametrize("strip", [True, False], ids=["prefix-stripped", "prefix-passed-on"])
def test_the_server_works_under_a_path_prefix(sqlite_store: Store, strip: bool) -> None:
    """The docs page loads its OpenAPI document from under the prefix (it asked the portal's
    /openapi.json, another application's URL), the OpenAPI ``servers`` name the prefix (the
    docs page's "Try it out" posts there), the UI and the API answer, and producers whose URL
    has the prefix write through the proxy."""
    with live_server(sqlite_store, root_path="/cmf", allowed_hosts=["127.0.0.1", HOST]) as live, \
            reverse_proxy(live.url, strip=strip) as (proxy_url, proxy):
        public = proxy_url + "/cmf"
        with httpx.Client(timeout=30) as http:
            docs = http.get(public + "/docs")
            assert docs.status_code == 200
            openapi_url = re.search(r"url: '([^']+)'", docs.text).group(1)  # type: ignore[union-attr]
            assert openapi_url == "/cmf/openapi.json"
            spec = http.get(proxy_url + openapi_url)  # as the browser resolves it
            assert spec.status_code == 200 and spec.json()["servers"] == [{"url": "/cmf"}]

            page = http.get(public + "/")
            assert page.status_code == 200 and 'src="app.js"' in page.text
            assert http.get(public + "/app.js").status_code == 200
            # the prefix alone leads to the UI's folder, where its relative links resolve
            bare = http.get(public)
            assert bare.status_code in (301, 307) and bare.headers["location"] == "/cmf/"

            # CMF's own HTTP sink (CMF_SERVER_URL, the orchestrators' server_url), no slash
            HttpSink(load_settings(server_url=public)).send(_event("from-sink"))
            # openlineage-python joins url and endpoint with urljoin: the url needs its slash
            OpenLineageClient(config={"transport": {
                "type": "http", "url": public + "/", "endpoint": "api/v1/lineage"}}).emit(
                RunEvent(eventType=RunState.COMPLETE, eventTime="2026-11-29T10:00:00Z",
                         run=Run(runId=str(uuid.uuid4())),
                         job=Job(namespace="proxy", name="from-openlineage"),
                         producer="https://example.org/test"))
            names = [p["name"] for p in http.get(public + "/api/v1/pipelines").json()["items"]]
            assert sorted(names) == ["from-openlineage", "from-sink"]
        # the app saw the proxy's public name, and the prefix only where the proxy kept it
        paths = [p for p, _ in proxy.forwarded]
        assert "/api/v1/lineage" in [p.removeprefix("/cmf") for p in paths]
        assert all(p.startswith("/cmf/") != strip for p in paths)
        assert {h["host"] for _, h in proxy.forwarded} == {HOST}


def test_a_request_straight_to_the_server_still_works_with_a_root_path(
        sqlite_store: Store) -> None:
    """Health checks and local clients that bypass the proxy reach the same routes."""
    with live_server(sqlite_store, root_path="/cmf") as live, httpx.Client() as http:
        assert http.get(live.url + "/api/v1/health").json()["status"] == "ok"
        assert http.get(live.url + "/cmf/api/v1/health").json()["status"] == "ok"
        assert http.post(live.url + "/api/v1/lineage", json=_event("direct")).status_code == 201


@pytest.mark.parametrize("value", ["cmf", "https://portal.example.org/cmf", "/cmf?x=1"])
def test_a_root_path_that_is_not_a_path_is_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="must be the path part of the public URL"):
        load_settings(serve_root_path=value)


def test_root_path_is_normalised() -> None:
    assert load_settings(serve_root_path="/cmf/").serve_root_path == "/cmf"
    assert load_settings(serve_root_path="/").serve_root_path == ""


def test_a_sync_through_the_proxy_keeps_the_prefix(sqlite_store: Store, tmp_path: Path) -> None:
    """``cmf sync https://portal.example.org/cmf``: every request goes under the prefix."""
    from cmf_core import Cmf
    from cmf_core.federation.peer import sync

    settings = load_settings(store_url=f"sqlite:///{tmp_path / 'other.db'}", site="other",
                             energy=False, home=str(tmp_path / "home"))
    with open_store(settings=settings) as other:
        with Cmf(pipeline_name="pushed", store=other, settings=settings) as cmf, \
                cmf.create_execution("train", params={"lr": 0.1}):
            pass
        with live_server(sqlite_store, allowed_hosts=[HOST]) as live, \
                reverse_proxy(live.url) as (proxy_url, proxy):
            report = sync(proxy_url + "/cmf", store=other, settings=settings)
        assert report.pushed.records > 0
        assert [p.name for p in sqlite_store.list_pipelines()] == ["pushed"]
        assert {p.split("?")[0] for p, _ in proxy.forwarded} == {
            "/api/v1/federation/info", "/api/v1/federation/bundle"}


def test_cmf_serve_root_path_option(tmp_path: Path) -> None:
    """``cmf serve --root-path /cmf`` behind a proxy that passes its name on (nginx with
    ``proxy_set_header Host $host`` and ``serve_allowed_hosts``): the docs page works under the
    prefix, and the first line says where the server is published."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMF_")}
    env.update(CMF_HOME=str(tmp_path / "home"), PYTHONPATH=str(ROOT),
               CMF_SERVE_ALLOWED_HOSTS=f'["{HOST}"]')
    proc = subprocess.Popen([sys.executable, "-c", APP, "--port", str(port), "--root-path",
                             "/cmf/"], env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        _wait_ready(proc, f"http://127.0.0.1:{port}")
        with reverse_proxy(f"http://127.0.0.1:{port}") as (proxy_url, _):
            docs = httpx.get(proxy_url + "/cmf/docs")
            assert docs.status_code == 200 and "url: '/cmf/openapi.json'" in docs.text
            assert httpx.get(proxy_url + "/cmf/openapi.json").json()["servers"] == [
                {"url": "/cmf"}]
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert f"on http://127.0.0.1:{port}, published under /cmf/ " in err


def test_a_push_larger_than_the_proxys_body_limit_is_sent_in_smaller_pages(
        sqlite_store: Store, tmp_path: Path) -> None:
    """nginx refuses a body over ``client_max_body_size`` (1 MiB by default) with a 413 HTML
    page; a push page over it failed the sync with that page as its message. The page is now
    made again smaller until the proxy takes it; what a page cannot be made small enough for
    says what to raise."""
    from cmf_core import Cmf
    from cmf_core.federation.peer import PeerError, sync

    settings = load_settings(store_url=f"sqlite:///{tmp_path / 'other.db'}", site="other",
                             energy=False, home=str(tmp_path / "home"))
    with open_store(settings=settings) as other:
        with Cmf(pipeline_name="big", store=other, settings=settings) as cmf:
            for i in range(300):
                with cmf.create_execution("train", params={"i": i, "note": "x" * 400}):
                    pass
        with live_server(sqlite_store, allowed_hosts=[HOST]) as live:
            with reverse_proxy(live.url, max_body=1 << 16) as (proxy_url, proxy):
                report = sync(proxy_url + "/cmf", store=other, settings=settings,
                              direction="push")
                assert report.pushed.pages > 1
                assert len(sqlite_store.list_executions()) == 300
                assert proxy.too_large  # the first pages were refused, and made again
            with reverse_proxy(live.url, max_body=64) as (proxy_url, _), \
                    Cmf(pipeline_name="big", store=other, settings=settings) as cmf:
                with cmf.create_execution("train", params={"i": -1}):
                    pass
                with pytest.raises(PeerError, match=r"413.*body limit.*client_max_body_size"):
                    sync(proxy_url + "/cmf", store=other, settings=settings, direction="push")


def test_a_proxy_name_not_allowed_is_told_what_to_set(sqlite_store: Store) -> None:
    """Without serve_allowed_hosts the proxy's Host is refused (DNS rebinding check), with the
    API's error shape and the exact setting that lets it through."""
    with live_server(sqlite_store, root_path="/cmf", allowed_hosts=["127.0.0.1"]) as live, \
            reverse_proxy(live.url) as (proxy_url, _):
        r = httpx.get(proxy_url + "/cmf/api/v1/pipelines")
    assert r.status_code == 400
    body = r.json()
    assert body["code"] == 400 and body["error"] == "InvalidInputError"
    assert "does not answer to the host name 'portal.example.org'" in body["message"]
    assert """CMF_SERVE_ALLOWED_HOSTS='["portal.example.org"]'""" in body["message"]
