"""``SharedServer``, the server that a module's read-only tests share: it is reused only while
its store holds what its load recorded, so no test sees what another test wrote."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from cmf_core.store import Store, open_store
from tests.core.openlineage.conftest import airflow_events
from tests.core.server.conftest import LiveServer, shared_server


def test_a_shared_server_is_replaced_once_a_test_changed_its_store(
        tmp_path: Path, tmp_path_factory: pytest.TempPathFactory,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CMF_SITE", "the-developers-site")  # not seen by the shared server
    opened: list[Store] = []

    def new_store() -> Store:
        opened.append(open_store(f"sqlite:///{tmp_path / f'{len(opened)}.db'}", site="site-a"))
        return opened[-1]

    def load(live: LiveServer) -> None:
        with live.client() as c:
            assert c.post("/api/v1/lineage", json=airflow_events()[0]).status_code == 201

    with shared_server(new_store, tmp_path_factory, load) as shared:
        first = shared.get()
        assert first.app.state.settings.site != "the-developers-site"
        with first.client() as c:  # reads leave it as it was: the same server, not reloaded
            assert c.get("/api/v1/executions").json()["total"] == 1
        assert shared.get() is first and len(opened) == 1
        with first.client() as c:  # a test that writes
            assert c.post("/api/v1/lineage", json=airflow_events()[0]).status_code == 201
        second = shared.get()
        assert second is not first and second.store is opened[1]
        assert len(second.store.lineage_events()) == 1  # loaded afresh, and only that
        with pytest.raises(httpx.ConnectError):  # the first one is stopped
            httpx.get(first.url + "/api/v1/health")
    with pytest.raises(httpx.ConnectError):
        httpx.get(second.url + "/api/v1/health")
