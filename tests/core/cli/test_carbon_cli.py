"""`cmf carbon` on a real store written by the Cmf logger with real energy measurement."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cmf_core import Cmf
from cmf_core.carbon.rollup import PlotUnavailableError
from cmf_core.cli import carbon_cmds
from cmf_core.config import load_settings
from cmf_core.errors import InvalidInputError
from cmf_core.model import Execution
from cmf_core.store import open_store

runner = CliRunner()
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.callback()
def _root() -> None:
    """A command group, as `cmf` is."""


carbon_cmds.register(app)


def _work() -> None:
    sum(i * i for i in range(50_000))


@pytest.fixture
def store_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'cmf.db'}"
    for site, pue, region in (("hpc", 1.2, "FR"), ("cloud", 1.5, "aws:eu-west-1")):
        settings = load_settings(site=site, pue=pue, carbon_region=region)
        with Cmf(pipeline_name="churn", store=url, settings=settings,
                 measure_energy=True) as cmf:
            cmf.create_stage("prepare", properties={"cmf.phase": "preprocessing"})
            with cmf.create_execution("prepare"):
                _work()
            for _ in range(2):
                with cmf.create_execution("train_model"):
                    _work()
            with cmf.create_execution("serve", properties={"cmf.phase": "inference"}):
                _work()
    return url


def invoke(*args: str, columns: int = 200) -> str:
    result = runner.invoke(app, ["carbon", *args], env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    return result.stdout


def energy(url: str) -> list:
    with open_store(url, site="hpc") as s:
        return s.energy()


def test_json_totals_are_the_sum_of_the_records(store_url: str) -> None:
    data = json.loads(invoke("--store", store_url, "--json"))
    records = energy(store_url)
    assert len(records) == 8
    assert data["total"]["co2e_kg"] == math.fsum(r.co2e_kg for r in records)
    assert data["total"]["energy_kwh"] == math.fsum(r.energy_kwh for r in records)
    assert data["by"] == "stage"
    assert {g["key"]: (g["executions"], g["with_energy"]) for g in data["groups"]} == {
        "churn/prepare": (2, 2), "churn/train_model": (4, 4), "churn/serve": (2, 2)}
    train = next(g for g in data["groups"] if g["key"] == "churn/train_model")
    assert train["sites"] == ["cloud", "hpc"]
    assert train["phases"]["training"]["inferred"] == 4
    assert train["inputs"]["pue"] == [1.2, 1.5]
    assert train["inputs"]["regions"] == ["FR", "aws:eu-west-1"]
    assert sum(train["inputs"]["methods"]["cpu"].values()) == 4
    assert train["inputs"]["methods"]["ram"] == {"model": 4}
    assert [(s["stage"], s["source"]) for s in data["stages"]] == [
        ("prepare", "stage"), ("serve", "execution"), ("train_model", "inferred")]


def test_table_shows_groups_total_and_inferred_phases(store_url: str) -> None:
    out = invoke("churn", "--store", store_url, "--by", "site")
    assert "Carbon by site (pipeline churn)" in out
    rows = [line.split("│")[1].strip() for line in out.splitlines() if line.startswith("│")]
    assert [r for r in rows if r] == ["cloud", "hpc", "total"]
    cells = [line.split("│")[-2].strip() for line in out.splitlines() if line.startswith("│")]
    assert {"PUE 1.2", "PUE 1.5", "FR"} <= set(cells)  # the inputs column
    assert ("* phase inferred from the stage name (set cmf.phase on the stage or execution to "
            "label it): churn/train_model -> training") in out


def test_a_narrow_terminal_gets_a_block_per_group(store_url: str) -> None:
    """At 80 columns the table folded names and numbers a few letters a line
    ("churn/t", "rain_mo", "del"); each group is now a few lines under its whole name."""
    from rich.cells import cell_len

    out = invoke("--store", store_url, columns=80)
    lines = out.splitlines()
    assert "│" not in out and max(cell_len(line) for line in lines) <= 80
    data = json.loads(invoke("--store", store_url, "--json"))
    energy = carbon_cmds.unit(data["total"]["energy_kwh"], carbon_cmds.ENERGY_UNITS)
    co2 = carbon_cmds.unit(data["total"]["co2e_kg"], carbon_cmds.CO2_UNITS)
    for g in (*data["groups"], data["total"]):
        head = lines.index(g["key"])  # the whole name on a line of its own
        assert lines[head + 1] == (
            f"  {g['executions']} executions, {g['with_energy']} with energy: "
            f"{carbon_cmds._num(g['energy_kwh'] * energy[1])} {energy[0]}, "
            f"{carbon_cmds._num(g['co2e_kg'] * co2[1])} {co2[0]}")
        assert lines[head + 2] == "  sites: " + ", ".join(g["sites"])
        assert lines[head + 3].startswith(f"  by phase ({co2[0]}): ")
        assert lines[head + 4].startswith("  inputs: PUE 1.2/1.5; ")
    assert invoke("--store", store_url, columns=200).count("│ churn/train_model ") == 1


def test_units_fit_the_amounts_and_unmeasured_groups_say_so(store_url: str) -> None:
    """Seconds-long tasks read 7.773e-09 kWh; each column now takes the unit its total reads
    1 or more in, and a group without energy records shows "-", not a measured 0."""
    from cmf_core.carbon.rollup import CO2_UNITS, ENERGY_UNITS, unit

    assert unit(2.5, ENERGY_UNITS) == ("kWh", 1.0) and unit(0.0025, ENERGY_UNITS)[0] == "Wh"
    assert unit(7.7e-9, ENERGY_UNITS)[0] == "µWh" and unit(1e-15, CO2_UNITS)[0] == "µgCO2e"
    assert unit(0.0, ENERGY_UNITS)[0] == "kWh"
    data = json.loads(invoke("--store", store_url, "--json"))
    energy = unit(data["total"]["energy_kwh"], ENERGY_UNITS)
    out = invoke("--store", store_url)
    assert f"┃ {energy[0]} " in out and "e-0" not in out
    total = next(line for line in out.splitlines() if line.startswith("│ total "))
    assert carbon_cmds._num(data["total"]["energy_kwh"] * energy[1]) in total
    with open_store(store_url, site="hpc") as s:  # a stage that ran without a monitor
        s.put([Execution(pipeline="churn", stage="unmeasured", site="hpc").ended()])
    row = next(line for line in invoke("--store", store_url).splitlines()
               if line.startswith("│ churn/unmeasured "))
    assert [c.strip() for c in row.split("│")[2:8]] == ["hpc", "1", "0", "-", "-", "-"]


def test_filters_and_grouping_options(store_url: str) -> None:
    hpc = json.loads(invoke("--store", store_url, "--json", "--site", "hpc", "--by", "phase"))
    assert [g["key"] for g in hpc["groups"]] == ["training", "inference", "preprocessing"]
    assert hpc["total"]["executions"] == 4 and hpc["filters"]["site"] == "hpc"
    with open_store(store_url, site="hpc") as s:
        hpc_ids = {e.id for e in s.list_executions() if e.site == "hpc"}
        hpc_co2 = math.fsum(r.co2e_kg for r in s.energy(sorted(hpc_ids)))
    assert hpc["total"]["co2e_kg"] == hpc_co2
    assert json.loads(invoke("--store", store_url, "--json", "--until", "2000-01-01")
                      )["total"]["executions"] == 0
    day = json.loads(invoke("--store", store_url, "--json", "--since", "2000-01-01T00:00",
                            "--by", "day"))
    assert len(day["groups"]) >= 1 and day["total"]["executions"] == 8
    unknown = runner.invoke(app, ["carbon", "nope", "--store", store_url, "--json"])
    assert str(unknown.exception) == "no pipeline named 'nope' in this store (known: churn)"


def test_plot_writes_a_png(store_url: str, tmp_path: Path) -> None:
    out = tmp_path / "carbon.png"
    result = runner.invoke(app, ["carbon", "--store", store_url, "--json", "--plot", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["total"]["executions"] == 8  # the note goes to stderr
    assert f"Wrote {out}" in result.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from matplotlib.image import imread

    height, width = imread(out).shape[:2]
    assert width > height > 300


def test_errors(store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = runner.invoke(app, ["carbon", "--store", store_url, "--since", "last week"])
    assert bad.exit_code == 1 and isinstance(bad.exception, InvalidInputError)
    assert "'last week' is not ISO 8601" in str(bad.exception)
    usage = runner.invoke(app, ["carbon", "--store", store_url, "--by", "week"])
    assert usage.exit_code == 2 and "week" in usage.output
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # the plot extra is not installed
    missing = runner.invoke(app, ["carbon", "--store", store_url, "--plot",
                                  str(tmp_path / "c.png")])
    assert missing.exit_code == 1 and isinstance(missing.exception, PlotUnavailableError)
    assert "pip install 'cmf-foundation[plot]'" in str(missing.exception)
