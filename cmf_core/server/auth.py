"""Bearer-token access for the HTTP API, as FastAPI dependencies other routers import.

* :func:`require_write`: when the server has a token (``CMF_TOKEN``), a request must send
  ``Authorization: Bearer <token>``; without a configured token writes are open (``cmf serve``
  allows that only on a loopback address, or with ``--insecure``).
* :func:`require_read`: reads are open unless the app was created with ``protect_reads=True``
  (``cmf serve --protect-reads``); a request that does send a token must send the right one,
  so a misconfigured client is told at once.

Use them as ``dependencies=[Depends(require_write)]`` on a route or router.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from cmf_core.errors import AuthError, InvalidInputError

bearer = HTTPBearer(auto_error=False, description="The server's token (CMF_TOKEN).")


def _expected(request: Request) -> str | None:
    return expected_token(request.app.state)


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header; None for anything else
    (read as FastAPI's ``HTTPBearer`` reads it)."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def check_token(expected: str, header: str | None, method: str, path: str) -> None:
    """Raise :class:`AuthError` unless ``header`` is ``Bearer <expected>`` (constant time)."""
    given = bearer_token(header)
    if given is None:
        if header:
            scheme, sep, _ = header.strip().partition(" ")
            # no scheme (the bare token) or a bare scheme: name neither, never echo a token
            got = (f"a {scheme!r} credential" if sep and scheme.lower() != "bearer"
                   else "'Bearer' without a token" if scheme.lower() == "bearer"
                   else "a value without a scheme (send 'Bearer ' before the token)")
            raise AuthError(f"the Authorization header must be 'Bearer <token>'; got {got}")
        raise AuthError(f"{method} {path} needs the server's token: send "
                        "'Authorization: Bearer <token>' (the value of CMF_TOKEN on the server)")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise AuthError("the bearer token does not match this server's token (CMF_TOKEN); "
                        "check the client's token setting")


def _check(expected: str, request: Request) -> None:
    check_token(expected, request.headers.get("authorization"), request.method,
                request.url.path)


def expected_token(state: Any) -> str | None:
    """The token writes need on an app with this ``app.state`` (None: writes are open)."""
    return getattr(getattr(state, "settings", None), "token", None) or None


async def require_write(request: Request,
                        credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
                        ) -> None:
    """Dependency: a write needs the server's token when one is configured."""
    expected = _expected(request)
    if expected is not None:
        _check(expected, request)


async def require_read(request: Request,
                       credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
                       ) -> None:
    """Dependency: reads are open unless ``protect_reads``; a token sent must be right."""
    expected = _expected(request)
    if expected is None:
        return
    if credentials is not None or getattr(request.app.state, "protect_reads", False):
        _check(expected, request)


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    import ipaddress

    if host.strip().lower() in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to a public address


def check_bind(host: str, token: str | None, insecure: bool = False) -> None:
    """Refuse to serve writes without a token anywhere but loopback, unless ``insecure``."""
    if token or insecure or is_loopback(host):
        return
    from cmf_core.errors import ConfigError

    where = host.strip() or "every interface (an empty host)"
    raise ConfigError(
        f"refusing to serve on {where} without a token: anyone who can reach it could write "
        "to the store. Set CMF_TOKEN (clients then send 'Authorization: Bearer <token>'), bind "
        "127.0.0.1, or pass --insecure to accept unauthenticated writes")


def host_name(header: str) -> str:
    """The host of a ``Host`` header, lower case, without its port (``[::1]:8080``: ``::1``)."""
    h = header.strip().lower()
    if h.startswith("["):
        return h[1:h.index("]")] if "]" in h else h
    return h.rsplit(":", 1)[0] if h.count(":") == 1 else h


class HostCheck:
    """ASGI middleware: a request whose ``Host`` names neither a loopback address nor one of
    ``allowed`` gets 400, before any route runs. A server on loopback without a token is
    otherwise open to any web page whose name its owner's DNS points at 127.0.0.1 (DNS
    rebinding): the browser sends that page's name as the Host."""

    def __init__(self, app: Any, allowed: list[str]) -> None:
        self.app = app
        self.allowed = {host_name(h) for h in allowed}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            raw = next((v for k, v in scope.get("headers", ()) if k == b"host"), None)
            name = host_name(raw.decode("latin-1")) if raw is not None else ""
            if raw is not None and name not in self.allowed and not is_loopback(name):
                from cmf_core.server.errors import error_response

                # the API's error shape (the web UI and cmf sync show its message)
                shown = json.dumps([name])
                await error_response(InvalidInputError(
                    f"this server does not answer to the host name {name!r}; it answers to "
                    "loopback names and serve_allowed_hosts. Behind a reverse proxy that passes "
                    f"this name, start it with CMF_SERVE_ALLOWED_HOSTS='{shown}' (or "
                    f"serve_allowed_hosts = {shown} in cmf.toml)"))(scope, receive, send)
                return
        await self.app(scope, receive, send)
