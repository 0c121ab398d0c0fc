"""The fast way in for OpenLineage events: ``POST /api/v1/lineage`` and ``/api/v1/lineage/batch``
answered by a plain ASGI handler in front of FastAPI.

Ingest is the server's hot path (one request per event from the OpenLineage HTTP transports),
and FastAPI's per-request machinery (dependency solving, ``Request`` and ``JSONResponse``
objects, the exception middleware) cost about as much CPU as validating the event. The ingress
does the same work as the FastAPI routes in :mod:`cmf_core.server.routers.lineage`, which
still describe these endpoints in OpenAPI: it checks the token (:func:`~cmf_core.server.auth.
check_token`), reads and records the body with the same
:func:`~cmf_core.server.routers.lineage.post_events`, and answers with the same JSON, status and
headers, errors included. Every other request goes on to FastAPI untouched, and an unexpected
exception still reaches Starlette's 500 handler.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

from cmf_core.errors import CmfError
from cmf_core.server.auth import check_token, expected_token
from cmf_core.server.errors import error_body, error_headers, note_server_error, status_for
from cmf_core.server.routers.lineage import post_events

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ROUTES = {"/api/v1/lineage": False, "/api/v1/lineage/batch": True}
"""Paths the ingress answers (for POST), and whether each takes only batches."""

_JSON = (b"content-type", b"application/json")


class _Disconnected(Exception):
    """The client went away before sending its whole body: nothing is recorded or answered."""


async def _chunks(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        body = message.get("body", b"")
        if body:
            yield body
        if not message.get("more_body", False):
            return


def _headers(scope: Scope) -> dict[str, str]:
    """Request headers by lower-case name (the first of repeated ones, as Starlette reads)."""
    out: dict[str, str] = {}
    for name, value in scope["headers"]:
        out.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    return out


class LineageIngress:
    """ASGI middleware answering the OpenLineage POST routes; ``state`` is the ``app.state``
    (``settings`` for the token, ``writer``, ``max_body_bytes``)."""

    def __init__(self, app: ASGIApp, state: Any) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root):]
        # "api/v1/lineage/" is a common endpoint setting of OpenLineage clients: the same route
        batch_route = ROUTES.get(path[:-1] if path.endswith("/") else path)
        if batch_route is None:
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        extra: dict[str, str] = {}
        try:
            expected = expected_token(self.state)
            if expected is not None:
                check_token(expected, headers.get("authorization"), "POST", scope["path"])
            status, body = await post_events(self.state, headers, _chunks(receive),
                                             batch_route=batch_route)
        except _Disconnected:
            return
        except CmfError as e:
            note_server_error(e)
            status = status_for(e)
            body = error_body(status, type(e).__name__, str(e))
            extra = error_headers(e)
        raw = json.dumps(body, ensure_ascii=False, allow_nan=False,
                         separators=(",", ":")).encode()
        await send({"type": "http.response.start", "status": status, "headers": [
            _JSON, (b"content-length", str(len(raw)).encode()),
            *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in extra.items())]})
        await send({"type": "http.response.body", "body": raw})
