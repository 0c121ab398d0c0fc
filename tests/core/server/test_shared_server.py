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


def test_a_shared_store_is_replaced_once_a_test_wrote_to_it(tmp_path: Path) -> None:
    """``SharedStore`` (the federation tests' empty store, the graph tests' shop): reused while
    its mark is unchanged, replaced and loaded afresh after a write."""
    from cmf_core.model import Pipeline
    from tests.support.shared import SharedStore

    opened: list[Store] = []

    def new_store() -> Store:
        opened.append(open_store(f"sqlite:///{tmp_path / f'{len(opened)}.db'}", site="site-a"))
        return opened[-1]

    def load(store: Store) -> str:
        store.put([Pipeline("loaded", "site-a")])
        return f"load {len(opened)}"

    shared = SharedStore(new_store, mark=lambda s: s.max_seq(), load=load)
    first = shared.get()
    assert [p.name for p in first.list_pipelines()] == ["loaded"]
    assert shared.get() is first and shared.loaded == "load 1"  # a read: the same store
    first.put([Pipeline("a-test-wrote-this", "site-a")])
    second = shared.get()
    assert second is opened[1] and shared.loaded == "load 2"
    assert [p.name for p in second.list_pipelines()] == ["loaded"]  # loaded afresh, only that
    shared.close()
    assert shared.store is None
