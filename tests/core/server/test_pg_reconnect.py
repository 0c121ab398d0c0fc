"""``cmf serve`` on a PostgreSQL store whose sessions end under it (a database restart, a
failover, a firewall's idle timeout, ``pg_terminate_backend``): it used to answer every later
OpenLineage POST with a bare 500 until restarted, its writer connection being dead for good.

Real PostgreSQL (the suite's shared server) and a real uvicorn server on loopback.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from cmf_core.store import open_store
from tests.core.server.conftest import live_server
from tests.core.store.test_pg_reconnect import allow_connections, end_sessions
from tests.support.postgres import TempPostgres

pytestmark = pytest.mark.postgres


def run_event(run_id: str) -> dict[str, Any]:
    return {"eventType": "COMPLETE", "eventTime": "2026-05-01T12:00:00Z",
            "producer": "https://example.com/producer",
            "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
            "run": {"runId": run_id}, "job": {"namespace": "ns", "name": "dag.task"},
            "inputs": [], "outputs": []}


def test_the_server_recovers_after_its_database_sessions_end(postgres: TempPostgres) -> None:
    url = postgres.create_database()
    db = url.rsplit("/", 1)[1]
    store = open_store(url, site="a")
    acked: list[str] = []
    refused: list[str] = []
    try:
        with live_server(store) as live, live.client() as c:
            def post() -> Any:
                rid = str(uuid.uuid4())
                r = c.post("/api/v1/lineage", json=run_event(rid))
                (acked if r.status_code == 201 else refused).append(rid)
                return r

            assert post().status_code == 201
            assert end_sessions(postgres, db) >= 1
            for _ in range(2):  # the writer reconnects: acknowledged, and durable
                r = post()
                assert r.status_code == 201, r.text
            assert c.get("/api/v1/executions").status_code == 200

            # an outage: refused with 503 and Retry-After (a client spools and retries), never
            # acknowledged and lost; reads say so too
            allow_connections(postgres, db, False)
            try:
                end_sessions(postgres, db)
                r = post()
                assert r.status_code == 503, r.text
                assert r.headers["Retry-After"] == "1"
                assert r.json()["error"] == "StoreError" and "PostgreSQL store" in r.text
                assert c.get("/api/v1/executions").status_code == 503
            finally:
                allow_connections(postgres, db, True)

            # back: no restart of the server needed
            r = post()
            assert r.status_code == 201, r.text
            listed = c.get("/api/v1/executions", params={"limit": 100})
            assert listed.status_code == 200
    finally:
        store.close()
    assert len(acked) == 4 and len(refused) == 1
    with open_store(url, site="reader") as s:
        assert sorted(e.id for e in s.list_executions()) == sorted(acked)


def test_a_busy_connection_pool_is_a_503_not_a_500(postgres: TempPostgres) -> None:
    """More reads at once than the store's pool holds (5 + 10 overflow; ``cmf serve`` runs up
    to 40 request threads): the one that waits out the pool's timeout gets 503 with
    Retry-After and a message saying so (it was a bare 500 from SQLAlchemy's TimeoutError),
    and reads answer again once connections are free. The pool's 30 s wait is cut to 0.2 s
    here (its private attribute) so the test does not wait."""
    store = open_store(postgres.create_database(), site="a")
    held: list[Any] = []
    try:
        with live_server(store) as live, live.client() as c:
            assert c.get("/api/v1/executions").status_code == 200
            pool = store.engine.pool
            pool._timeout = 0.2  # type: ignore[attr-defined]
            while pool.checkedout() < pool.size() + pool._max_overflow:  # type: ignore[attr-defined]
                held.append(store.engine.connect())
            r = c.get("/api/v1/executions")
            assert r.status_code == 503, r.text
            assert r.headers["Retry-After"] == "1"
            assert r.json()["error"] == "StoreError"
            assert "every connection of its pool is in use" in r.json()["message"]
            for conn in held:
                conn.close()
            held.clear()
            assert c.get("/api/v1/executions").status_code == 200
    finally:
        for conn in held:
            conn.close()
        store.close()
