"""Errors of the HTTP API: each :class:`~cmf_core.errors.CmfError` subclass maps to one status.

Every error response has the same body, close to Marquez's::

    {"code": 400, "error": "InvalidEventError", "message": "invalid OpenLineage RunEvent: ..."}

The most specific class in :data:`STATUS` wins (an ``InvalidEventError`` is an
``InvalidInputError``, both give 400). Anything that is not a ``CmfError`` is a bug: FastAPI
answers 500 and logs the traceback.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

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
from cmf_core.guard import Repeats


class PayloadTooLargeError(InvalidInputError):
    """A request body is larger than the server accepts."""


class UnsupportedMediaTypeError(InvalidInputError):
    """A request body has a content type or encoding the endpoint does not read."""


STATUS: dict[type[CmfError], int] = {
    InvalidEventError: 400,
    InvalidInputError: 400,
    PayloadTooLargeError: 413,
    UnsupportedMediaTypeError: 415,
    AuthError: 401,
    NotFoundError: 404,
    MergeConflictError: 409,
    StoreError: 503,
    ConfigError: 500,
    CmfError: 500,
}


def status_for(exc: CmfError) -> int:
    """The HTTP status of ``exc``: that of the nearest class in its MRO listed in STATUS."""
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def error_body(status: int, error: str, message: str) -> dict[str, Any]:
    return {"code": status, "error": error, "message": message}


def error_headers(exc: CmfError) -> dict[str, str]:
    """Headers an error response for ``exc`` carries (how to authenticate, when to retry)."""
    if isinstance(exc, AuthError):
        return {"WWW-Authenticate": 'Bearer realm="cmf"'}
    if status_for(exc) == 503:
        return {"Retry-After": "1"}
    return {}


log = logging.getLogger("cmf")

#: how long the same server-side error goes unrepeated in the server's log
SAY_AGAIN_AFTER_S = 600.0
_said = Repeats(SAY_AGAIN_AFTER_S)


def note_server_error(exc: CmfError) -> None:
    """Log an error the server answers with a 5xx (the store is away, locked, deleted under
    it, or the server is busy) on the ``cmf`` logger, so the operator reading the server's log
    learns it, not only the clients: at WARNING when it is new (or was last said
    :data:`SAY_AGAIN_AFTER_S` ago), at DEBUG while it repeats, not once per request."""
    if status_for(exc) < 500:
        return
    text = f"{type(exc).__name__}: {exc}"
    if _said.seen("5xx", text):
        log.debug("cmf serve: answered %d again (%s)", status_for(exc), text)
    else:
        log.warning("cmf serve: answering %d to requests (%s); repeats of this error are logged "
                    "at DEBUG", status_for(exc), text)


def error_response(exc: CmfError) -> JSONResponse:
    note_server_error(exc)
    status = status_for(exc)
    return JSONResponse(error_body(status, type(exc).__name__, str(exc)), status_code=status,
                        headers=error_headers(exc) or None)


def _where(loc: tuple[Any, ...]) -> str:
    if not loc:
        return "request"
    kind, *rest = loc
    name = ".".join(str(p) for p in rest)
    return f"{kind} parameter {name!r}" if kind in ("query", "path", "header") and name else \
        ".".join(str(p) for p in loc)


async def _cmf_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CmfError)
    return error_response(exc)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    parts = []
    for err in exc.errors():
        given = err.get("input")
        got = f" (got {given!r})" if given is not None and not isinstance(given, dict) else ""
        parts.append(f"{_where(tuple(err.get('loc', ())))}: {err.get('msg', 'invalid')}{got}")
    message = "; ".join(parts) or "invalid request"
    return JSONResponse(error_body(400, "InvalidInputError", message), status_code=400)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return JSONResponse(error_body(exc.status_code, "HTTPError", str(exc.detail)),
                        status_code=exc.status_code, headers=getattr(exc, "headers", None))


async def _pool_busy(_request: Request, exc: Exception) -> JSONResponse:
    """SQLAlchemy's pool had no connection free within its wait (more reads at once than the
    store's pool holds): the server is busy, not broken; 503 with Retry-After, as for a store
    that is away, instead of a bare 500."""
    busy = StoreError(f"the store is busy: every connection of its pool is in use by other "
                      f"requests ({str(exc).split(',', 1)[0]}); retry shortly")
    return error_response(busy)


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    import sqlalchemy as sa

    app.add_exception_handler(CmfError, _cmf_error)
    app.add_exception_handler(sa.exc.TimeoutError, _pool_busy)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
