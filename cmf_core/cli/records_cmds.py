"""cmf export / import: records as JSON lines."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from cmf_core import jsonutil
from cmf_core.cli.common import StoreOpt, get_store
from cmf_core.errors import InvalidInputError
from cmf_core.records import record_from_dict, record_to_dict


def register(app: typer.Typer) -> None:
    app.command("export")(export)
    app.command("import")(import_)


def export(
    out: Annotated[Path | None, typer.Argument(help="Output file (default: stdout).")] = None,
    pipeline: Annotated[str | None, typer.Option(help="Only this pipeline.")] = None,
    since_seq: Annotated[int, typer.Option(help="Only changes after this store seq.")] = 0,
    store: StoreOpt = None,
) -> None:
    """Write the store's records as JSON lines (one record per line)."""
    with get_store(store) as s:
        fh = out.open("w", encoding="utf-8") if out else sys.stdout
        n = 0
        try:
            for rec in s.changes(since_seq=since_seq, pipeline=pipeline):
                fh.write(jsonutil.dumps(record_to_dict(rec)) + "\n")
                n += 1
        finally:
            if out:
                fh.close()
    if out:
        typer.echo(f"Exported {n} records to {out}")


def import_(
    src: Annotated[Path, typer.Argument(help="JSON lines file written by cmf export.")],
    store: StoreOpt = None,
) -> None:
    """Merge records from a JSON lines file into the store (idempotent, all or nothing)."""
    if not src.is_file():
        raise InvalidInputError(f"import file {src} does not exist")
    records = []
    with src.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                records.append(record_from_dict(json.loads(line)))
            except (json.JSONDecodeError, InvalidInputError) as e:
                raise InvalidInputError(f"{src}:{lineno}: {e}; nothing was imported") from None
    with get_store(store) as s:
        s.put(records)
    typer.echo(f"Imported {len(records)} records from {src}")
