"""cmf export / import: metadata bundles (JSON lines with a header and a checksum trailer), and
ML-Metadata (MLMD) stores with --mlmd (cmflib and Kubeflow Pipelines)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from cmf_core.cli.common import (
    COUNT,
    JsonOpt,
    StoreOpt,
    check_pipelines,
    console,
    get_store,
    new_store_undone_on_error,
    parse_time,
    print_json,
    stdout_or_fail,
    table,
)
from cmf_core.errors import InvalidInputError


def register(app: typer.Typer) -> None:
    app.command("export")(export)
    app.command("import")(import_)


def export(
    out: Annotated[Path | None, typer.Argument(help="Output file, or - for stdout (the "
                                                    "default); a name ending in .gz is "
                                                    "gzip-compressed.")] = None,
    pipeline: Annotated[list[str] | None, typer.Option(
        help="Only this pipeline (repeat for several).")] = None,
    since_seq: Annotated[int, typer.Option(help="Only changes after this store seq.",
                                                     **COUNT)] = 0,
    since: Annotated[str | None, typer.Option(
        help="Only executions started at or after this ISO time (UTC unless it has an "
             "offset), with what they used.")]
    = None,
    until: Annotated[str | None, typer.Option(
        help="Only executions started before this ISO time (UTC unless it has an offset), "
             "with what they used.")]
    = None,
    artifact: Annotated[str | None, typer.Option(
        help="Only the provenance closure of this artifact (everything upstream): its digest "
             "or a unique prefix, name or path's last part, as cmf lineage takes it.")]
    = None,
    gzip: Annotated[bool | None, typer.Option(
        "--gzip/--no-gzip", help="Compress (default: when OUT ends in .gz).")] = None,
    mlmd: Annotated[Path | None, typer.Option(
        "--mlmd", help="Write an ML-Metadata SQLite file laid out as cmflib writes it "
                       "(needs the mlmd extra) instead of a bundle.")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Replace an existing output file (OUT or --mlmd's).")] = False,
    json_out: JsonOpt = False,
    store: StoreOpt = None,
) -> None:
    """Write a metadata bundle: the whole store, some pipelines, changes since a seq,
    executions started in a time window (--since, --until), or the provenance of one
    artifact. With --mlmd, write the pipelines into a new MLMD file that cmflib's CmfQuery
    reads.

    Example: cmf export churn.jsonl.gz --pipeline churn

    Example: cmf export --mlmd mlmd --pipeline churn
    """
    if mlmd is not None:
        if out is not None or since_seq or since or until or artifact or gzip is not None:
            raise InvalidInputError("--mlmd exports whole pipelines: give only --pipeline "
                                    "(and --force), not OUT, --since-seq, --since, --until, "
                                    "--artifact or --gzip")
        _export_mlmd(mlmd, pipeline, force, json_out, store)
        return
    from cmf_core.federation.export import ExportResult, Selector, export_bundle
    from cmf_core.lineage import Query

    selector = Selector(pipelines=tuple(pipeline) if pipeline else None, since_seq=since_seq,
                        since_time=parse_time(since), until_time=parse_time(until),
                        artifact=artifact)
    if out is not None and str(out) == "-":  # the Unix convention; it wrote a file named "-"
        out = None
    compress = gzip if gzip is not None else bool(out and out.name.endswith(".gz"))
    if out is not None:
        _check_target(out, force)
    elif force or json_out:
        raise InvalidInputError(f"{'--force' if force else '--json'} only applies to an "
                                "output file: give OUT (stdout carries the bundle itself)")
    result = ExportResult()
    with get_store(store) as s:
        check_pipelines(s, pipeline)
        if artifact is not None:  # the forms cmf lineage and cmf show take, to its digest
            selector = replace(selector, artifact=Query(s).resolve_artifact(artifact).id)
        chunks = export_bundle(s, selector, compress=compress, result=result)
        if out is None:
            stdout = stdout_or_fail().buffer
            for chunk in chunks:
                stdout.write(chunk)
            stdout.flush()
            return
        _write_whole(out, chunks)
    if json_out:
        print_json({"path": str(out), "records": result.records, "since": result.since,
                    "end": result.end})
        return
    if result.records == 0 and since_seq and since_seq >= result.snapshot:
        typer.echo(f"Exported 0 records to {out}: nothing after seq {since_seq} (this store's "
                   f"last seq is {result.snapshot})")
        return
    typer.echo(f"Exported {result.records} records (seq {result.since}..{result.end}) to {out}")


def _check_target(out: Path, force: bool) -> None:
    """Refuse a folder, a missing folder, or (without ``force``) an existing file."""
    if out.is_dir():
        raise InvalidInputError(f"cannot export to {out}: it is a folder; give a file name")
    if out.exists() and not force:
        raise InvalidInputError(f"cannot export to {out}: it already exists; give another "
                                "name, or --force to replace it")
    if not out.parent.is_dir():
        raise InvalidInputError(f"cannot export to {out}: the folder {out.parent} does not exist")


def _write_whole(out: Path, chunks: Iterable[bytes]) -> None:
    """Write ``out`` through a ``.part`` file beside it, renamed at the end: whole, or not at
    all (an existing ``out`` stays as it was). The name is this process's own, so neither a
    user's ``out.part`` nor a concurrent export's file is clobbered."""
    tmp = out.with_name(f".{out.name}.{os.getpid()}.part")
    try:
        with tmp.open("wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
        tmp.replace(out)
    except OSError as e:
        raise InvalidInputError(f"cannot export to {out}: {e.strerror}") from None
    finally:
        tmp.unlink(missing_ok=True)


def _export_mlmd(path: Path, pipelines: list[str] | None, force: bool, json_out: bool,
                 store: str | None) -> None:
    from cmf_core.mlmd import export_mlmd

    with get_store(store) as s:
        report = export_mlmd(s, path, pipelines, force=force)
    if json_out:
        print_json(report.to_dict())
        return
    c = report.counts
    console.print(f"Exported {len(report.pipelines)} pipeline(s) "
                  f"({', '.join(report.pipelines) or 'none'}) to MLMD file {report.path}: "
                  f"{c['stages']} stages, {c['executions']} executions, {c['artifacts']} "
                  f"artifacts, {c['events']} events, {c['metrics']} metrics",
                  markup=False, highlight=False, soft_wrap=True)


def import_(
    src: Annotated[Path | None, typer.Argument(help="Bundle written by cmf export (.jsonl or "
                                                    ".jsonl.gz; plain record lines are read "
                                                    "too).")] = None,
    mlmd: Annotated[str | None, typer.Option(
        "--mlmd", help="Import an ML-Metadata store instead (cmflib or Kubeflow Pipelines): "
                       "an SQLite file, or a postgresql:// or mysql:// URL.")] = None,
    pipeline: Annotated[list[str] | None, typer.Option(
        help="With --mlmd: only this pipeline (repeat for several).")] = None,
    json_out: JsonOpt = False,
    store: StoreOpt = None,
) -> None:
    """Merge a bundle into the store: idempotent, all or nothing; true conflicts are recorded
    and reported, never overwritten. With --mlmd, import an MLMD store (idempotent, all or
    nothing).

    It reports how many of the bundle's records were new or updated here, and how many the
    store already had (all of them, for a bundle imported before).

    Example: cmf import churn.jsonl.gz

    Example: cmf import --mlmd ./mlmd --pipeline churn
    """
    if mlmd is not None:
        if src is not None:
            raise InvalidInputError("give either a bundle SRC or --mlmd, not both")
        _import_mlmd(mlmd, pipeline, json_out, store)
        return
    if src is None:
        raise InvalidInputError("nothing to import: give a bundle file, or --mlmd PATH_OR_URL")
    if pipeline:
        raise InvalidInputError("--pipeline only applies to --mlmd; bundles import whole")
    from cmf_core.federation.merge import import_file

    with new_store_undone_on_error(store) as s:
        report = import_file(s, src)
    if json_out:
        print_json(report.to_dict())
        return
    origin = f" from site {report.origin_site}" if report.origin_site else ""
    if report.written:
        have = max(report.records - report.written, 0)
        typer.echo(f"Imported {report.records} records{origin} from {src}: {report.written} "
                   f"new or updated, {have} already in this store")
    else:
        typer.echo(f"Nothing new in {src}: this store already had all {report.records} "
                   f"records{origin}")
    if report.conflicts:
        typer.echo(f"{len(report.conflicts)} conflict(s) recorded (cmf conflicts lists them):",
                   err=True)
        for c in report.conflicts[:20]:
            typer.echo(f"  {c['kind']} {c['record_id']}: {', '.join(c['fields'])} differ",
                       err=True)


def _import_mlmd(source: str, pipelines: list[str] | None, json_out: bool,
                 store: str | None) -> None:
    from cmf_core.mlmd import import_mlmd

    with new_store_undone_on_error(store) as s:
        report = import_mlmd(s, source, pipelines)
    if json_out:
        print_json(report.to_dict())
        return
    c, new = report.counts, report.new
    rows = [[kind, c[kind], new.get(kind, "-")] for kind in
            ("pipelines", "stages", "executions", "artifacts", "events", "metrics")]
    typer.echo(f"Imported MLMD store {report.source} ({report.shape}, schema "
               f"{report.schema_version}) in {report.seconds:.2f} s: "
               f"{', '.join(report.pipelines) or 'no pipelines'}")
    table("MLMD import", ["records", "read", "new"], rows)
    for reason, n in sorted(report.skipped.items()):
        typer.echo(f"skipped {n} {reason}", err=True)
    for note in report.notes[:20]:
        typer.echo(f"note: {note}", err=True)
