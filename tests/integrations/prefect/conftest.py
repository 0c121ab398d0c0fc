"""Fixtures: one real Prefect server per test session (Prefect's test harness), a fresh CMF
store per test, and the in-process route switched on only for the tests that ask for it.

The server needs ``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=120`` on small machines (the
Makefile exports it; it is the default here too) and persists events every half second here
(Prefect's default is 5 s), so tests that read the event store wait less.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

SERVER_ENV = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL": "0.5",
}


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a real Prefect server (a subprocess on loopback with a temporary database)."""
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    timeout = int(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120"))
    home = tmp_path_factory.mktemp("prefect-home")
    with pytest.MonkeyPatch.context() as mp:
        for key, value in SERVER_ENV.items():
            mp.setenv(key, value)
        mp.setenv("PREFECT_HOME", str(home))
        with temporary_settings(updates={PREFECT_HOME: home}), \
                prefect_test_harness(server_startup_timeout=max(timeout, 120)):
            yield str(PREFECT_API_URL.value())


@pytest.fixture
def cmf_settings(tmp_path: Path) -> Any:
    """CMF settings of a fresh SQLite store for this test (site ``edge``)."""
    from cmf_core.config import load_settings

    return load_settings(store_url=f"sqlite:///{tmp_path / 'cmf.db'}", site="edge",
                         home=tmp_path / ".cmf")


@pytest.fixture
def cmf_store(cmf_settings: Any) -> Iterator[Any]:
    from cmf_core.store import open_store

    store = open_store(settings=cmf_settings)
    yield store
    store.close()


@pytest.fixture
def auto_route(prefect_api: str, cmf_settings: Any) -> Iterator[Any]:
    """The in-process route, recording into this test's store."""
    from cmf_prefect import auto

    from cmf_core.openlineage.emit import get_emitter

    assert auto.install(cmf_settings)
    yield auto.ROUTE
    auto.uninstall()
    get_emitter(cmf_settings).close()


@pytest.fixture
def wait_until() -> Callable[..., Any]:
    """``wait_until(fn, timeout=30)``: poll until ``fn()`` is truthy; returns its value."""

    def wait(fn: Callable[[], Any], timeout: float = 30.0, every: float = 0.2) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = fn()
            if value or time.monotonic() > deadline:
                return value
            time.sleep(every)

    return wait


@pytest.fixture
def drain_events() -> Callable[[], None]:
    """Send the events this process's flows emitted to the server now."""

    def drain() -> None:
        from prefect.events.worker import EventsWorker

        EventsWorker.drain_all(timeout=10)

    return drain


@pytest.fixture
def peer(tmp_path: Path) -> Iterator[tuple[str, Any]]:
    """A second site: a real ``cmf serve`` app (uvicorn, loopback) over its own store."""
    from cmf_core.config import load_settings
    from cmf_core.server.app import create_app
    from cmf_core.store import open_store
    from tests.support.asgi import served

    store = open_store(f"sqlite:///{tmp_path / 'hpc.db'}", site="hpc")
    app = create_app(store, load_settings(site="hpc", token="hpc-secret"))
    try:
        with served(app, "cmf-serve-hpc") as url:
            yield url, store
    finally:
        store.close()
