"""cmf export / import: metadata bundles (JSON lines with a header and a checksum trailer)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from cmf_core.cli.common import JsonOpt, StoreOpt, get_store, parse_time, print_json
from cmf_core.federation.export import ExportResult, Selector, export_bundle
from cmf_core.federation.merge import import_file


def register(app: typer.Typer) -> None:
    app.command("export")(export)
    app.command("import")(import_)


def export(
    out: Annotated[Path | None, typer.Argument(help="Output file (default: stdout); a name "
                                                    "ending in .gz is gzip-compressed.")] = None,
    pipeline: Annotated[list[str] | None, typer.Option(
        help="Only this pipeline (repeat for several).")] = None,
    since_seq: Annotated[int, typer.Option(help="Only changes after this store seq.")] = 0,
    since: Annotated[str | None, typer.Option(
        help="Only executions started at or after this ISO time (with what they used).")]
    = None,
    artifact: Annotated[str | None, typer.Option(
        help="Only the provenance closure of this artifact digest (everything upstream).")]
    = None,
    gzip: Annotated[bool | None, typer.Option(
        "--gzip/--no-gzip", help="Compress (default: when OUT ends in .gz).")] = None,
    store: StoreOpt = None,
) -> None:
    """Write a metadata bundle: the whole store, some pipelines, changes since a seq,
    executions since a time, or the provenance of one artifact.

    Example: cmf export churn.jsonl.gz --pipeline churn
    """
    selector = Selector(pipelines=tuple(pipeline) if pipeline else None, since_seq=since_seq,
                        since_time=parse_time(since), artifact=artifact)
    compress = gzip if gzip is not None else bool(out and out.name.endswith(".gz"))
    result = ExportResult()
    with get_store(store) as s:
        chunks = export_bundle(s, selector, compress=compress, result=result)
        if out is None:
            for chunk in chunks:
                sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
            return
        tmp = out.with_name(out.name + ".part")
        with tmp.open("wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
        tmp.replace(out)
    typer.echo(f"Exported {result.records} records (seq {result.since}..{result.end}) to {out}")


def import_(
    src: Annotated[Path, typer.Argument(help="Bundle written by cmf export (.jsonl or "
                                             ".jsonl.gz; plain record lines are read too).")],
    json_out: JsonOpt = False,
    store: StoreOpt = None,
) -> None:
    """Merge a bundle into the store: idempotent, all or nothing; true conflicts are recorded
    and reported, never overwritten."""
    with get_store(store) as s:
        report = import_file(s, src)
    if json_out:
        print_json(report.to_dict())
        return
    origin = f" from site {report.origin_site}" if report.origin_site else ""
    typer.echo(f"Imported {report.records} records{origin} from {src}")
    if report.conflicts:
        typer.echo(f"{len(report.conflicts)} conflict(s) recorded (cmf conflicts lists them):",
                   err=True)
        for c in report.conflicts[:20]:
            typer.echo(f"  {c['kind']} {c['record_id']}: {', '.join(c['fields'])} differ",
                       err=True)
