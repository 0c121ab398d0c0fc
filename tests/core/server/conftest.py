"""A real ``cmf serve`` app under uvicorn on a free loopback port, started per test."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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
