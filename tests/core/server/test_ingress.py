"""The ingress (a plain ASGI handler for the OpenLineage POST routes) answers exactly as the
FastAPI routes it stands in front of: same statuses, bodies and headers, errors included."""

from __future__ import annotations

import copy
import gzip
import json
import socket
import zlib
from typing import Any

import httpx
import pytest

from cmf_core.store import Store
from tests.core.openlineage.conftest import airflow_events
from tests.core.server.conftest import live_server

Request = tuple[str, bytes, dict[str, str]]
HEADERS = ("content-type", "www-authenticate", "retry-after")


def requests() -> list[Request]:
    """Good and bad POSTs of every kind the endpoints answer."""
    start, running, complete = airflow_events(run_id="0190a8f4-54c8-7c8e-9a4b-7a43a1d2c3e5")
    bad = copy.deepcopy(running)
    bad["eventTime"] = "2024-05-01"
    as_json = {"Content-Type": "application/json"}

    def js(value: Any) -> bytes:
        return json.dumps(value).encode()

    return [
        ("/api/v1/lineage", js(start), as_json),
        ("/api/v1/lineage", js(start), as_json),  # again: idempotent, same answer
        ("/api/v1/lineage", gzip.compress(js(complete)),
         {**as_json, "Content-Encoding": "gzip"}),
        ("/api/v1/lineage", zlib.compress(js(running)),
         {**as_json, "Content-Encoding": "deflate"}),
        ("/api/v1/lineage", js(bad), as_json),
        ("/api/v1/lineage", js([start, bad, 7, complete]), as_json),
        ("/api/v1/lineage", js([bad]), as_json),
        ("/api/v1/lineage", js([]), as_json),
        ("/api/v1/lineage", js("an event"), as_json),
        ("/api/v1/lineage/batch", js([start, complete]), {"Content-Type": "application/x+json"}),
        ("/api/v1/lineage/batch", js(start), as_json),
        ("/api/v1/lineage", b"", as_json),
        ("/api/v1/lineage", b'{"eventType": ', as_json),
        ("/api/v1/lineage", b"\xff\xfe", as_json),
        ("/api/v1/lineage", js(start), {"Content-Type": "text/plain"}),
        ("/api/v1/lineage", js(start), {}),
        ("/api/v1/lineage", js(start), {**as_json, "Content-Encoding": "br"}),
        ("/api/v1/lineage", b"not gzip", {**as_json, "Content-Encoding": "gzip"}),
        ("/api/v1/lineage", js([start] * 40), as_json),  # validated off the event loop
        ("/api/v1/lineage", b"x" * 70_000, as_json),  # over max_body_bytes
    ]


def answers(store: Store, reqs: list[Request], *, ingress: bool, token: str | None = None,
            auth: str | None = None) -> list[tuple[int, Any, dict[str, str]]]:
    out = []
    with live_server(store, token, ingress=ingress, max_body_bytes=64 * 1024) as live, \
            httpx.Client(base_url=live.url, timeout=30) as client:
        for path, body, headers in reqs:
            if auth is not None:
                headers = {**headers, "Authorization": auth}
            r = client.post(path, content=body, headers=headers)
            out.append((r.status_code, r.json(),
                        {h: r.headers[h] for h in HEADERS if h in r.headers}))
    return out


def test_ingress_answers_as_the_fastapi_routes(store: Store) -> None:
    reqs = requests()
    fast = answers(store, reqs, ingress=True)
    assert [s for s, _, _ in fast] == [201, 201, 201, 201, 400, 207, 400, 400, 400, 201, 400,
                                       400, 400, 400, 415, 415, 415, 400, 201, 413]
    assert fast == answers(store, reqs, ingress=False)


@pytest.mark.parametrize("auth", [None, "Bearer wrong", "Basic dXNlcjpwdw==", "Bearer",
                                  "Bearer  s3cret", "bearer s3cret"])
def test_ingress_checks_the_token_as_the_fastapi_routes(sqlite_store: Store,
                                                        auth: str | None) -> None:
    reqs = requests()[:1]
    fast = answers(sqlite_store, reqs, ingress=True, token="s3cret", auth=auth)
    assert fast == answers(sqlite_store, reqs, ingress=False, token="s3cret", auth=auth)
    status, body, headers = fast[0]
    if auth is not None and auth.lower().split()[0] == "bearer" and "s3cret" in auth:
        assert status == 201
    else:
        assert (status, body["error"]) == (401, "AuthError")
        assert headers["www-authenticate"] == 'Bearer realm="cmf"'


def test_other_methods_and_routes_go_on_to_fastapi(server: Any) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        r = client.get("/api/v1/lineage")  # the graph: needs nodeId
        assert r.status_code == 400 and "nodeId" in r.json()["message"]
        assert client.put("/api/v1/lineage", json={}).status_code == 405
        assert client.post("/api/v1/lineage/other", json={}).status_code in (404, 405)
        # a trailing slash (an OpenLineage client's endpoint "api/v1/lineage/") is the route
        assert client.post("/api/v1/lineage/", json=airflow_events()[0]).status_code == 201
        assert client.post("/api/v1/lineage/batch/", json=[]).status_code == 400
        assert client.get("/api/v1/health").json()["status"] == "ok"


def test_a_client_that_leaves_mid_body_stores_nothing(sqlite_store: Store) -> None:
    start = json.dumps(airflow_events()[0]).encode()
    with live_server(sqlite_store) as live:
        host, port = live.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(b"POST /api/v1/lineage HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Type: application/json\r\n"
                      + f"Content-Length: {len(start)}\r\n\r\n".encode() + start[:50])
        with httpx.Client(base_url=live.url, timeout=30) as client:  # still serving
            assert client.post("/api/v1/lineage/batch", json=[]).status_code == 400
    assert sqlite_store.lineage_events() == []
