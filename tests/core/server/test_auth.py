"""Bearer tokens: writes need the server's token when one is set; reads optionally."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from openlineage.client import OpenLineageClient

from cmf_core.errors import ConfigError
from cmf_core.openlineage.convert import to_run_events
from cmf_core.server.auth import check_bind, is_loopback
from tests.core.openlineage.conftest import airflow_events, build_lineage

TOKEN = "s3cret-token"


def test_writes_need_the_token(serve: Callable[..., Any]) -> None:
    event = airflow_events()[0]
    with serve(token=TOKEN) as live:
        with live.client() as anonymous:
            r = anonymous.post("/api/v1/lineage", json=event)
            assert r.status_code == 401
            assert r.headers["www-authenticate"].startswith("Bearer")
            assert "needs the server's token" in r.json()["message"]
            basic = anonymous.post("/api/v1/lineage", json=event,
                                   headers={"Authorization": "Basic dXNlcjpwdw=="})
            assert basic.status_code == 401 and "'Basic'" in basic.json()["message"]
            assert anonymous.get("/api/v1/pipelines").status_code == 200  # reads are open
        with live.client("wrong") as wrong:
            r = wrong.post("/api/v1/lineage", json=event)
            assert r.status_code == 401 and "does not match" in r.json()["message"]
            assert wrong.get("/api/v1/pipelines").status_code == 401  # a wrong token is told
        assert not live.store.lineage_events()
        with live.client(TOKEN) as good:
            assert good.post("/api/v1/lineage", json=event).status_code == 201
            assert good.post("/api/v1/lineage/batch", json=[event]).status_code == 201


def test_protected_reads(serve: Callable[..., Any]) -> None:
    with serve(token=TOKEN, protect_reads=True) as live:
        for path in ("/api/v1/pipelines", "/api/v1/events/lineage", "/api/v1/health"):
            assert httpx.get(live.url + path).status_code == 401, path
            assert httpx.get(live.url + path,
                             headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        assert httpx.get(live.url + "/openapi.json").status_code == 200


def test_openlineage_client_with_api_key_auth(serve: Callable[..., Any]) -> None:
    """openlineage-python's ``auth: {type: api_key}`` sends the bearer token cmf serve wants."""
    lineage = build_lineage()
    with serve(token=TOKEN) as live:
        client = OpenLineageClient(config={"transport": {
            "type": "http", "url": live.url,
            "auth": {"type": "api_key", "apiKey": TOKEN}}})
        for event in to_run_events(lineage):
            client.emit(event)
        assert live.store.get_execution(lineage.execution.id) is not None


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.0.0.53", True), ("::1", True), ("[::1]", True),
    ("localhost", True), ("0.0.0.0", False), ("::", False), ("10.1.2.3", False),
    ("cmf.example.org", False),
])
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_refuses_non_loopback_without_a_token() -> None:
    with pytest.raises(ConfigError, match=r"refusing to serve on 0\.0\.0\.0 without a token.*"
                                          r"CMF_TOKEN.*--insecure"):
        check_bind("0.0.0.0", None)
    check_bind("0.0.0.0", TOKEN)
    check_bind("0.0.0.0", None, insecure=True)
    with pytest.raises(ConfigError, match=r"refusing to serve on every interface \(an empty "
                                          r"host\) without a token"):
        check_bind("", None)  # binds every interface, as 0.0.0.0
    check_bind("127.0.0.1", None)


@pytest.mark.parametrize("header", [TOKEN, f"Token{TOKEN}", "Bearer"])
def test_a_malformed_authorization_header_is_not_echoed(serve: Callable[..., Any],
                                                        header: str) -> None:
    """A client sending its token without 'Bearer ' gets a 401 that says so, and the answer
    (which clients and proxies log) does not repeat the token."""
    event = airflow_events()[0]
    with serve(token=TOKEN, protect_reads=True) as live, live.client() as c:
        for r in (c.post("/api/v1/lineage", json=event, headers={"Authorization": header}),
                  c.get("/api/v1/pipelines", headers={"Authorization": header})):
            assert r.status_code == 401, r.text
            message = r.json()["message"]
            assert "must be 'Bearer <token>'" in message and TOKEN not in message
        assert not live.store.lineage_events()
