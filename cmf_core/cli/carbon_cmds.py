"""cmf carbon: energy and emissions rolled up per stage, pipeline, site, phase or day."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from cmf_core.carbon.rollup import (
    CO2_UNITS,
    ENERGY_UNITS,
    Group,
    Rollup,
    plot,
    rollup,
    unit,
)
from cmf_core.cli.common import (
    SINCE_HELP,
    UNTIL_HELP,
    JsonOpt,
    PipelineArg,
    PipelineOpt,
    StoreOpt,
    check_pipelines,
    console,
    get_store,
    one_pipeline,
    parse_time,
    print_json,
    table,
    visible,
)


class By(enum.StrEnum):
    STAGE = "stage"
    PIPELINE = "pipeline"
    SITE = "site"
    PHASE = "phase"
    DAY = "day"


def register(app: typer.Typer) -> None:
    app.command("carbon")(carbon)


def carbon(
    pipeline_arg: PipelineArg = None,
    pipeline: PipelineOpt = None,
    site: Annotated[str | None, typer.Option(help="Only executions run at this site.")] = None,
    since: Annotated[str | None, typer.Option(help=SINCE_HELP)] = None,
    until: Annotated[str | None, typer.Option(help=UNTIL_HELP)] = None,
    by: Annotated[By, typer.Option("--by", help="Group by this.")] = By.STAGE,
    plot_to: Annotated[Path | None, typer.Option(
        "--plot", help="Also write a PNG bar chart of CO2e per group, bars by site "
                       "(needs the plot extra).")] = None,
    store: StoreOpt = None,
    json: JsonOpt = False,
) -> None:
    """Energy (kWh) and emissions (kgCO2e) per stage, pipeline, site, phase or day, split by
    phase (training, inference, retraining, ...), with the PUEs, intensities, regions and
    measurement methods behind the numbers.

    Example: cmf carbon --pipeline churn --by site --plot carbon.png
    """
    pipeline = one_pipeline(pipeline_arg, pipeline)
    with get_store(store) as s:
        check_pipelines(s, [pipeline] if pipeline else None)
        result = rollup(s, pipeline=pipeline, site=site, since=parse_time(since),
                        until=parse_time(until), by=by.value)
    if plot_to is not None:
        plot(result, plot_to)
    if json:
        print_json(result.to_dict())
    else:
        _print(result)
    if plot_to is not None:
        typer.echo(f"Wrote {plot_to}", err=json)


def _num(v: float) -> str:
    return f"{v:,.2f}" if abs(v) >= 100 else f"{v:.4g}"


def _phases(g: Group, co2: tuple[str, float]) -> str:
    return "\n".join(f"{p}{'*' if s.inferred else ''} {_num(s.co2e_kg * co2[1])}"
                     for p, s in g.phases.items())


def _inputs(g: Group) -> str:
    i = g.inputs
    parts = []
    if i.pue:
        parts.append("PUE " + "/".join(f"{p:g}" for p in i.pue))
    if i.intensity_g_per_kwh:
        parts.append("/".join(f"{v:g}" for v in i.intensity_g_per_kwh) + " g/kWh")
    if i.regions:
        parts.append(", ".join(i.regions))
    parts += [f"{c}: " + ", ".join(f"{m} x {n}" for m, n in ms.items())
              for c, ms in i.methods.items()]
    return "\n".join(parts) or "-"


def _blocks(title: str, groups: tuple[Group, ...], show_sites: bool,
            energy: tuple[str, float], co2: tuple[str, float]) -> None:
    """Each group as a few lines under its whole name, for a terminal the table does not fit."""
    console.print(title, markup=False, highlight=False)
    for g in groups:
        n = f"{g.executions} execution{'s' if g.executions != 1 else ''}"
        lines = [f"{n}, {g.with_energy} with energy: {_num(g.energy_kwh * energy[1])} "
                 f"{energy[0]}, {_num(g.co2e_kg * co2[1])} {co2[0]}" if g.with_energy else
                 f"{n}, none with an energy record (not measured)"]
        if show_sites:
            lines.append("sites: " + ", ".join(g.sites))
        if g.phases and g.with_energy:
            lines.append(f"by phase ({co2[0]}): " + "; ".join(_phases(g, co2).split("\n")))
        lines.append("inputs: " + "; ".join(_inputs(g).split("\n")))
        console.print(Text(visible(g.key), style="bold"))
        for line in lines:
            console.print(Text("  " + visible(line)))


#: stages whose inferred phase the table's footnote names (the rest: --json)
INFERRED_SHOWN = 5


def _print(result: Rollup) -> None:
    filters = ", ".join(f"{k} {v}" for k, v in result.filters.items()
                        if v is not None and k in ("pipeline", "site"))
    show_sites = result.by != "site" and len(result.total.sites) > 1
    groups = (*result.groups, result.total)
    energy = unit(result.total.energy_kwh, ENERGY_UNITS)  # one unit per column, from the total
    co2 = unit(result.total.co2e_kg, CO2_UNITS)
    rows = [[g.key, *([", ".join(g.sites)] if show_sites else []), g.executions, g.with_energy,
             *([_num(g.energy_kwh * energy[1]), _num(g.co2e_kg * co2[1]), _phases(g, co2)]
               if g.with_energy else ["-", "-", "-"]),  # not measured, not 0
             _inputs(g)] for g in groups]
    title = f"Carbon by {result.by}" + (f" ({filters})" if filters else "")
    columns = [result.by, *(["sites"] if show_sites else []), "execs", "w/ energy", energy[0],
               co2[0], f"{co2[0]} by phase", "inputs"]
    # a table folded a letter column at a time at 80 columns: one block per group then
    table(title, columns, rows, narrow=lambda: _blocks(title, groups, show_sites, energy, co2))
    inferred = result.inferred
    if inferred:  # rich wraps them at words, within the terminal
        shown = ", ".join(f"{s.pipeline}/{s.stage} -> {s.phase}" for s in inferred[:INFERRED_SHOWN])
        more = len(inferred) - INFERRED_SHOWN
        console.print("* phase inferred from the stage name (set cmf.phase on the stage or "
                      "execution to label it): " + shown
                      + (f", and {more} more (--json lists them)" if more > 0 else ""),
                      markup=False, highlight=False)
    for note in result.notes:
        console.print(f"note: {note}", markup=False, highlight=False)
