"""cmf serve: the OpenLineage endpoint, Marquez-compatible lineage and the CMF REST API."""

from __future__ import annotations

from typing import Annotated

import typer

from cmf_core.cli.common import StoreOpt
from cmf_core.config import load_settings
from cmf_core.errors import ConfigError


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind (default: CMF_SERVE_HOST, "
                                                  "127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: CMF_SERVE_PORT, 8080).")]
    = None,
    store: StoreOpt = None,
    insecure: Annotated[bool, typer.Option(
        "--insecure", help="Allow writes without a token on a non-loopback address.")] = False,
    protect_reads: Annotated[bool, typer.Option(
        "--protect-reads", help="Require the token for reads too.")] = False,
    access_log: Annotated[bool, typer.Option(
        "--access-log/--no-access-log", help="Log every request.")] = False,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve the store over HTTP: POST /api/v1/lineage for any OpenLineage producer,
    Marquez-compatible lineage reads, the CMF REST API, and OpenAPI docs at /docs.

    Writes need 'Authorization: Bearer <CMF_TOKEN>' when CMF_TOKEN is set; off loopback
    the server refuses to start without a token unless --insecure is given.

    Example: CMF_TOKEN=s3cret cmf serve --host 0.0.0.0 --port 8080
    """
    settings = load_settings(store_url=store, serve_host=host, serve_port=port)
    try:
        import uvicorn

        from cmf_core.server.app import create_app
        from cmf_core.server.auth import check_bind
    except ImportError as e:
        raise ConfigError(f"cmf serve needs the server extra ({e.name} is missing): "
                          "pip install 'cmf-foundation[server]'") from None
    check_bind(settings.serve_host, settings.token, insecure)
    if protect_reads and not settings.token:
        raise ConfigError("--protect-reads needs a token: set CMF_TOKEN")
    from cmf_core.store import open_store

    with open_store(settings=settings) as s:
        app = create_app(s, settings, protect_reads=protect_reads)
        bind = settings.serve_host
        shown = f"[{bind}]" if ":" in bind else bind
        typer.echo(f"cmf serve: store {s.kind} (site {s.site}) on http://{shown}:"
                   f"{settings.serve_port} (OpenLineage: POST /api/v1/lineage, docs: /docs, "
                   f"writes {'need the token' if settings.token else 'are open'})", err=True)
        uvicorn.run(app, host=bind, port=settings.serve_port, log_level=log_level,
                    access_log=access_log, server_header=False)
