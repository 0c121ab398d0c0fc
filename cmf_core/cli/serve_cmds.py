"""cmf serve: the OpenLineage endpoint, Marquez-compatible lineage and the CMF REST API."""

from __future__ import annotations

import contextlib
import errno
import socket
from pathlib import Path
from typing import Annotated

import typer

from cmf_core.cli.common import StoreOpt
from cmf_core.config import Settings, load_settings
from cmf_core.errors import ConfigError, InvalidInputError, StoreError

LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")  # uvicorn's
#: the option each setting comes from, named by the error a bad value gives
OPTIONS = {"store_url": "--store", "serve_host": "--host", "serve_port": "--port",
           "serve_root_path": "--root-path"}


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
    log_level: Annotated[str, typer.Option(
        help=f"uvicorn log level: {', '.join(LOG_LEVELS)}.")] = "info",
    root_path: Annotated[str | None, typer.Option(
        help="Path prefix a reverse proxy publishes the server under, e.g. /cmf for "
             "https://portal.example.org/cmf/ (default: CMF_SERVE_ROOT_PATH).")] = None,
) -> None:
    """Serve the store over HTTP: POST /api/v1/lineage for any OpenLineage producer,
    Marquez-compatible lineage reads, the CMF REST API, and OpenAPI docs at /docs.

    Writes need 'Authorization: Bearer <CMF_TOKEN>' when CMF_TOKEN is set; off loopback
    the server refuses to start without a token unless --insecure is given. A missing SQLite
    store is created, and said on stderr: in the CMF home, or at --store / CMF_STORE_URL when
    its folder exists (else refused).

    Example: CMF_TOKEN=s3cret cmf serve --host 0.0.0.0 --port 8080
    """
    # checked first: uvicorn raised a KeyError traceback, after the store was opened or created
    if log_level.lower() not in LOG_LEVELS:
        raise InvalidInputError(f"unknown --log-level {log_level!r}; use one of "
                                f"{', '.join(LOG_LEVELS)}")
    settings = load_settings(store_url=store, serve_host=host, serve_port=port,
                             serve_root_path=root_path, named=OPTIONS)
    try:
        import uvicorn

        from cmf_core.server.app import create_app
        from cmf_core.server.auth import check_bind, is_loopback
    except ImportError as e:
        raise ConfigError(f"cmf serve needs the server extra ({e.name} is missing): "
                          "pip install 'cmf-foundation[server]'") from None
    check_bind(settings.serve_host, settings.token, insecure)
    if protect_reads and not settings.token:
        raise ConfigError("--protect-reads needs a token: set CMF_TOKEN")
    from cmf_core.store import open_store

    # bound first: a port in use was found by uvicorn after the store was opened (or created)
    # and after the line saying it served there
    sock = _listen(settings.serve_host, settings.serve_port)
    new = _new_store(settings)
    with open_store(settings=settings) as s:
        if new is not None:
            typer.echo(f"cmf serve: no CMF store was at {new.resolve()}; created a NEW, empty "
                       "one there (to serve an existing store, check --store or CMF_STORE_URL)",
                       err=True)
        bind = settings.serve_host
        extra = settings.serve_allowed_hosts
        app = create_app(s, settings, protect_reads=protect_reads, allowed_hosts=None
                         if "*" in extra or not (extra or is_loopback(bind)) else [bind, *extra])
        shown = f"[{bind}]" if ":" in bind else bind
        port = sock.getsockname()[1]  # the one the system chose for --port 0
        under = f", published under {settings.serve_root_path}/" if settings.serve_root_path \
            else ""
        typer.echo(f"cmf serve: store {s.kind} (site {s.site}) on http://{shown}:"
                   f"{port}{under} (OpenLineage: POST /api/v1/lineage, docs: /docs, "
                   f"writes {'need the token' if settings.token else 'are open'})", err=True)
        server = uvicorn.Server(uvicorn.Config(
            app, host=bind, port=port, log_level=log_level.lower(), access_log=access_log,
            server_header=False))
        with sock, contextlib.suppress(KeyboardInterrupt):  # Ctrl+C: a normal stop (as uvicorn.run)
            server.run(sockets=[sock])
        if not server.started:  # as uvicorn.run: the app failed to start
            raise typer.Exit(3)


def _listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host``:``port`` (as uvicorn binds one), or a ConfigError naming the
    address and why (in use, not an address of this machine, a privileged port)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        shown = f"[{host}]" if ":" in host else host
        hint = ("; another server holds that port: stop it, or give another --port or "
                "CMF_SERVE_PORT" if e.errno == errno.EADDRINUSE else
                "; ports below 1024 need privileges" if e.errno == errno.EACCES else "")
        raise ConfigError(f"cmf serve cannot listen on {shown}:{port}: "
                          f"{e.strerror or e}{hint}") from None
    return sock


def _new_store(settings: Settings) -> Path | None:
    """The SQLite file serving would create (None: the store exists, or is not SQLite). A new
    store at an explicit URL (--store, CMF_STORE_URL) must be in a folder that exists: a missing
    one is more likely a typo than a fresh machine, whose default home serve does create."""
    from cmf_core.store.bulk import no_store
    from cmf_core.store.sqlite import new_paths

    made = new_paths(settings.resolved_store_url)
    if not made:
        return None
    if settings.store_url and len(made) > 1:
        raise StoreError(f"{no_store(str(made[0]))}; cmf serve creates a new store only in a "
                         f"folder that exists, and {made[-1].absolute()} does not")
    return made[0]
