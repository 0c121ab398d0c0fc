"""``CmfHook``: the ``cmf`` connection type, a remote CMF server (or a federation peer).

A connection ``cmf://host:port`` with ``schema`` ``http`` or ``https`` (default ``https``, or
``http`` for localhost) and the bearer token as its password, e.g.
``AIRFLOW_CONN_CMF_PEER='cmf://:TOKEN@peer.example.org:8080/?scheme=https'``. A full URL in the
``url`` extra field wins over host and port.
"""

from __future__ import annotations

import json
from typing import Any

from airflow.sdk import BaseHook

from cmf_core.errors import ConfigError

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def connection_url(conn: Any) -> str:
    """``scheme://host[:port][/path]`` of a ``cmf`` connection."""
    extra = conn.extra_dejson if getattr(conn, "extra", None) else {}
    if extra.get("url"):
        return str(extra["url"]).rstrip("/")
    host = (conn.host or "").strip()
    if not host:
        raise ConfigError(
            f"connection {conn.conn_id!r} has no host; set the CMF server's host (and port), "
            "e.g. AIRFLOW_CONN_CMF_DEFAULT='cmf://:TOKEN@cmf.example.org:8080'"
        )
    if "://" in host:
        return host.rstrip("/")
    scheme = (conn.schema or extra.get("scheme") or "").strip().lower()
    if not scheme:
        scheme = "http" if host in LOCAL_HOSTS else "https"
    if scheme not in ("http", "https"):
        # Airflow reads the path of a connection URI (cmf://host/cmf) as its schema
        example = json.dumps({"conn_type": "cmf", "password": "<token>",
                              "extra": {"url": f"https://{host}/{scheme}"}})
        raise ConfigError(
            f"connection {conn.conn_id!r} scheme {scheme!r} must be http or https (Airflow takes "
            "the path of a connection URI, cmf://host/PATH, for its schema, the scheme here); "
            "for a server under a path prefix give the whole URL in the connection's url "
            f"extra, e.g. AIRFLOW_CONN_{conn.conn_id.upper()}='{example}'")
    port = f":{conn.port}" if conn.port else ""
    if ":" in host and not host.startswith("["):  # an IPv6 address: "::1" -> "[::1]"
        host = f"[{host}]"
    return f"{scheme}://{host}{port}"


class CmfHook(BaseHook):
    """Reads a ``cmf`` connection: :meth:`get_peer` gives ``(url, token)``."""

    conn_name_attr = "cmf_conn_id"
    default_conn_name = "cmf_default"
    conn_type = "cmf"
    hook_name = "CMF server"

    def __init__(self, cmf_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cmf_conn_id = cmf_conn_id

    def get_conn(self) -> tuple[str, str | None]:
        return self.get_peer()

    def get_peer(self) -> tuple[str, str | None]:
        """``(server_url, token)`` of the connection."""
        conn = self.get_connection(self.cmf_conn_id)
        return connection_url(conn), (conn.password or None)
