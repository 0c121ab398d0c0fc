"""cmf sync / cmf artifact fetch / cmf conflicts: federation with peer sites."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cmf_core.cli.common import JsonOpt, StoreOpt, fmt_time, get_store, print_json, table
from cmf_core.config import load_settings
from cmf_core.errors import InvalidInputError

if TYPE_CHECKING:
    from cmf_core.federation.peer import Transfer

def register(app: typer.Typer) -> None:
    app.command("sync")(sync)
    app.command("peers")(peers)
    app.command("conflicts")(conflicts)
    # a group of its own per app: one shared by every app registered (tests register their
    # own) collected a `fetch` per registration, and the last, not made a CmfCommand, won
    artifact_app = typer.Typer(help="Artifact bytes: fetch them from the site that holds them.",
                               no_args_is_help=True)
    artifact_app.command("fetch")(fetch)
    app.add_typer(artifact_app, name="artifact")


def sync(
    peer_url: Annotated[str, typer.Argument(help="The peer's cmf serve, e.g. "
                                                 "https://hpc.example.org:8080")],
    push: Annotated[bool, typer.Option("--push", help="Only send this site's changes.")] = False,
    pull: Annotated[bool, typer.Option("--pull", help="Only fetch the peer's changes.")] = False,
    both: Annotated[bool, typer.Option("--both", help="Pull, then push (the default).")] = False,
    pipeline: Annotated[str | None, typer.Option(help="Only this pipeline.")] = None,
    token: Annotated[str | None, typer.Option(
        help="The peer's token for this site (default: the federation_tokens setting).")]
    = None,
    timeout: Annotated[float, typer.Option(
        min=0.1, max=86_400.0,
        help="Seconds each request to the peer may take (connect, send a page, read one).")]
    = 120.0,
    json_out: JsonOpt = False,
    store: StoreOpt = None,
) -> None:
    """Exchange metadata with a peer site, incrementally (only what is new moves; an
    interrupted sync resumes where it stopped).

    Example: cmf sync http://cloud.example.org:8080 --pull --token s3cret
    """
    from cmf_core.federation.peer import TokenSource
    from cmf_core.federation.peer import sync as do_sync

    chosen = [name for name, flag in (("push", push), ("pull", pull), ("both", both)) if flag]
    if len(chosen) > 1:
        raise InvalidInputError(f"choose one of --push, --pull and --both, not "
                                f"{' and '.join('--' + c for c in chosen)}")
    direction = chosen[0] if chosen else "both"
    settings = load_settings(store_url=store)
    with get_store(store, create=True) as s:
        report = do_sync(peer_url, token=token, direction=direction,  # type: ignore[arg-type]
                         pipeline=pipeline, store=s, settings=settings, timeout=timeout,
                         token_source=TokenSource("--token", "pass --token, or add the peer's "
                                                  "URL to the federation_tokens setting",
                                                  who="command"))
    if json_out:
        print_json(report.to_dict())
        return
    parts = []
    if direction in ("both", "pull"):
        parts.append(_moved("pulled", report.pulled))
    if direction in ("both", "push"):
        parts.append(_moved("pushed", report.pushed))
    scope = "" if report.scope == "all" else f" [{report.scope}]"
    typer.echo(f"Synced with {report.peer_site} at {report.peer_url}{scope}: {', '.join(parts)}")
    if report.conflicts:
        typer.echo(f"{len(report.conflicts)} conflict(s) recorded (cmf conflicts lists them)",
                   err=True)


def _moved(verb: str, t: Transfer) -> str:
    """``pulled 120 records (35 new or changed, 4,096 bytes)``."""
    new = "" if t.written is None else f"{t.written:,} new or changed, "
    return f"{verb} {t.records:,} records ({new}{t.bytes:,} bytes)"


def fetch(
    digest: Annotated[str, typer.Argument(
        help="The artifact's digest (sha256:...), or a unique prefix of it as cmf lineage "
             "prints it (sha256:3f2a9c0d1e2b).")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Where to write the bytes: "
                                             "a file, or a folder for <folder>/<name> "
                                             "(default: ./<name>).")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Replace an existing file.")] = False,
    from_url: Annotated[str | None, typer.Option(
        "--from", help="The owning site's cmf serve (default: learned by cmf sync).")] = None,
    token: Annotated[str | None, typer.Option(
        help="That site's token for this site (default: the federation_tokens setting); one "
             "site's, so with several sites to try it needs --from.")] = None,
    timeout: Annotated[float, typer.Option(
        min=0.1, max=86_400.0, help="Seconds each request to the site may take.")] = 300.0,
    store: StoreOpt = None,
) -> None:
    """Fetch an artifact's bytes from the site that holds them, verifying the digest.

    Example: cmf artifact fetch sha256:3f2a... --out model.pkl
    """
    from cmf_core.federation.peer import fetch_artifact, find_artifact

    settings = load_settings(store_url=store)
    with get_store(store) as s:
        whole = find_artifact(s, digest).id  # a prefix given: say which artifact it named
        path = fetch_artifact(whole, out, peer_url=from_url, token=token, store=s,
                              settings=settings, timeout=timeout, force=force)
    typer.echo(f"Fetched {whole} to {path} (digest verified)")


def peers(json_out: JsonOpt = False, store: StoreOpt = None) -> None:
    """List the sites this store has synced with: each site's URL (as cmf artifact fetch
    uses it), and when it was last synced, which way and what moved.

    Example: cmf peers
    """
    from cmf_core.federation.peer import peers as known

    with get_store(store) as s:
        found = known(s)
    if json_out:
        print_json([p.to_dict() for p in found])
        return
    if not found:
        typer.echo("Peers: none (cmf sync PEER_URL adds one).")
        return
    table("Peers", ["site", "url", "last sync (UTC)", "direction", "pulled", "pushed", "conflicts"],
          [[p.site, p.url, fmt_time(p.synced_at) if p.synced_at else "not finished",
            (p.direction or "-") + (f" (pipeline {p.pipeline})" if p.pipeline else ""),
            p.pulled, p.pushed, p.conflicts] for p in found])


def conflicts(json_out: JsonOpt = False, store: StoreOpt = None) -> None:
    """List true conflicts found while merging: same id, different content that must not
    change. The store kept its own version of each."""
    with get_store(store) as s:
        found = s.list_conflicts()  # type: ignore[attr-defined]
    if json_out:
        print_json(found)
        return
    if not found:
        typer.echo("No conflicts.")
        return
    table("Conflicts", ["detected (UTC)", "kind", "record", "site", "fields"],
          [[fmt_time(c["detected_at"]), c["kind"], c["record_id"], c["site"],
            ", ".join(c["detail"].get("fields", []))] for c in found])
    if any(c["kind"] == "execution" and "site" in c["detail"].get("fields", []) for c in found):
        typer.echo("An execution id recorded at two sites is most often one Airflow DAG run at "
                   "both: Airflow task ids derive from the OpenLineage namespace, so give each "
                   "site its own [openlineage] namespace (docs/federation.md, 'Design choices "
                   "and limits').")
