"""``cmf prefect``: the Prefect command group of the ``cmf`` CLI.

Registered through the ``cmf.commands`` entry point group::

    [project.entry-points."cmf.commands"]
    prefect = "cmf_prefect.cli:register"
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import Annotated

import typer

app = typer.Typer(name="prefect", help="Record Prefect flow and task runs.",
                  no_args_is_help=True)


@app.command("watch")
def watch(
    api: Annotated[str | None, typer.Option(
        "--api", help="Prefect API URL (default: PREFECT_API_URL), e.g. "
        "http://127.0.0.1:4200/api.")] = None,
    store: Annotated[str | None, typer.Option(
        "--store", help="Store URL (default: CMF_STORE_URL or the embedded SQLite store); it "
        "also keeps the watcher's cursor.")] = None,
    name: Annotated[str | None, typer.Option(
        "--name", help="Cursor name, for several watchers of one server (default: the URL).")
    ] = None,
    lookback: Annotated[float, typer.Option(
        "--lookback", help="Seconds before the latest event seen to look again for events "
        "that reached the server late.")] = 600.0,
    rescan: Annotated[float, typer.Option(
        "--rescan", help="Seconds between catch-up scans while following the stream.")] = 60.0,
    once: Annotated[bool, typer.Option(
        "--once", help="Catch up with the stored events, then exit (for cron).")] = False,
) -> None:
    """Record every flow run of a Prefect server from its event stream; resumes after a restart.

    Example: cmf prefect watch --api http://127.0.0.1:4200/api
    """
    from cmf_core.config import load_settings
    from cmf_core.errors import ConfigError

    try:
        import prefect  # noqa: F401  (the watcher reads the server with Prefect's own client)
    except ImportError as e:
        # without it the watcher retried the missing module forever (--once: a traceback)
        raise ConfigError(f"cmf prefect watch needs the prefect extra ({e.name} is missing): "
                          "pip install 'cmf-foundation[prefect]'") from None
    from cmf_prefect.watcher import Watcher

    api_url = api or os.environ.get("PREFECT_API_URL")
    if not api_url:
        raise ConfigError("no Prefect API URL: pass --api http://host:4200/api or set "
                          "PREFECT_API_URL")
    watcher = Watcher(api_url, settings=load_settings(store_url=store), name=name,
                      api_key=os.environ.get("PREFECT_API_KEY"), lookback_s=lookback,
                      rescan_s=rescan)
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        # the first Ctrl-C stops between requests, the cursor saved; a request to a server that
        # accepted the connection and does not answer waits out the Prefect client's timeout
        # and retries (minutes), so a second Ctrl-C stops at once (exit code 130)
        if signum == signal.SIGINT and stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        if signum == signal.SIGINT:
            with contextlib.suppress(OSError):
                os.write(2, b"Stopping after the current request (Ctrl-C again to stop now).\n")

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, on_signal)
    if not once:
        typer.echo(f"Watching {watcher.api_url} (cursor {watcher.name!r}); Ctrl-C to stop.")
    stats = watcher.run(stop, once=once)
    typer.echo(f"{stats.handled} Prefect events handled, {stats.recorded} OpenLineage events "
               f"recorded, {stats.duplicates} already recorded.")


def register(root: typer.Typer) -> None:
    """Add ``cmf prefect`` to the ``cmf`` app (the ``cmf.commands`` entry point)."""
    root.add_typer(app, name="prefect")
