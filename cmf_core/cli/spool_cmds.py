"""cmf spool: events that could not be recorded when they happened, waiting for retry."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cmf_core.cli.common import COUNT, JsonOpt, StoreOpt, print_json
from cmf_core.config import load_settings
from cmf_core.errors import InvalidInputError
from cmf_core.model._display import utc

if TYPE_CHECKING:
    from cmf_core.openlineage.emit import Emitter

spool_app = typer.Typer(help="Events waiting in the spool folder for a retry.",
                        no_args_is_help=True)


def _emitter(store: str | None) -> Emitter:
    from cmf_core.openlineage.emit import Emitter  # the OpenLineage client: slow to import

    return Emitter(load_settings(store_url=store))


def register(app: typer.Typer) -> None:
    app.add_typer(spool_app, name="spool")


@spool_app.command("status")
def status(store: StoreOpt = None, json_out: JsonOpt = False) -> None:
    """Show how many events wait in the spool (and how many were rejected as invalid), for the
    current store or server and for each other target whose events share the spool folder.

    A SQLite store is named by its absolute path. Events an older cmf spooled for a relative
    path (CMF_HOME=.cmf, sqlite:///cmf.db) count as the current store's when that path, taken
    from the current folder, is its file; other such targets are listed with the command that
    records their events into the current store (cmf spool retry --from KEY).

    --json gives target, spool_dir, waiting, rejected, oldest_spooled_at and backoff_until
    (Unix seconds, or null), and targets: every target with spool files, each with target,
    key (what --from takes; "" for files that name no target), waiting and rejected.
    """
    emitter = _emitter(store)
    waiting = emitter.spooled_files()
    rejected = emitter.rejected_files()
    if json_out:
        print_json({"target": emitter.target, "spool_dir": str(emitter.spool_dir),
                    "waiting": len(waiting), "rejected": len(rejected),
                    "oldest_spooled_at": _spooled_at(waiting[0]) if waiting else None,
                    "backoff_until": emitter.backoff_until(),
                    "targets": [{"target": t, "key": k, "waiting": w, "rejected": r}
                                for t, k, w, r in emitter.spool_counts()]})
        return
    typer.echo(f"{len(waiting)} event(s) waiting, {len(rejected)} rejected, for {emitter.target}, "
               f"in {emitter.spool_dir}")
    for target, key, n_waiting, n_rejected in emitter.spool_counts():
        typer.echo(f"  {target}: {n_waiting} waiting, {n_rejected} rejected")
        if n_waiting and key and _relative(target):
            typer.echo(f"    (a path relative to the folder of the process that spooled them; "
                       f"if they belong to {emitter.target}: cmf spool retry --from {key})")
    until = emitter.backoff_until()
    if until is not None:
        sink = "server" if emitter.sink.kind == "http" else emitter.sink.kind
        typer.echo(f"The {sink} overran the hook timeout moments ago: until {utc(until)} "
                   "every process with this spool folder spools its events for it without "
                   "trying it.")
    if waiting:
        typer.echo(f"The oldest waits since {utc(_spooled_at(waiting[0]))}; `cmf spool retry` "
                   "records them now, else the next cmf task, `Cmf` or emitter that starts "
                   f"while {emitter.target} works.")
    if rejected:
        typer.echo(f"Rejected events are not retried; why each was refused is in "
                   f"{emitter.spool_dir / 'rejected'}/<name>.reason.")


def _relative(target: str) -> bool:
    """Whether ``target`` is a SQLite store URL with a relative path (spelled so by an older
    cmf: which file it means depends on the folder of the process that spooled for it)."""
    if not target.startswith("sqlite"):
        return False
    import sqlalchemy as sa

    try:
        db = sa.engine.make_url(target).database
    except (sa.exc.ArgumentError, ValueError):
        return False
    return bool(db) and db != ":memory:" and not db.startswith(("/", "~", "file:"))


def _spooled_at(path: Path) -> float:
    """When spool file ``path`` (``<time ns>-<digest>...json``) was written: its name, else its
    modification time."""
    try:
        return int(path.name.split("-", 1)[0]) / 1e9
    except ValueError:
        return path.stat().st_mtime


@spool_app.command("retry")
def retry(
    limit: Annotated[int | None, typer.Option(help="At most this many events.",
                                                      **COUNT)] = None,
    store: StoreOpt = None,
    from_target: Annotated[str | None, typer.Option(
        "--from", help="Replay the events spooled for this other store or server (its URL or "
                       "key, as `cmf spool status` lists it) into the current one: a store that "
                       "moved.")] = None,
) -> None:
    """Record spooled events now (oldest first); exit code 1 if some are still waiting."""
    emitter = _emitter(store)
    try:
        if from_target is not None and not emitter.knows_target(from_target):
            # a mistyped URL replayed nothing and said "recorded 0 event(s)", exit code 0
            known = sorted(emitter.spool_targets().values())
            raise InvalidInputError(
                f"no events were ever spooled in {emitter.spool_dir} for {from_target!r}; "
                + (f"give one of: {', '.join(known)} (cmf spool status lists them)" if known
                   else "that spool folder has none for any target"))
        sent, left = emitter.retry_spool(limit=limit, from_target=from_target)
    finally:
        emitter.close()
    typer.echo(f"recorded {sent} event(s); {left} still waiting in {emitter.spool_dir} "
               f"(recorded into {emitter.target})")
    if left and limit is None:
        raise typer.Exit(1)
