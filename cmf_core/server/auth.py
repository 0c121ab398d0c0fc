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
from typing import Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from cmf_core.errors import AuthError

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

    raise ConfigError(
        f"refusing to serve on {host} without a token: anyone who can reach it could write "
        "to the store. Set CMF_TOKEN (clients then send 'Authorization: Bearer <token>'), bind "
        "127.0.0.1, or pass --insecure to accept unauthenticated writes")
