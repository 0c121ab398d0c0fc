"""The app: OpenAPI, health, error mapping, optional federation router and web UI."""

from __future__ import annotations

import importlib
import importlib.util
import logging
from pathlib import Path

import httpx
import pytest

from cmf_core.errors import (
    AuthError,
    CmfError,
    ConfigError,
    InvalidEventError,
    InvalidInputError,
    MergeConflictError,
    NotFoundError,
    StoreError,
)
from cmf_core.server import errors
from cmf_core.server.app import OPTIONAL_ROUTERS, STATIC_DIR
from cmf_core.server.errors import PayloadTooLargeError, UnsupportedMediaTypeError, status_for
from cmf_core.server.writer import QueueFullError
from tests.core.server.conftest import LiveServer


def test_openapi_is_served(server: LiveServer) -> None:
    spec = httpx.get(server.url + "/openapi.json").json()
    paths = spec["paths"]
    for path in ("/api/v1/lineage", "/api/v1/lineage/batch", "/api/v1/events/lineage",
                 "/api/v1/pipelines", "/api/v1/executions", "/api/v1/artifacts",
                 "/api/v1/artifacts/{artifact_id}/lineage", "/api/v1/metrics"):
        assert path in paths, path
    post = paths["/api/v1/lineage"]["post"]
    assert "201" in post["responses"] and "400" in post["responses"]
    assert "application/json" in post["requestBody"]["content"]
    assert post["security"] == [{"HTTPBearer": []}]
    assert httpx.get(server.url + "/docs").status_code == 200


def test_health_reports_the_store_and_the_writer(server: LiveServer) -> None:
    body = httpx.get(server.url + "/api/v1/health").json()
    assert body["status"] == "ok" and body["store"] == server.store.kind
    assert body["site"] == "site-a" and body["auth"] is False
    assert set(body["writer"]) == {"queued", "batches", "events", "largest_batch"}
    head = httpx.head(server.url + "/api/v1/health")  # as monitors probe it
    assert head.status_code == 200 and head.content == b""


def test_app_state_is_shared_with_routers(server: LiveServer) -> None:
    state = server.app.state
    assert state.store is server.store and state.settings.token is None
    assert state.writer.store is server.store


def test_unknown_route_has_the_error_shape(server: LiveServer) -> None:
    r = httpx.get(server.url + "/api/v1/nothing-here")
    assert r.status_code == 404 and r.json() == {"code": 404, "error": "HTTPError",
                                                  "message": "Not Found"}


@pytest.mark.parametrize(("error", "status"), [
    (InvalidEventError, 400), (InvalidInputError, 400), (PayloadTooLargeError, 413),
    (UnsupportedMediaTypeError, 415), (AuthError, 401), (NotFoundError, 404),
    (MergeConflictError, 409), (StoreError, 503), (QueueFullError, 503), (ConfigError, 500),
    (CmfError, 500),
])
def test_each_error_class_has_one_status(error: type[CmfError], status: int) -> None:
    assert status_for(error("x")) == status


@pytest.mark.parametrize("name", OPTIONAL_ROUTERS)
def test_optional_routers_are_included_when_installed(server: LiveServer, name: str) -> None:
    paths = {getattr(r, "path", "") for r in server.app.routes}
    if importlib.util.find_spec(f"cmf_core.server.routers.{name}") is None:
        assert not any(f"/{name}" in p for p in paths)
    else:
        module = importlib.import_module(f"cmf_core.server.routers.{name}")
        assert {r.path for r in module.router.routes} <= paths


def test_root_serves_the_ui_or_points_to_the_docs(server: LiveServer) -> None:
    r = httpx.get(server.url + "/")
    assert r.status_code == 200
    if (STATIC_DIR / "index.html").is_file():
        assert r.headers["content-type"].startswith("text/html")
    else:
        assert r.json()["docs"] == "/docs"


def test_a_store_failure_is_said_once_in_the_server_log(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The store file deleted under a running server (a real SQLite store, a real uvicorn
    server): every POST is refused with 503 and the reason, and the server's own log says it
    too, once at WARNING, not once per request; before, only the clients were told, and the
    operator's log said nothing while the error asks to restart the server."""
    import uuid

    from cmf_core.store import open_store
    from tests.core.server.conftest import live_server

    caplog.set_level("DEBUG", logger="cmf")
    errors.note_server_error(errors.StoreError("another error, said before this test"))
    store = open_store(f"sqlite:///{tmp_path / 'cmf.db'}", site="a")
    (tmp_path / "cmf.db").unlink()
    try:
        for ingress in (True, False):  # the fast POST handler and the FastAPI route
            with live_server(store, ingress=ingress) as live, live.client() as c:
                for _ in range(2):
                    event = {"eventType": "COMPLETE", "eventTime": "2026-05-01T12:00:00Z",
                             "producer": "https://example.com/p",
                             "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json"
                                          "#/$defs/RunEvent",
                             "run": {"runId": str(uuid.uuid4())},
                             "job": {"namespace": "ns", "name": "dag.task"},
                             "inputs": [], "outputs": []}
                    r = c.post("/api/v1/lineage", json=event)
                    assert r.status_code == 503, r.text
                    assert "was deleted" in r.json()["message"]
    finally:
        store.close()
    said = [r.getMessage() for r in caplog.records
            if r.name.startswith("cmf") and r.levelno >= logging.WARNING
            and "said before this test" not in r.getMessage()]
    assert len(said) == 1, said
    assert "503" in said[0] and "was deleted" in said[0] and "cmf spool retry" in said[0]
    assert any("answered 503 again" in r.getMessage() for r in caplog.records)
