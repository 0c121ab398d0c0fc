"""A real HTTP reverse proxy on loopback, doing what nginx does in front of ``cmf serve``.

nginx is not part of the test environment, so this stands in for::

    location /cmf/ {
        proxy_pass http://127.0.0.1:8080/;          # strip=True (without the URI: strip=False)
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-Proto $scheme;  # https: the proxy terminated TLS
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Prefix /cmf;
        client_max_body_size 1m;                      # max_body
    }
    location / { ... another application ... }

It is an ASGI app (uvicorn on a free loopback port, in a thread) that forwards with httpx,
streaming bodies both ways: requests outside the prefix get the "other application"'s 404, the
prefix alone is redirected to ``prefix/``, a body over ``max_body`` is 413 with an HTML page,
as nginx answers. (The same behaviour was checked against nginx 1.22 by hand.) It records the
path and headers of every request it forwarded in ``forwarded``, the paths it refused as too
large in ``too_large``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.support.asgi import served

HOP = {b"connection", b"keep-alive", b"transfer-encoding", b"te", b"trailer", b"upgrade",
       b"proxy-authorization", b"proxy-connection", b"host", b"content-length"}


@dataclass
class ReverseProxy:
    upstream: str  # http://127.0.0.1:PORT
    prefix: str = "/cmf"
    public_host: str = "portal.example.org"  # the Host the proxy passes on ($host)
    strip: bool = True
    max_body: int | None = None
    forwarded: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    too_large: list[str] = field(default_factory=list)  # paths refused with 413

    async def _reply(self, send: Any, status: int, body: bytes, headers: list[Any]) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-length", str(len(body)).encode()), *headers]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        raw = scope.get("raw_path") or scope["path"].encode()
        query = scope.get("query_string", b"")
        prefix = self.prefix.encode()
        if raw == prefix:
            await self._reply(send, 301, b"", [(b"location", prefix + b"/")])
            return
        if not raw.startswith(prefix + b"/"):
            await self._reply(send, 404, b"<html>another application</html>",
                              [(b"content-type", b"text/html")])
            return
        target = raw[len(prefix):] if self.strip else raw

        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if self.max_body is not None and size > self.max_body:
                self.too_large.append(target.decode())
                await self._reply(send, 413, b"<html><head><title>413 Request Entity Too Large"
                                  b"</title></head></html>", [(b"content-type", b"text/html")])
                return
            if not message.get("more_body"):
                break

        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in HOP]
        client = scope.get("client") or ("127.0.0.1", 0)
        headers += [(b"host", self.public_host.encode()), (b"x-forwarded-proto", b"https"),
                    (b"x-forwarded-for", client[0].encode()),
                    (b"x-forwarded-host", self.public_host.encode()),
                    (b"x-forwarded-prefix", prefix)]
        url = self.upstream.encode() + target + (b"?" + query if query else b"")
        self.forwarded.append((target.decode(), {k.decode(): v.decode() for k, v in headers}))
        async with httpx.AsyncClient(timeout=60) as http:
            request = http.build_request(scope["method"], url.decode(), headers=headers,
                                         content=b"".join(chunks))
            response = await http.send(request, stream=True)
            try:
                await send({"type": "http.response.start", "status": response.status_code,
                            "headers": [(k, v) for k, v in response.headers.raw
                                        if k.lower() not in HOP - {b"content-length"}]})
                async for part in response.aiter_raw():
                    await send({"type": "http.response.body", "body": part, "more_body": True})
                await send({"type": "http.response.body", "body": b""})
            finally:
                await response.aclose()


@contextlib.contextmanager
def reverse_proxy(upstream: str, **kwargs: Any) -> Iterator[tuple[str, ReverseProxy]]:
    """Run a :class:`ReverseProxy` to ``upstream`` on a free loopback port until the block
    ends; yields its base URL (``http://127.0.0.1:PORT``, prefix not included) and the proxy."""
    proxy = ReverseProxy(upstream.rstrip("/"), **kwargs)
    with served(proxy, "reverse-proxy") as url:
        yield url, proxy
