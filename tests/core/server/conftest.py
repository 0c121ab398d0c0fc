"""A real ``cmf serve`` app under uvicorn on a free loopback port: started per test, or shared
by a module's tests that only read what one setup recorded (``SharedServer``)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from cmf_core.config import load_settings
from cmf_core.server.app import create_app
from cmf_core.store import Store
from tests.support.asgi import served


@dataclass
class LiveServer:
    url: str
    app: FastAPI
    store: Store

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


@contextlib.contextmanager
def live_server(store: Store, token: str | None = None, *, ingress: bool = True,
                **kwargs: Any) -> Iterator[LiveServer]:
    """Serve ``create_app(store, ...)`` with uvicorn in a thread until the block ends.

    ``ingress=False`` leaves out the fast ASGI handler of the OpenLineage POST routes, so the
    FastAPI routes answer them (the two must answer alike).
    """
    app = create_app(store, load_settings(token=token), **kwargs)
    if not ingress:
        from cmf_core.server.ingress import LineageIngress

        app.user_middleware = [m for m in app.user_middleware if m.cls is not LineageIngress]
    with served(app) as url:
        yield LiveServer(url, app, store)


@pytest.fixture
def server(store: Store) -> Iterator[LiveServer]:
    """An open (no token) server over the parametrised ``store`` (SQLite and PostgreSQL)."""
    with live_server(store) as live:
        yield live


@pytest.fixture
def serve(sqlite_store: Store) -> Callable[..., contextlib.AbstractContextManager[LiveServer]]:
    """``with serve(token=..., protect_reads=..., max_body_bytes=...) as live:`` over SQLite."""
    return lambda store=None, **kw: live_server(store or sqlite_store, **kw)


class SharedServer:
    """A live server over a store of its own, that tests which only read share: ``get()``
    gives it while its store holds exactly what ``load`` recorded, and a fresh one (fresh store,
    ``load`` run again) when a test changed it, so no test depends on what another did.

    The server is made under a clean environment (no ``CMF_*`` but ``CMF_HOME``, a folder of
    its own), as the per-test ``_clean_cmf_env`` gives each test."""

    def __init__(self, new_store: Callable[[], Store], home: Path,
                 load: Callable[[LiveServer], None] = lambda live: None, **kwargs: Any) -> None:
        self._new_store, self._home, self._load, self._kwargs = new_store, home, load, kwargs
        self._stack: contextlib.ExitStack | None = None
        self._live: LiveServer | None = None
        self._loaded: dict[str, list[str]] = {}
        self.started = 0

    def get(self) -> LiveServer:
        if self._live is None or store_contents(self._live.store) != self._loaded:
            self.close()
            self._live = self._start()
        return self._live

    def _start(self) -> LiveServer:
        stack = self._stack = contextlib.ExitStack()
        store = self._new_store()
        stack.callback(store.close)
        with pytest.MonkeyPatch.context() as env:
            for key in [k for k in os.environ if k.startswith("CMF_")]:
                env.delenv(key)
            env.setenv("CMF_HOME", str(self._home / f"home-{self.started}"))
            live = stack.enter_context(live_server(store, **self._kwargs))
        self.started += 1
        self._load(live)
        self._loaded = store_contents(store)
        return live

    def close(self) -> None:
        self._live = None
        if self._stack is not None:
            self._stack.close()
            self._stack = None


@contextlib.contextmanager
def shared_server(new_store: Callable[[], Store], tmp_path_factory: pytest.TempPathFactory,
                  load: Callable[[LiveServer], None] = lambda live: None,
                  **kwargs: Any) -> Iterator[SharedServer]:
    """A ``SharedServer`` (``live_server``'s keyword arguments) until the block ends."""
    shared = SharedServer(new_store, tmp_path_factory.mktemp("shared-home"), load, **kwargs)
    try:
        yield shared
    finally:
        shared.close()


def store_contents(store: Store) -> dict[str, list[str]]:
    """Every record in ``store`` (raw OpenLineage events included) as sorted canonical JSON,
    by record type: two stores with equal contents hold identical CMF records."""
    import dataclasses
    from collections import defaultdict

    from cmf_core import jsonutil

    out: dict[str, list[str]] = defaultdict(list)
    for r in [*store.changes(0), *store.lineage_events()]:
        fields = {f.name: getattr(r, f.name) for f in dataclasses.fields(r)}
        out[type(r).__name__].append(jsonutil.dumps(fields))
    return {k: sorted(v) for k, v in out.items()}
