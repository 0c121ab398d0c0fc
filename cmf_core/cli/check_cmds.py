"""cmf store check / cmf store repair: rows of the store that a peer's import would refuse;
cmf store backup: a consistent copy of a live embedded store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cmf_core.cli.common import JsonOpt, StoreOpt, get_store, print_json, table


def register(app: typer.Typer) -> None:
    # a group of its own per app (see sync_cmds.register)
    store_app = typer.Typer(help="The store itself: back it up, find the rows a peer would "
                                 "refuse, repair them.", no_args_is_help=True)
    store_app.command("check")(check)
    store_app.command("repair")(repair)
    store_app.command("backup")(backup)
    store_app.command("restore")(restore)
    app.add_typer(store_app, name="store")


def check(store: StoreOpt = None, json_out: JsonOpt = False) -> None:
    """List the rows a peer would refuse on import (cmf import, cmf sync), checked by the
    import's own rules; exit code 1 if there are any.

    One such row makes a peer refuse every bundle that holds it, so syncs from this site fail.
    An older release could store them (energy with a negative or NaN amount); cmf store repair
    fixes those it can.

    Example: cmf store check
    """
    from cmf_core.federation.check import check_store

    with get_store(store) as s:
        found = list(check_store(s))
    if json_out:
        print_json([p.to_dict() for p in found])
    else:
        _list(found)
        if found:
            fixable = sum(p.repair is not None for p in found)
            typer.echo(f"{len(found)} row(s) a peer would refuse; cmf store repair would repair "
                       f"{fixable} of them" + ("." if fixable == len(found) else
                                               " (the others need a look by hand)."))
    if found:
        raise typer.Exit(1)


def repair(
    apply: Annotated[bool, typer.Option(
        "--apply", help="Write the repairs (default: only show what would change).")] = False,
    store: StoreOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Repair the rows a peer would refuse that can be repaired without losing anything; by
    default only show what would change (--apply writes it). Exit code 1 while rows a peer
    would refuse remain.

    An energy record with a refused amount (negative, infinite, NaN) becomes a record saying
    nothing was measured: both amounts 0, details.measured false (roll-ups leave it out), the
    original amounts and the reason kept in details["cmf.repair"], and a note first in
    details.notes. The repaired row is a new version of this store: the next sync sends it.
    Each run that writes is noted in the store's state (store:repair:<time>). Other refused
    rows are listed, not changed.

    Example: cmf store repair --apply
    """
    from cmf_core.federation.check import apply_repair, check_store

    with get_store(store) as s:
        found = list(check_store(s))
        fixable = [p for p in found if p.repair is not None]
        done = apply_repair(s, fixable) if apply and fixable else 0
        left = list(check_store(s)) if apply and fixable else [
            p for p in found if p.repair is None]
    if json_out:
        print_json({"applied": apply, "repairs": [p.to_dict() for p in fixable],
                    "replaced": done, "remaining": [p.to_dict() for p in left]})
    else:
        table("Repairs" + ("" if apply else " (dry run)"), ["kind", "record", "problem", "repair"],
              [[p.kind, p.key, p.problem, "energy_kwh 0, co2e_kg 0, measured false; "
                "originals in details.cmf.repair"] for p in fixable], whole=["record"])
        if not apply:
            typer.echo(f"Would repair {len(fixable)} row(s); nothing was changed"
                       + (" (--apply writes the repairs)." if fixable else "."))
        else:
            typer.echo(f"Repaired {done} row(s)."
                       + (f" {len(fixable) - done} changed while this ran: run it again."
                          if done < len(fixable) else ""))
        if left:
            typer.echo(f"{len(left)} row(s) a peer would refuse remain"
                       + (" that cmf store repair cannot fix" if not apply else "")
                       + " (cmf store check lists them).")
    if left:
        raise typer.Exit(1)


def _list(found: list) -> None:
    table("Rows a peer would refuse", ["kind", "record", "seq", "problem", "repairable"],
          [[p.kind, p.key, p.seq, p.problem, "yes" if p.repair is not None else "no"]
           for p in found], whole=["record"])


def backup(
    dest: Annotated[Path, typer.Argument(
        help="File to write the copy to (a folder: the store's file name in it).",
        show_default=False)],
    force: Annotated[bool, typer.Option(
        "--force", help="Replace DEST if it exists.")] = False,
    store: StoreOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Copy the embedded store to DEST, consistently, while pipelines go on recording.

    Applies every process's journal first (so each execution whose recording ended before the
    backup began is in the copy), then copies the database with SQLite's online backup API as of
    one moment (writers are not stopped), checks the copy (PRAGMA integrity_check; every table's
    row count against the store's at that moment) and only then moves it to DEST, one
    self-contained file. DEST is never overwritten without --force. A PostgreSQL store is backed
    up with pg_dump. Restoring: see docs/configuration.md, "Backing up and restoring".

    Example: cmf store backup /backups/cmf-$(date +%F).db
    """
    import sqlalchemy as sa

    from cmf_core.config import load_settings
    from cmf_core.errors import InvalidInputError
    from cmf_core.store import open_store
    from cmf_core.store.backup import backup_sqlite, pg_dump_hint
    from cmf_core.task_values import hide_password

    settings = load_settings(store_url=store)
    url = settings.resolved_store_url
    try:
        backend = sa.engine.make_url(url).get_backend_name()
    except sa.exc.ArgumentError:
        backend = ""
    if backend == "postgresql":
        raise InvalidInputError(pg_dump_hint(hide_password(
            sa.engine.make_url(url).render_as_string(hide_password=True))))
    with open_store(settings=settings, create=False) as s:
        if getattr(s, "kind", "") != "sqlite":
            raise InvalidInputError(f"cmf store backup copies embedded (SQLite) stores; "
                                    f"{getattr(s, 'safe_url', url)} is a {s.kind} store: "
                                    "use that database's own backup tools")
        report = backup_sqlite(s, dest, force=force)
    if json_out:
        print_json(report.to_dict())
    else:
        table("Rows in the copy", ["table", "rows"],
              [[t, n] for t, n in report.rows.items()
               if not t.startswith("cmf_") or (t == "cmf_journal_rejected" and n)])
        typer.echo(f"Copied {report.source} to {report.dest} ({report.bytes:,} bytes; store "
                   f"{report.store_id}, "
                   f"seq {report.seq}; integrity check ok, every table's row count matches the "
                   f"store's). Applied {report.journal_applied} journal entr"
                   f"{'y' if report.journal_applied == 1 else 'ies'} first.")
    if report.journal_error:
        typer.echo(f"Warning: the store's journal could not be applied first "
                   f"({report.journal_error}): the copy holds what its tables held; executions "
                   "recorded since their last apply are not in it", err=True)


def restore(
    backup_file: Annotated[Path, typer.Argument(
        metavar="BACKUP", help="A copy made by cmf store backup.", show_default=False)],
    store: StoreOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Put a backup in place of the embedded store, as a new store id for federation.

    Stop every process that records into the store (and cmf serve) first: a live writer
    refuses the restore. The store's current file (with its -wal and -shm) is moved aside as
    FILE.replaced-TIME, never deleted. The restored store gets a new store id, so that peers
    take what it records from now on (with the old id, its counter being back at the backup's,
    they would skip those records) and send back, at the next cmf sync, what they got from it
    after the backup. Journal entries left in the store's journal folder are applied to it.

    Example: cmf store restore /backups/cmf-2026-11-01.db
    """
    import sqlalchemy as sa

    from cmf_core.config import load_settings
    from cmf_core.errors import InvalidInputError
    from cmf_core.store.backup import restore_sqlite

    settings = load_settings(store_url=store)
    url = sa.engine.make_url(settings.resolved_store_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        raise InvalidInputError("cmf store restore restores embedded (SQLite) stores; restore a "
                                "PostgreSQL store with pg_restore (from a pg_dump file)")
    db = Path(url.database).expanduser().absolute()
    if not db.parent.is_dir():
        raise InvalidInputError(f"the folder {db.parent} of the store does not exist")
    report = restore_sqlite(backup_file, db)
    if json_out:
        print_json(report.to_dict())
        return
    typer.echo(f"Restored {report.backup} as {report.store} (seq {report.seq}); new store id "
               f"{report.store_id} (was {report.previous_store_id}): run cmf sync with each "
               "peer to get back what they received after this backup."
               + (f" The replaced files were moved aside: {', '.join(report.moved_aside)}."
                  if report.moved_aside else ""))
