"""cmf reap: mark executions failed whose process was killed before it reported an end."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cmf_core.cli.common import (
    JsonOpt,
    StoreOpt,
    check_pipelines,
    console,
    fmt_time,
    print_json,
    table,
)
from cmf_core.config import load_settings
from cmf_core.lost import LostExecution, RunningCheck, find_lost, mark_lost, spooled_run_ids
from cmf_core.store import open_store


def register(app: typer.Typer) -> None:
    app.command("reap")(reap)


def reap(
    pipeline: Annotated[str | None, typer.Option(help="Only this pipeline.")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="List the lost executions; mark nothing.")] = False,
    store: StoreOpt = None,
    json: JsonOpt = False,
) -> None:
    """Mark lost executions failed: running in the store, recorded on this host, and their
    process has ended (killed outright, e.g. by the out-of-memory killer, so it never sent its
    end).

    Each is recorded as failed, ended now, with the error "process PID on host HOST ended
    without reporting an end". Executions recorded on another host, another boot or another
    pid namespace, or without process facts (runs that may wait without a process, such as
    deferrable Airflow tries and Prefect flow runs, record none), or whose process the
    orchestrator released while they wait (a deferred Airflow try) are never judged, nor are
    those with events waiting in the spool folder (`cmf spool retry` records them first).
    Running it again marks nothing new.

    Example: cmf reap --dry-run
    """
    settings = load_settings(store_url=store)
    with open_store(settings=settings, create=False) as s:
        check_pipelines(s, [pipeline] if pipeline else None)
        check = find_lost(s, pipeline=pipeline, waiting=spooled_run_ids(settings.spool_path))
        # an end spooled while the executions were judged is left for `cmf spool retry`
        later = spooled_run_ids(settings.spool_path) if check.lost else set()
        lost = [x for x in check.lost if x.execution.id not in later]
        done = lost if dry_run else mark_lost(s, lost)
    if json:
        print_json({"dry_run": dry_run, "marked": 0 if dry_run else len(done),
                    "lost": [_lost_dict(x) for x in done], "alive": check.alive,
                    "unknown": check.unknown, "waiting": check.waiting})
        return
    if done:
        table("Lost executions (not marked: --dry-run)" if dry_run else
              "Lost executions marked failed",
              ["id", "pipeline", "stage", "started (UTC)", "host", "pid"],
              [[x.execution.id, x.execution.pipeline, x.execution.stage,
                fmt_time(x.execution.started_at), x.process.host, x.process.pid] for x in done])
    console.print(_summary(check, len(done), dry_run), markup=False, highlight=False)


def _lost_dict(x: LostExecution) -> dict[str, Any]:
    ex = x.execution
    return {"id": ex.id, "pipeline": ex.pipeline, "stage": ex.stage, "site": ex.site,
            "started_at": ex.started_at, "host": x.process.host, "pid": x.process.pid,
            "error": x.error}


def _summary(check: RunningCheck, done: int, dry_run: bool) -> str:
    head = (f"Would mark {done} lost execution(s) failed." if dry_run and done else
            f"Marked {done} lost execution(s) failed." if done else "No lost executions.")
    kept = [f"{n} {what}" for n, what in (
        (check.alive, "whose process still runs"),
        (check.unknown, "not judged (recorded on another host, boot or pid namespace, "
                        "without process facts, or waiting without a process: unknown)"),
        (check.waiting, "with events waiting in the spool (`cmf spool retry` records them)"),
    ) if n]
    return head + (f" Left running: {'; '.join(kept)}." if kept else "")
