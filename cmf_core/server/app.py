"""The CMF server application: ``create_app(store, settings)`` -> a FastAPI app.

Routes (OpenAPI at ``/openapi.json``, interactive docs at ``/docs`` and ``/redoc``, served
without a CDN):

* OpenLineage, Marquez-compatible (:mod:`~cmf_core.server.routers.lineage`):
  ``POST /api/v1/lineage`` (one event or an array), ``POST /api/v1/lineage/batch``,
  ``GET /api/v1/lineage?nodeId=...&depth=N``, ``GET /api/v1/events/lineage``.
* CMF REST (paged with ``limit``/``offset``): ``/api/v1/pipelines``, ``/api/v1/executions``,
  ``/api/v1/artifacts`` (with ``/lineage`` and ``/provenance``), ``/api/v1/metrics``.
* ``GET /api/v1/health``; the optional routers (:data:`OPTIONAL_ROUTERS`: federation, carbon,
  ui_support) when importable; the web UI at ``/`` when ``cmf_core/server/static/index.html``
  exists.

The OpenLineage POST routes are answered by :class:`~cmf_core.server.ingress.LineageIngress`,
a plain ASGI handler in front of FastAPI that does what those routes do, faster.

``app.state`` holds ``store``, ``settings``, ``writer`` (the group-commit
:class:`~cmf_core.server.writer.IngestWriter`), ``protect_reads`` and ``max_body_bytes``;
routers read them through :mod:`cmf_core.server.deps` and guard routes with
:func:`~cmf_core.server.auth.require_write` / :func:`~cmf_core.server.auth.require_read`.
The app does not own the store: whoever opened it closes it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import importlib
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse

from cmf_core import __version__
from cmf_core.config import Settings, load_settings
from cmf_core.server import errors, schemas
from cmf_core.server.auth import HostCheck, require_read
from cmf_core.server.body import DEFAULT_MAX_BODY_BYTES
from cmf_core.server.ingress import LineageIngress
from cmf_core.server.routers import artifacts, executions, lineage, metrics, pipelines
from cmf_core.server.writer import DEFAULT_MAX_BATCH, IngestWriter
from cmf_core.store import Store

STATIC_DIR = Path(__file__).with_name("static")
OPTIONAL_ROUTERS = ("federation", "carbon", "ui_support")
"""Routers in :mod:`cmf_core.server.routers` included when importable (each has ``router``)."""
DRAIN_TIMEOUT_S = 30.0

_DESCRIPTION = """\
Lineage, energy and carbon of ML pipelines, recorded in a CMF store.

* **OpenLineage**: any OpenLineage producer can post events to `POST /api/v1/lineage` (spec
  2-0-2; a JSON array is a batch). Marquez-compatible reads: `GET /api/v1/lineage`,
  `GET /api/v1/events/lineage`.
* **CMF**: pipelines, executions, artifacts (and their lineage) and metrics, paged with
  `limit` and `offset`.

Writes need `Authorization: Bearer <token>` when the server has a token (`CMF_TOKEN`).
"""


#: how long a read waits for the embedded store's write lock (see ``SqlStore.read_wait_s``)
SERVE_READ_WAIT_S = 5.0


def create_app(store: Store, settings: Settings | None = None, *, protect_reads: bool = False,
               max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
               max_batch: int = DEFAULT_MAX_BATCH,
               allowed_hosts: list[str] | None = None, root_path: str | None = None
               ) -> FastAPI:
    """The FastAPI app serving ``store``.

    ``settings.token`` (``CMF_TOKEN``) protects writes (and reads with ``protect_reads``);
    records are created with the store's site. ``max_body_bytes`` caps a request body,
    ``max_batch`` the events written in one transaction. With ``allowed_hosts`` a request's
    ``Host`` must be a loopback name or one of them (:class:`~cmf_core.server.auth.HostCheck`).
    ``root_path`` (default: ``settings.serve_root_path``) is the path prefix a reverse proxy
    publishes the server under (:class:`RootPath`).
    """
    settings = settings or load_settings()
    root_path = settings.serve_root_path if root_path is None else root_path.rstrip("/")
    writer = IngestWriter(store, store.site, max_batch=max_batch)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        writer.start()
        try:
            yield
        finally:
            await asyncio.to_thread(writer.close, DRAIN_TIMEOUT_S)

    app = _fastapi(title="cmf-foundation", version=__version__, description=_DESCRIPTION,
                   lifespan=lifespan)
    if getattr(store, "journaled", False) and store.read_wait_s is None:  # type: ignore[attr-defined]
        # a read applies the journal first, under the write lock: while another process
        # holds that lock, answer 503 (Retry-After) soon rather than hold a worker for 60 s
        store.read_wait_s = SERVE_READ_WAIT_S  # type: ignore[attr-defined]
    app.state.store = store
    app.state.settings = settings
    app.state.writer = writer
    app.state.protect_reads = protect_reads
    app.state.max_body_bytes = max_body_bytes
    errors.install(app)
    app.add_middleware(HeadAsGet)
    app.add_middleware(LineageIngress, state=app.state)
    if root_path:
        app.add_middleware(RootPath, root_path=root_path)
    if allowed_hosts is not None:
        app.add_middleware(HostCheck, allowed=allowed_hosts)
    # added last: runs first, so every answer (a HostCheck refusal too) has the headers
    app.add_middleware(SecurityHeaders, offline_docs=OFFLINE_DOCS_ROUTE in
                       {getattr(r, "name", None) for r in app.routes})

    for module in (lineage, pipelines, executions, artifacts, metrics):
        app.include_router(module.router)
    for name in OPTIONAL_ROUTERS:  # built by other parts; absent ones are skipped
        try:
            module = importlib.import_module(f"cmf_core.server.routers.{name}")
        except ImportError:
            continue
        app.include_router(module.router)

    @app.get("/api/v1/health", tags=["server"], dependencies=[Depends(require_read)],
             response_model=None,
             responses={**schemas.ok(schemas.Health), 401: schemas.ERRORS[401],
                        503: schemas.ERRORS[503], "default": schemas.ERRORS["default"]})
    def health() -> dict[str, Any]:
        """Liveness, the store behind the server, and the writer's counters."""
        return {
            "status": "ok", "version": __version__, "site": store.site, "store": store.kind,
            "auth": settings.token is not None, "protect_reads": protect_reads,
            "writer": {"queued": writer.queued, "batches": writer.batches,
                       "events": writer.events, "largest_batch": writer.largest_batch},
        }

    if (STATIC_DIR / "index.html").is_file():
        from fastapi.staticfiles import StaticFiles

        app.mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="ui")
    else:
        @app.get("/", include_in_schema=False)
        def root() -> JSONResponse:
            return JSONResponse({"name": "cmf-foundation", "version": __version__,
                                 "docs": "/docs", "openapi": "/openapi.json"})

    return app


OFFLINE_DOCS_ROUTE = "static-offline-docs"
"""The name fastapi-offline gives the mount of the docs pages' scripts (``/docs-assets``)."""


def _fastapi(**kwargs: Any) -> FastAPI:
    """A FastAPI app whose docs pages (``/docs``, ``/redoc``) load Swagger UI and ReDoc from
    the server itself (fastapi-offline ships them), not from a CDN: they work on a cluster or
    a laptop without internet. Without fastapi-offline, FastAPI's CDN pages."""
    try:
        from fastapi_offline import FastAPIOffline
    except ImportError:
        return FastAPI(**kwargs)
    return FastAPIOffline(static_url="/docs-assets", **kwargs)


class HeadAsGet:
    """ASGI middleware: a HEAD request is answered as its GET, without the body (RFC 9110
    9.3.2), for every route at once. FastAPI routes only the methods a route names, so HEAD
    fell through to the web UI's 404 for every API route: monitors, load balancers and link
    checkers probe with it. The OpenAPI document lists the GET operations only."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_headers_only(message: Any) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app(dict(scope, method="GET"), receive, send_headers_only)


class RootPath:
    """ASGI middleware for a server published under a path prefix by a reverse proxy
    (``https://portal.example.org/cmf/`` -> ``http://127.0.0.1:8080/``).

    Every request gets ``root_path`` in its scope and a ``path`` that starts with it, as ASGI
    wants, whether the proxy stripped the prefix (nginx ``proxy_pass http://127.0.0.1:8080/;``)
    or passed it on (Traefik without StripPrefix): routing takes the prefix off again, and
    what the server writes for the browser (the docs page's ``openapi.json``, the OpenAPI
    ``servers``) carries it. The prefix alone (``/cmf``) is redirected to ``/cmf/``, where the
    web UI's relative links resolve."""

    def __init__(self, app: Any, root_path: str) -> None:
        self.app = app
        self.root = root_path.rstrip("/")

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        raw: bytes = scope.get("raw_path") or path.encode()
        root_raw = self.root.encode()
        if path == self.root and scope["type"] == "http":  # the prefix without its slash
            query = scope.get("query_string", b"")
            location = self.root + "/" + ("?" + query.decode("latin-1") if query else "")
            from fastapi.responses import RedirectResponse

            await RedirectResponse(location, status_code=307)(scope, receive, send)
            return
        scope = dict(scope, root_path=self.root)
        if not path.startswith(self.root + "/"):  # the proxy stripped the prefix
            scope["path"] = self.root + path
            scope["raw_path"] = root_raw + raw
        await self.app(scope, receive, send)


class SecurityHeaders:
    """ASGI middleware: the response headers that keep a browser from turning recorded text
    (names, URIs, parameters: anyone who can write to the store chose them) against the web
    UI, or the UI against its user.

    * ``Content-Security-Policy`` on every page: scripts, styles and connections only from this
      server (no inline script, no ``eval``, no inline ``style`` attribute: the UI sets styles
      through the CSSOM), images from it or ``data:``, no plugins, ``<base>`` and forms only to
      it, framed only by a page of the same origin (a portal behind the same proxy). The docs
      pages (``/docs``, ``/redoc``) also get the SHA-256 of their inline script and inline
      styles (Swagger UI and ReDoc write them), and ReDoc its search worker (a ``blob:``) and
      its footer logo from cdn.redoc.ly;
      without fastapi-offline (the docs from a CDN) they get no policy. Other answers (JSON)
      get ``default-src 'none'``.
    * ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: SAMEORIGIN`` (what
      ``frame-ancestors 'self'`` says, for older browsers), ``Referrer-Policy: no-referrer``
      (a page's address holds pipeline names; a link to an orchestrator need not get it).
    """

    PAGE = ("default-src 'self'; script-src 'self'{scripts}; style-src 'self'{styles}; "
            "img-src 'self' data:{images}; object-src 'none'; base-uri 'self'; "
            "form-action 'self'; frame-ancestors 'self'{more}")
    OTHER = "default-src 'none'; frame-ancestors 'self'"
    DOCS = ("/docs", "/redoc", "/docs/oauth2-redirect")
    _INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.S | re.I)

    def __init__(self, app: Any, offline_docs: bool = True) -> None:
        self.app = app
        self.offline_docs = offline_docs
        # the same on every answer but the docs pages': made once, not per response
        self._fixed = [(b"x-content-type-options", b"nosniff"),
                       (b"x-frame-options", b"SAMEORIGIN"), (b"referrer-policy", b"no-referrer")]
        self._other = (b"content-security-policy", self.OTHER.encode())
        self._page = (b"content-security-policy",
                      self.PAGE.format(scripts="", styles="", images="", more="").encode())

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        docs = scope["path"].endswith(self.DOCS)
        start: dict[str, Any] | None = None
        body: list[bytes] = []

        async def add_headers(message: Any) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() not in _SECURITY_HEADERS]
                headers += self._fixed
                html = any(k.lower() == b"content-type" and v.startswith(b"text/html")
                           for k, v in headers)
                message = {**message, "headers": headers}
                if html and docs:  # its inline script's hash is known once its body is
                    start = message
                    return
                if not html:
                    headers.append(self._other)
                elif not docs:
                    headers.append(self._page)
            elif start is not None:
                body.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                page = b"".join(body)
                if self.offline_docs:
                    scripts = "".join(
                        f" 'sha256-{base64.b64encode(hashlib.sha256(m).digest()).decode()}'"
                        for m in self._INLINE_SCRIPT.findall(page))
                    redoc = scope["path"].endswith("/redoc")
                    policy = self.PAGE.format(
                        scripts=scripts, styles=" 'unsafe-inline'",
                        images=" https://cdn.redoc.ly" if redoc else "",
                        more="; worker-src 'self' blob:" if redoc else "")
                    start["headers"].append((b"content-security-policy", policy.encode()))
                await send(start)
                message = {**message, "body": page, "more_body": False}
            await send(message)

        await self.app(scope, receive, add_headers)


_SECURITY_HEADERS = {b"content-security-policy", b"x-content-type-options", b"x-frame-options",
                     b"referrer-policy"}
