"""cmf init, pipelines, stages, executions, artifacts, show."""

from __future__ import annotations

import json as json_module
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from cmf_core.cli.common import (
    COUNT,
    SINCE_HELP,
    SQL_INT_MAX,
    UNTIL_HELP,
    JsonOpt,
    PipelineArg,
    PipelineOpt,
    StoreOpt,
    check_pipelines,
    console,
    fits,
    fmt_time,
    get_store,
    one_pipeline,
    parse_time,
    print_json,
    short,
    some,
    table,
    visible,
    visible_json,
)
from cmf_core.config import HOME_DIRNAME, Settings, load_settings
from cmf_core.errors import InvalidInputError, NotFoundError
from cmf_core.lineage import Query
from cmf_core.lineage.query import ambiguous, artifact_dict, execution_dict, prefix_hint
from cmf_core.model import Artifact, Execution, run_url
from cmf_core.model.artifact import ARTIFACT_TYPES
from cmf_core.store import ExecutionFilter, Store, open_store


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("pipelines")(pipelines)
    app.command("stages")(stages)
    app.command("executions")(executions)
    app.command("artifacts")(artifacts)
    app.command("show")(show)


def init(
    path: Annotated[Path | None, typer.Argument(
        help="Folder to create the .cmf home in (default: the current folder; when CMF_HOME "
             "is set, the home is CMF_HOME itself).", show_default=False)] = None,
    site: Annotated[str | None, typer.Option(
        help="This site's id, written to the home's cmf.toml: every record made with this "
             "home carries it (CMF_SITE and ./cmf.toml still override it).")] = None,
) -> None:
    """Create a CMF home (.cmf/ with an embedded SQLite store) in PATH.

    Without PATH the home is the one later commands use: CMF_HOME itself when it is set (or
    `home` in cmf.toml), else ./.cmf. Given PATH while CMF_HOME names another home, init makes
    PATH/.cmf and warns that later commands still use CMF_HOME.

    Example: cmf init --site hpc
    """
    from cmf_core.config import home_config_file, resolve_home
    from cmf_core.store.sqlite import why_no_folder

    configured = load_settings()  # what later commands use (a bad setting fails here)
    if path is None:
        home = resolve_home(configured.home) if configured.home else Path(HOME_DIRNAME)
    else:
        home = path / HOME_DIRNAME
    db = home / "cmf.db"
    if site is not None:  # a valid site id, else a clear error, before anything is made
        load_settings(home=home, site=site, named={"site": "--site"})
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InvalidInputError(f"cannot create the CMF home {home}: "
                                f"{why_no_folder(home, e)}") from None
    existed = db.is_file() and db.stat().st_size > 0
    site_set = False
    if site is not None:
        site_set = _write_site(home_config_file(home), site)
    settings = load_settings(home=home)
    open_store(f"sqlite:///{db}", settings.site, settings).close()  # checks an existing one
    _warn_if_not_used(home, configured)
    if existed:
        typer.echo(f"A CMF store already exists at {db}; left as it was"
                   + (f" (its site is now {site}, in {home_config_file(home)})"
                      if site_set else ""))
        return
    where = f", the home {_named('CMF_HOME', 'home')[0]} names" if path is None and \
        configured.home else ""
    typer.echo(f"Initialised CMF store at {db} (site {settings.site}){where}")


def _named(variable: str, key: str) -> tuple[str, str]:
    """Where a setting comes from (its ``CMF_*`` variable when set, else the config file), and
    how to drop it."""
    if os.environ.get(variable):
        return variable, f"unset {variable}"
    return f"`{key}` in cmf.toml", "remove it from cmf.toml"


def _warn_if_not_used(home: Path, configured: Settings) -> None:
    """Warn (on stderr) when the settings make later commands use another store than ``home``'s:
    CMF_HOME naming another home, or a store URL."""
    from cmf_core.config import resolve_home

    if configured.store_url:
        source, undo = _named("CMF_STORE_URL", "store_url")
        typer.echo(f"Warning: {source} is set, so later commands use that store, not "
                   f"{home / 'cmf.db'} ({undo} to use this one)", err=True)
    elif configured.home and resolve_home(configured.home).resolve() != home.resolve():
        source, undo = _named("CMF_HOME", "home")
        typer.echo(f"Warning: {source} is {resolve_home(configured.home)}, so later commands use "
                   f"the home there, not {home} ({undo} to use this one)", err=True)


def _write_site(config: Path, site: str) -> bool:
    """Set ``site`` in the home's ``cmf.toml`` (created if missing); a different site already
    there is an error, so a home never changes its site by accident."""
    import tomllib

    text = config.read_text(encoding="utf-8") if config.is_file() else ""
    try:
        current = tomllib.loads(text).get("site")
    except tomllib.TOMLDecodeError as e:
        raise InvalidInputError(f"{config} is not valid TOML: {e}") from None
    if current == site:
        return False
    if current is not None:
        raise InvalidInputError(f"this CMF home's site is {current!r} (in {config}); edit that "
                                "file to change it")
    import json  # a JSON string is a TOML basic string (same escapes)

    config.write_text(f"site = {json.dumps(site, ensure_ascii=False)}\n" + text,
                      encoding="utf-8")
    return True


def pipelines(store: StoreOpt = None, json: JsonOpt = False) -> None:
    """List pipelines with their stages and execution counts."""
    with get_store(store) as s:
        rows = []
        for p in s.list_pipelines():
            n = s.count_executions(ExecutionFilter(pipeline=p.name))
            stages = [st.name for st in s.list_stages(p.name)]
            rows.append({"name": p.name, "site": p.site, "created_at": p.created_at,
                         "stages": stages, "executions": n})
    if json:
        print_json(rows)
        return
    table("Pipelines", ["name", "site", "created (UTC)", "stages", "executions"],
          [[r["name"], r["site"], fmt_time(r["created_at"]), ", ".join(r["stages"]),
            r["executions"]] for r in rows])
    if not rows:
        _say(_nothing_yet(s))


def stages(pipeline_arg: PipelineArg = None, pipeline: PipelineOpt = None,
           store: StoreOpt = None, json: JsonOpt = False) -> None:
    """List stages (of one pipeline with --pipeline).

    A pipeline name the store does not know is an error (exit 1), naming the ones it has.

    Example: cmf stages --pipeline churn
    """
    pipeline = one_pipeline(pipeline_arg, pipeline)
    with get_store(store) as s:
        check_pipelines(s, [pipeline] if pipeline else None)
        rows = [{"pipeline": st.pipeline, "name": st.name, "site": st.site}
                for st in s.list_stages(pipeline)]
    if json:
        print_json(rows)
        return
    table("Stages", ["pipeline", "stage", "site"],
          [[r["pipeline"], r["name"], r["site"]] for r in rows])


def executions(
    pipeline: Annotated[str | None, typer.Option(help="Only this pipeline.")] = None,
    stage: Annotated[str | None, typer.Option(help="Only this stage.")] = None,
    site: Annotated[str | None, typer.Option(help="Only executions recorded at this site.")] = None,
    status: Annotated[str | None, typer.Option(help="running, completed, failed, ...")] = None,
    since: Annotated[str | None, typer.Option(help=SINCE_HELP)] = None,
    until: Annotated[str | None, typer.Option(help=UNTIL_HELP)] = None,
    limit: Annotated[int, typer.Option(help="At most this many rows.", **COUNT)] = 50,
    offset: Annotated[int, typer.Option(help="Skip this many rows.", **COUNT)] = 0,
    store: StoreOpt = None,
    json: JsonOpt = False,
) -> None:
    """List executions, oldest first.

    Ids are shown whole, on one line, for cmf show (which also takes a unique prefix). When a
    row does not fit the terminal, each cell takes several lines instead: id over
    pipeline / stage @site, status over start time, one param a line (--json has all).

    A --pipeline or --stage name the store does not know is an error (exit 1), naming the
    ones it has; known names with nothing matching the other filters list nothing (exit 0).

    With --json, stdout holds the JSON alone; that more executions match than --limit shows
    is said on stderr.
    """
    with get_store(store) as s:
        check_pipelines(s, [pipeline] if pipeline else None)
        _check_stage(s, pipeline, stage)
        where = ExecutionFilter(pipeline=pipeline, stage=stage, site=site, status=status,
                                since=parse_time(since), until=parse_time(until))
        rows = s.list_executions(where, limit=limit, offset=offset)
        hint = _nothing_yet(s) if not rows and not s.count_executions() else None
        total = s.count_executions(where) if rows and len(rows) == limit else None
    lost = _lost_ids(rows, store)
    more = (f"Showing {offset + 1}-{offset + len(rows)} of {total} executions, oldest first: "
            f"--offset {offset + len(rows)} shows the next ones, --limit how many."
            if total is not None and total > offset + len(rows) else None)
    if json:  # the keys of the server's executions routes, ``lost`` included
        print_json([{**execution_dict(e), "lost": e.id in lost} for e in rows])
        _say(more, err=True)  # a script's stdout is the JSON; a cut list must not pass for all
        _say(hint, err=True)
        return
    _executions_table(rows, lost)
    if lost:
        _say(f"{len(lost)} running execution(s) listed are lost: their process on this host "
             "has ended without reporting an end. `cmf reap` marks them failed.")
    _say(more)
    _say(hint)


def _executions_table(rows: list[Execution], lost: set[str]) -> None:
    """One line per execution when that fits the terminal; else three columns, each cell on
    several lines: the whole id over pipeline / stage @site, the status over the start time, one
    param a line (folded, never cut: --json has the same)."""
    from rich.table import Table

    if not rows:  # not an empty frame
        console.print("Executions: none.", markup=False, highlight=False)
        return
    status = {e.id: e.status.value + (" (lost)" if e.id in lost else "") for e in rows}
    params = {e.id: [f"{k}={v}" for k, v in e.params.items()] for e in rows}
    wide = Table(title="Executions")
    for c in ("id", "pipeline", "stage", "site", "status", "started (UTC)", "params"):
        wide.add_column(c, no_wrap=True)
    for e in rows:
        wide.add_row(*(Text(visible(v)) for v in (
            e.id, e.pipeline, e.stage, e.site, status[e.id], fmt_time(e.started_at),
            ", ".join(params[e.id]))))
    if fits(wide):
        console.print(wide)
        return
    cells = [(f"{e.id}\n{e.pipeline} / {e.stage} @{e.site}",
              f"{status[e.id]}\n{fmt_time(e.started_at)}", "\n".join(params[e.id])) for e in rows]
    widths = _fit(cells, max((len(e.id) for e in rows), default=0), console.width - 10)
    narrow = Table(title="Executions", show_lines=True)  # rows of several lines
    heads = ("id\npipeline / stage @site", "status\nstarted (UTC)", "params")
    for head, width in zip(heads, widths, strict=True):
        narrow.add_column(head, overflow="fold", width=width)
    for row in cells:
        narrow.add_row(*(Text(visible(v)) for v in row))
    console.print(narrow)


def _fit(cells: list[tuple[str, str, str]], id_len: int, room: int) -> list[int]:
    """Widths of the narrow executions table's three columns in ``room`` characters: the
    first never below an id's length, the time below the status only when short of room
    (rich's own sharing could squeeze the table past the terminal or fold the ids)."""
    from rich.cells import cell_len

    want = [max([cell_len(line) for c in cells for line in c[i].split("\n")] + [6])
            for i in range(3)]
    status = max((cell_len(c[1].split("\n")[0]) for c in cells), default=6)
    params = min(want[2], 24)
    second = want[1] if id_len + want[1] + params <= room else max(status, 10)
    first = max(id_len, min(want[0], room - second - params))
    return [first, second, max(min(want[2], room - first - second), 6)]


def _resolve(q: Query, ref: str) -> tuple[Execution | None, Artifact | None]:
    """The one execution or artifact ``ref`` names: an exact id, digest or name first, else
    the one execution or artifact whose id or digest starts with it, else the one artifact
    whose recorded path or location ends in it; an error naming the candidates when several
    do."""
    executions = q.execution_matches(ref)
    if len(executions) == 1 and executions[0].id == ref.strip().lower():
        return executions[0], None
    artifacts, exact = q.artifact_matches(ref)
    if exact:
        return None, artifacts[0]
    if len(executions) + len(artifacts) > 1:
        raise InvalidInputError(ambiguous(ref, executions, artifacts))
    if executions:
        return executions[0], None
    if artifacts:
        return None, artifacts[0]
    raise NotFoundError(f"no execution with id {ref!r} and no artifact with digest, name or "
                        f"location {ref!r}" + prefix_hint(ref))


def _lost_ids(rows: list[Execution], store: str | None) -> set[str]:
    """Ids of the running executions of ``rows`` whose process on this host is gone, without
    an event waiting in the spool (what ``cmf reap`` would mark)."""
    from cmf_core.lost import lost_among

    return set(lost_among(rows, lambda: load_settings(store_url=store).spool_path))


def _check_stage(s: Store, pipeline: str | None, stage: str | None) -> None:
    """Refuse a stage name that no pipeline (or not ``pipeline``) has, naming the stages there
    are (a typo would select nothing)."""
    if stage is None:
        return
    known = sorted({st.name for st in s.list_stages(pipeline)})
    if stage not in known:
        raise NotFoundError(_none_named("stage", stage, f"pipeline {pipeline!r}" if pipeline
                                        else "this store", known))


def _none_named(kind: str, name: str, where: str, known: list[str]) -> str:
    """"no KIND named NAME in WHERE", with the names WHERE has (a typo is the usual cause)."""
    return (f"no {kind} named {name!r} in {where} ("
            + (f"known: {some(known)})" if known else "it has none yet)"))


def _nothing_yet(s: Store) -> str:
    """What an empty store says: which store it is, since a run recorded into another one
    (another CMF_HOME or --store) is the usual reason."""
    return (f"Nothing is recorded in {getattr(s, 'safe_url', 'this store')} yet. Run a tracked "
            "pipeline (see the README), or give --store or CMF_STORE_URL if the runs went to "
            "another store.")


def _say(hint: str | None, *, err: bool = False) -> None:
    """Print ``hint``, if any: under the table, or on stderr (``err``) under --json."""
    if hint and err:
        typer.echo(visible(hint), err=True)
    elif hint:
        console.print(hint, markup=False, highlight=False)


def artifacts(
    type: Annotated[str | None, typer.Option(help="Dataset, Model, Metrics, ...")] = None,
    name: Annotated[str | None, typer.Option(help="Exact artifact name.")] = None,
    digest: Annotated[str | None, typer.Option(help="Exact digest.")] = None,
    pipeline: Annotated[str | None, typer.Option(help="Used or made by this pipeline.")] = None,
    site: Annotated[str | None, typer.Option(help="First recorded at this site.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many rows.", **COUNT)] = 50,
    offset: Annotated[int, typer.Option(help="Skip this many rows.", **COUNT)] = 0,
    store: StoreOpt = None,
    json: JsonOpt = False,
) -> None:
    """List artifacts, in the order they were first recorded.

    A --pipeline name the store does not know, or a --type no artifact has that is not a
    registered type, is an error (exit 1).

    With --json, stdout holds the JSON alone; that more artifacts match than --limit shows
    is said on stderr.
    """
    with get_store(store) as s:
        check_pipelines(s, [pipeline] if pipeline else None)
        rows = Query(s).artifacts(type=type, name=name, digest=digest, pipeline=pipeline,
                                  site=site, limit=min(limit, SQL_INT_MAX - 1) + 1,
                                  offset=offset)
        more = len(rows) > limit
        rows = rows[:limit]
        if (not rows and type is not None and type not in ARTIFACT_TYPES
                and not s.find_artifacts(type=type, limit=1)):
            raise NotFoundError(f"no artifact type {type!r}: not a registered type, and no "
                                f"artifact of this store has it (known: "
                                f"{some(sorted(ARTIFACT_TYPES), 20)})")
    note = (f"Showing artifacts {offset + 1}-{offset + len(rows)}; more match: --offset "
            f"{offset + len(rows)} shows the next ones, --limit how many.") if more else None
    if json:
        print_json([artifact_dict(a) for a in rows])
        _say(note, err=True)
        return
    table("Artifacts", ["digest", "type", "name", "site", "uri"],
          [[short(a.id), a.type, a.name, a.site, a.uri] for a in rows], whole=["digest"])
    _say(note)


def show(ref: Annotated[str, typer.Argument(
             help="Execution id or a unique prefix of it, artifact digest or a unique prefix "
                  "of it (at least 4 hex characters, sha256: optional), artifact name (the latest "
                  "artifact of that name; this site's latest when other sites made one too), "
                  "the last part of a recorded path name, or a path "
                  "it was recorded at (whole or its last parts: out/copy.csv).")],
         store: StoreOpt = None,
         json: Annotated[bool, typer.Option(
             "--json", help="Print plain JSON, for scripts, with every step of every metric "
                            "(default: the same JSON, highlighted, stepped metrics "
                            "summarised).")] = False,
         all_metrics: Annotated[bool, typer.Option(
             "--all-metrics", help="List every step of a stepped metric (a loss curve), "
                                   "not one summary per name.")] = False) -> None:
    """Show one execution or artifact with its events, metrics and energy; an execution's
    run_url is its run's page in the orchestrator's UI (its logs), when recorded.

    A metric logged at steps (a loss curve of 10,000 steps) is summarised per name: how many
    steps, the first and last step, the last value, the smallest and largest; --all-metrics or
    --json lists each step.

    Example: cmf show 01a221c3-f185 (an id prefix; ambiguous ones list the candidates)
    """
    with get_store(store) as s:
        q = Query(s)
        ex, art = _resolve(q, ref)
        if ex is not None:
            data = {**execution_dict(ex), "lost": bool(_lost_ids([ex], store))}
            evs = s.events(execution_ids=[ex.id])
            data["inputs"] = [e.artifact_id for e in evs if e.type.value == "INPUT"]
            data["outputs"] = [e.artifact_id for e in evs if e.type.value == "OUTPUT"]
            data["metrics"] = [{"name": m.name, "value": m.value, "step": m.step}
                               for m in s.metrics([ex.id])]
            data["energy"] = [{"energy_kwh": r.energy_kwh, "co2e_kg": r.co2e_kg,
                               "measured": r.measured, "details": dict(r.details)}
                              for r in s.energy([ex.id])]
            data["kind"] = "execution"
            if link := run_url(ex.properties):  # the run's page in the orchestrator's UI
                data["run_url"] = link
        else:
            assert art is not None
            data = artifact_dict(art)
            data["kind"] = "artifact"
            data["locations"] = [{"site": loc.site, "uri": loc.uri}
                                 for loc in s.artifact_locations(art.id)]
            data["produced_by"] = [e.id for e in q.producers(art.id)]
            data["consumed_by"] = [e.id for e in q.consumers(art.id)]
    if json:
        print_json(data)
        return
    summarised = None
    if "metrics" in data and not all_metrics:
        data["metrics"], summarised = _summarise_steps(data["metrics"])
    from rich.highlighter import JSONHighlighter

    from cmf_core.jsonutil import clean

    # the characters that show nothing or turn the line around, as JSON escapes (the same data)
    text = json_module.dumps(clean(data), indent=2, ensure_ascii=False)
    highlighted = JSONHighlighter()(visible_json(text))  # print_json would decode it again
    highlighted.no_wrap, highlighted.overflow = True, None
    console.print(highlighted, soft_wrap=True)
    if summarised:
        _say(f"Stepped metrics summarised per name ({summarised:,} steps in all): "
             "--all-metrics lists every step, --json too.")


def _summarise_steps(metrics: list[dict]) -> tuple[list[dict], int]:
    """``metrics`` (``name``, ``value``, ``step``; in name and step order) with the steps of
    each stepped metric replaced by one summary (steps, first_step, last_step, last_value, min,
    max), in the same place; and how many steps they held."""
    out: list[dict] = []
    summary: dict[str, dict] = {}
    steps = 0
    for m in metrics:
        if m["step"] is None:
            out.append(m)
            continue
        steps += 1
        s = summary.get(m["name"])
        if s is None:
            s = summary[m["name"]] = {"name": m["name"], "steps": 0, "first_step": m["step"],
                                      "last_step": m["step"], "last_value": m["value"],
                                      "min": m["value"], "max": m["value"]}
            out.append(s)
        s["steps"] += 1
        if m["step"] >= s["last_step"]:
            s["last_step"], s["last_value"] = m["step"], m["value"]
        s["first_step"] = min(s["first_step"], m["step"])
        s["min"], s["max"] = min(s["min"], m["value"]), max(s["max"], m["value"])
    return out, steps
