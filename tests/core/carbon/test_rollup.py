"""Carbon roll-ups over real stores, with EnergyRecords made by cmf_core.energy."""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cmf_core.carbon.rollup import (
    GROUP_BY,
    PHASES,
    PlotUnavailableError,
    infer_phase,
    phase_of,
    plot,
    rollup,
    rollup_records,
)
from cmf_core.config import Settings, load_settings
from cmf_core.energy import EnergyMonitor, Measurement, Reading
from cmf_core.errors import InvalidInputError, NotFoundError
from cmf_core.federation.export import Selector, export_bundle
from cmf_core.federation.merge import import_file
from cmf_core.model import EnergyRecord, Execution, Pipeline, Record, Stage
from cmf_core.store import Store, open_store

DAY1 = datetime(2026, 1, 1, 10, tzinfo=UTC).timestamp()
DAY2 = datetime(2026, 1, 2, 10, tzinfo=UTC).timestamp()


def ts(day: float, minutes: int = 0) -> float:
    return day + 60 * minutes


# records -------------------------------------------------------------------------------------
def measured(execution_id: str, settings: Settings, powercap: Path) -> EnergyRecord:
    """A record of a real (short) measurement; no RAPL folder, so the CPU uses the model."""
    with EnergyMonitor(settings, gpu=False, powercap=powercap) as monitor:
        sum(i * i for i in range(20_000))
    assert monitor.measurement is not None
    return monitor.measurement.to_record(execution_id, settings)


def gpu_job(execution_id: str, settings: Settings, gpu_kwh: float) -> EnergyRecord:
    """A record of a GPU job: the readings a monitor gives, through the real carbon path."""
    m = Measurement(
        pid=os.getpid(), started_at=time.time(), duration_s=3600.0, cpu_time_s=3600.0,
        components={
            "cpu": Reading("cpu", 3600 * 12.0, "model", {"watts_per_core": 12.0}),
            "ram": Reading("ram", 3600 * 6.0, "model", {"gib_s": 16 * 3600.0}),
            "gpu": Reading("gpu", gpu_kwh * 3.6e6, "nvml-counter", {"devices": []}),
        },
    )
    return m.to_record(execution_id, settings)


class Sites:
    """What the fixtures wrote: the records per site, and their executions."""

    def __init__(self) -> None:
        self.records: dict[str, list[EnergyRecord]] = {}
        self.executions: list[Execution] = []
        self.stages: list[Stage] = []

    @property
    def all_records(self) -> list[EnergyRecord]:
        return [r for rs in self.records.values() for r in rs]

    def of(self, **where: str) -> list[EnergyRecord]:
        ids = {e.id for e in self.executions
               if all(getattr(e, k) == v for k, v in where.items())}
        return [r for r in self.all_records if r.execution_id in ids]


def hpc_records(tmp_path: Path, out: Sites) -> list[Record]:
    """Pipeline churn at site hpc (PUE 1.1, DE): labelled, inferred and unmeasured stages."""
    s = load_settings(site="hpc", pue=1.1, carbon_region="DE")
    stages = [
        Stage("churn", "prepare", "hpc", properties={"cmf.phase": "preprocessing"}),
        Stage("churn", "train", "hpc"),
        Stage("churn", "predict", "hpc", custom_properties={"cmf.phase": "Inference"}),
    ]
    runs = [
        Execution("churn", "prepare", "hpc", started_at=ts(DAY1, 0)),
        Execution("churn", "prepare", "hpc", started_at=ts(DAY2, 0)),
        Execution("churn", "train", "hpc", started_at=ts(DAY1, 10)),
        Execution("churn", "train", "hpc", started_at=ts(DAY2, 10),
                  properties={"cmf.phase": "retraining"}),
        Execution("churn", "predict", "hpc", started_at=ts(DAY2, 20)),
        Execution("churn", "predict", "hpc", started_at=ts(DAY2, 30)),  # no energy record
    ]
    recs = [measured(runs[0].id, s, tmp_path / "no-rapl"),
            measured(runs[1].id, s, tmp_path / "no-rapl"),
            gpu_job(runs[2].id, s, 2.0), gpu_job(runs[3].id, s, 0.5),
            measured(runs[4].id, s, tmp_path / "no-rapl")]
    out.records["hpc"] = recs
    out.executions += runs
    out.stages += stages
    return [Pipeline("churn", "hpc"), *stages, *runs, *recs]


def cloud_records(tmp_path: Path, out: Sites) -> list[Record]:
    """Pipelines churn and ads at site cloud (PUE 1.4, aws:us-east-1)."""
    s = load_settings(site="cloud", pue=1.4, carbon_region="aws:us-east-1")
    runs = [
        Execution("churn", "train", "cloud", started_at=ts(DAY1, 40)),
        Execution("ads", "scoreUsers", "cloud", started_at=ts(DAY2, 40)),
        Execution("ads", "evaluate", "cloud", started_at=ts(DAY2, 50)),
    ]
    stages = [Stage("churn", "train", "cloud"), Stage("ads", "scoreUsers", "cloud"),
              Stage("ads", "evaluate", "cloud")]
    recs = [gpu_job(runs[0].id, s, 4.0), measured(runs[1].id, s, tmp_path / "no-rapl"),
            measured(runs[2].id, s, tmp_path / "no-rapl")]
    out.records["cloud"] = recs
    out.executions += runs
    out.stages += stages
    return [Pipeline("churn", "cloud"), Pipeline("ads", "cloud"), *stages, *runs, *recs]


@pytest.fixture
def recorded(store: Store, tmp_path: Path) -> Sites:
    sites = Sites()
    store.put(hpc_records(tmp_path, sites))
    store.put(cloud_records(tmp_path, sites))
    return sites


def fsum_co2(records: list[EnergyRecord]) -> float:
    return math.fsum(r.co2e_kg for r in records)


def fsum_kwh(records: list[EnergyRecord]) -> float:
    return math.fsum(r.energy_kwh for r in records)


# phases --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "phase"), [
    ("train", "training"), ("train_model", "training"), ("trainModel", "training"),
    ("XGBoostTrainer", "training"), ("fit", "training"), ("model-fitting", "training"),
    ("retrain", "retraining"), ("retrain_v2", "retraining"), ("finetune", "retraining"),
    ("fine-tune", "retraining"), ("fine_tune_llm", "retraining"), ("FineTuning", "retraining"),
    ("infer", "inference"), ("batch_inference", "inference"), ("predict", "inference"),
    ("serve", "inference"), ("scoreUsers", "inference"),
    ("eval", "evaluation"), ("evaluate_model", "evaluation"), ("test", "evaluation"),
    ("validation", "evaluation"),
    ("prep", "preprocessing"), ("preprocess", "preprocessing"), ("clean_data", "preprocessing"),
    ("feature_engineering", "preprocessing"), ("featurize", "preprocessing"),
    ("ingest", "preprocessing"), ("load", "preprocessing"),
    ("deploy", "other"), ("export", "other"), ("latest_report", "other"),
    ("constrain", "other"),
    # the leftmost keyword decides
    ("evaluate_trained_model", "evaluation"), ("preprocess_for_training", "preprocessing"),
])
def test_infer_phase_keyword_rule(name: str, phase: str) -> None:
    assert infer_phase(name) == phase


def test_labels_beat_inference_and_the_execution_beats_its_stage() -> None:
    stage = Stage("p", "train", "hpc", properties={"cmf.phase": "evaluation"})
    plain = Execution("p", "train", "hpc")
    labelled = Execution("p", "train", "hpc", custom_properties={"cmf.phase": "RETRAINING"})
    assert phase_of(plain) == ("training", "inferred", None)
    assert phase_of(plain, stage) == ("evaluation", "stage", None)
    assert phase_of(labelled, stage) == ("retraining", "execution", None)


def test_an_unknown_label_counts_as_other_with_a_note() -> None:
    e = Execution("p", "train", "hpc", properties={"cmf.phase": "warmup"})
    phase, source, note = phase_of(e)
    assert (phase, source) == ("other", "execution")
    assert note is not None and "'warmup'" in note and ", ".join(PHASES) in note


# totals --------------------------------------------------------------------------------------
def test_total_is_exactly_the_sum_of_the_per_execution_records(store: Store,
                                                               recorded: Sites) -> None:
    r = rollup(store)
    assert len(store.energy()) == 8
    assert r.total.co2e_kg == fsum_co2(store.energy()) == fsum_co2(recorded.all_records)
    assert r.total.energy_kwh == fsum_kwh(recorded.all_records)
    assert (r.total.executions, r.total.with_energy) == (9, 8)
    assert r.total.co2e_kg > 0 and r.total.energy_kwh > 2.0 * 1.1


@pytest.mark.parametrize("by", GROUP_BY)
def test_every_group_is_exactly_the_sum_of_its_records(store: Store, recorded: Sites,
                                                       by: str) -> None:
    r = rollup(store, by=by)
    assert r.items == ()  # folded from the store's rows: no object per execution kept
    items = rollup(store, by=by, keep_items=True).items
    record_of = {rec.execution_id: rec for rec in recorded.all_records}
    for g in r.groups:
        members = [i for i in items if g.key == {
            "stage": f"{i.execution.pipeline}/{i.execution.stage}",
            "pipeline": i.execution.pipeline, "site": i.execution.site, "phase": i.phase,
            "day": i.day}[by]]
        recs = [record_of[i.execution.id] for i in members if i.execution.id in record_of]
        assert g.executions == len(members) and g.with_energy == len(recs)
        assert g.co2e_kg == fsum_co2(recs) and g.energy_kwh == fsum_kwh(recs)
        assert sum(s.executions for s in g.phases.values()) == g.executions
        assert math.fsum(s.co2e_kg for s in g.phases.values()) == pytest.approx(g.co2e_kg,
                                                                              rel=1e-12)
    assert sum(g.executions for g in r.groups) == 9
    assert math.fsum(g.co2e_kg for g in r.groups) == pytest.approx(r.total.co2e_kg, rel=1e-12)


def test_groups_by_stage_site_phase_and_day(store: Store, recorded: Sites) -> None:
    by_stage = {g.key: g for g in rollup(store).groups}
    assert set(by_stage) == {"churn/prepare", "churn/train", "churn/predict", "ads/scoreUsers",
                             "ads/evaluate"}
    train = by_stage["churn/train"]
    assert train.sites == ("cloud", "hpc") and train.executions == 3
    assert train.co2e_kg == fsum_co2(recorded.of(pipeline="churn", stage="train"))
    # one training run at each site was inferred; the hpc rerun is labelled retraining
    assert {p: (s.executions, s.inferred) for p, s in train.phases.items()} == {
        "training": (2, 2), "retraining": (1, 0)}
    assert by_stage["churn/predict"].with_energy == 1
    assert by_stage["churn/predict"].executions == 2

    by_site = {g.key: g for g in rollup(store, by="site").groups}
    assert by_site["hpc"].co2e_kg == fsum_co2(recorded.records["hpc"])
    assert by_site["cloud"].co2e_kg == fsum_co2(recorded.records["cloud"])

    phases = rollup(store, by="phase")
    assert [g.key for g in phases.groups] == ["training", "inference", "retraining",
                                              "preprocessing", "evaluation"]
    assert {g.key: g.phases[g.key].inferred for g in phases.groups} == {
        "training": 2, "inference": 1, "retraining": 0, "preprocessing": 0, "evaluation": 1}

    days = rollup(store, by="day")
    assert [g.key for g in days.groups] == ["2026-01-01", "2026-01-02"]
    assert [g.executions for g in days.groups] == [3, 6]


def test_inputs_list_what_the_numbers_rest_on(store: Store, recorded: Sites) -> None:
    r = rollup(store)
    assert r.total.inputs.pue == (1.1, 1.4)
    assert r.total.inputs.regions == ("DE", "aws:us-east-1")
    assert len(r.total.inputs.intensity_g_per_kwh) == 2
    assert r.total.inputs.methods == {"cpu": {"model": 8}, "ram": {"model": 8},
                                      "gpu": {"nvml-counter": 3}}
    assert r.total.inputs.methods_text() == (
        "cpu: model x 8, ram: model x 8, gpu: nvml-counter x 3")
    train = next(g for g in r.groups if g.key == "churn/train")
    assert train.inputs.to_dict()["methods"]["gpu"] == {"nvml-counter": 3}


def test_records_without_details_still_count_and_say_so() -> None:
    runs = [Execution("p", "train", "edge") for _ in range(3)]
    recs = [EnergyRecord(runs[0].id, "edge", 0.5, 0.2, {}),
            EnergyRecord(runs[1].id, "edge", 0.25, 0.1, {"pue": 1.3, "region": "SE",
                                                          "components": {"cpu": {"kwh": 0.2}}})]
    r = rollup_records(runs, recs)
    assert (r.total.executions, r.total.with_energy) == (3, 2)
    assert r.total.co2e_kg == math.fsum([0.2, 0.1]) and r.total.energy_kwh == 0.75
    assert r.total.inputs.methods == {"cpu": {"unknown": 1}, "details": {"missing": 1}}
    assert (r.total.inputs.pue, r.total.inputs.regions) == ((1.3,), ("SE",))
    assert r.total.inputs.intensity_g_per_kwh == ()


def test_which_phases_were_inferred_is_reported(store: Store, recorded: Sites) -> None:
    r = rollup(store)
    assert {(s.pipeline, s.stage, s.phase) for s in r.inferred} == {
        ("churn", "train", "training"), ("ads", "scoreUsers", "inference"),
        ("ads", "evaluate", "evaluation")}
    sources = {(s.stage, s.phase): s.source for s in r.stages}
    assert sources[("prepare", "preprocessing")] == "stage"
    assert sources[("predict", "inference")] == "stage"
    assert sources[("train", "retraining")] == "execution"
    assert r.to_dict()["stages"][0].keys() == {"pipeline", "stage", "phase", "source",
                                               "executions"}


def test_filters_select_executions(store: Store, recorded: Sites) -> None:
    churn = rollup(store, pipeline="churn")
    assert churn.total.co2e_kg == fsum_co2(recorded.of(pipeline="churn"))
    assert {g.key for g in churn.groups} == {"churn/prepare", "churn/train", "churn/predict"}
    hpc = rollup(store, site="hpc", by="pipeline")
    assert [g.key for g in hpc.groups] == ["churn"]
    assert hpc.total.co2e_kg == fsum_co2(recorded.records["hpc"])
    day2 = rollup(store, since=DAY2 - 3600, until=DAY2 + 3600)
    assert day2.total.executions == 6
    assert day2.total.co2e_kg == fsum_co2([r for r in recorded.all_records if r.execution_id in
                                           {e.id for e in recorded.executions
                                            if e.started_at >= DAY2 - 3600}])
    assert rollup(store, pipeline="nope").groups == ()
    assert rollup(store, pipeline="nope").total.co2e_kg == 0.0


def test_bad_arguments_name_the_value_and_the_choices(store: Store) -> None:
    with pytest.raises(InvalidInputError, match=r"'week'.*stage, pipeline, site, phase, day"):
        rollup(store, by="week")
    with pytest.raises(InvalidInputError, match=r"until \((\S+)\) must be after since") as e:
        rollup(store, since=DAY2, until=DAY1)
    # the times as a reader writes them, not Unix seconds
    assert datetime.fromisoformat(e.value.args[0].split("(")[1].split(")")[0]) == \
        datetime.fromtimestamp(DAY1, UTC)


def test_json_form_is_plain_data(store: Store, recorded: Sites) -> None:
    import json

    data = rollup(store, pipeline="churn", by="site").to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["filters"] == {"pipeline": "churn", "site": None, "since": None, "until": None}
    assert data["total"]["co2e_kg"] == fsum_co2(recorded.of(pipeline="churn"))
    assert data["groups"][0]["phases"]["training"]["inferred"] >= 1


# federation ----------------------------------------------------------------------------------
def _site_store(tmp_path: Path, name: str) -> Store:
    return open_store(f"sqlite:///{tmp_path / name}.db", site=name)


def _bundle(store: Store, path: Path) -> Path:
    with path.open("wb") as fh:
        for chunk in export_bundle(store, Selector()):
            fh.write(chunk)
    return path


@pytest.fixture
def two_sites(tmp_path: Path) -> Iterator[tuple[Store, Store, Sites]]:
    sites = Sites()
    a, b = _site_store(tmp_path, "hpc"), _site_store(tmp_path, "cloud")
    a.put(hpc_records(tmp_path, sites))
    b.put(cloud_records(tmp_path, sites))
    yield a, b, sites
    a.close()
    b.close()


def test_merged_stores_count_each_execution_once(tmp_path: Path,
                                                 two_sites: tuple[Store, Store, Sites]) -> None:
    a, b, sites = two_sites
    bundle_a, bundle_b = _bundle(a, tmp_path / "a.jsonl"), _bundle(b, tmp_path / "b.jsonl")
    with _site_store(tmp_path, "hub") as hub:
        import_file(hub, bundle_a)
        import_file(hub, bundle_b)
        first = rollup(hub, by="site")
        import_file(hub, bundle_a)  # the same records again, in another order
        import_file(hub, bundle_b)
        import_file(hub, bundle_a)
        again = rollup(hub, by="site")
        assert len(hub.energy()) == 8
        assert again.to_dict() == first.to_dict()
        assert again.total.co2e_kg == fsum_co2(sites.all_records)
        assert again.total.energy_kwh == fsum_kwh(sites.all_records)
        by_site = {g.key: g for g in again.groups}
        # each site's part of the merged roll-up is exactly that site's own roll-up
        assert by_site["hpc"].co2e_kg == rollup(a).total.co2e_kg
        assert by_site["cloud"].co2e_kg == rollup(b).total.co2e_kg
        assert by_site["hpc"].executions == 6 and by_site["cloud"].executions == 3
    # one site imports the other (and its own records come back from a third store)
    import_file(b, bundle_a)
    import_file(b, bundle_a)
    assert rollup(b).total.co2e_kg == fsum_co2(sites.all_records)


def test_rollup_records_drops_repeats_and_does_not_depend_on_order(
        store: Store, recorded: Sites) -> None:
    execs = store.list_executions()
    recs = store.energy()
    once = rollup_records(execs, recs, recorded.stages, by="site")
    twice = rollup_records([*execs, *reversed(execs)], [*reversed(recs), *recs],
                           recorded.stages, by="site")
    assert twice.total.co2e_kg == once.total.co2e_kg
    assert [(g.key, g.co2e_kg, g.executions) for g in twice.groups] == [
        (g.key, g.co2e_kg, g.executions) for g in once.groups]
    assert twice.notes == ("8 repeated energy record(s) of the same execution were counted "
                           "once",)
    changed = EnergyRecord(recs[0].execution_id, recs[0].site, recs[0].energy_kwh * 2,
                           recs[0].co2e_kg * 2, recs[0].details)
    clash = rollup_records(execs, [*recs, changed], by="site")
    assert clash.total.co2e_kg == once.total.co2e_kg
    assert any("two different energy records" in n for n in clash.notes)


def test_regroup_uses_the_same_executions(store: Store, recorded: Sites) -> None:
    r = rollup(store, pipeline="churn")
    by_day = r.regroup("day")
    assert by_day.by == "day" and by_day.filters == r.filters
    assert by_day.total.co2e_kg == r.total.co2e_kg
    assert by_day.to_dict() == rollup(store, pipeline="churn", by="day").to_dict()


# plot ----------------------------------------------------------------------------------------
def _pixels(path: Path) -> set[tuple[int, int, int]]:
    from matplotlib.image import imread

    img = imread(path)
    assert img.shape[1] > img.shape[0] > 300
    rgb = (img[::2, ::2, :3] * 255).round().astype(int).reshape(-1, 3)
    return {(r, g, b) for r, g, b in rgb.tolist()}


def test_plot_draws_bars_coloured_by_site(tmp_path: Path, store: Store,
                                          recorded: Sites) -> None:
    out = plot(rollup(store), tmp_path / "carbon.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    colours = _pixels(out)
    assert (31, 119, 180) in colours and (255, 127, 14) in colours  # tab10: two sites
    one_site = plot(rollup(store, site="hpc", by="phase"), tmp_path / "hpc.png")
    assert (255, 127, 14) not in _pixels(one_site)


def test_plot_leaves_out_groups_without_energy_records(tmp_path: Path, store: Store,
                                                      recorded: Sites) -> None:
    """A stage that ran without a monitor (a DAG or flow run) was drawn as an empty bar, as if
    it had been measured at 0; it is left out now (the title says so), and the axis takes the
    unit its total reads 1 or more in."""
    from cmf_core.carbon.rollup import CO2_UNITS, plotted, unit

    store.put([Execution(pipeline="churn", stage="whole-dag", site="hpc").ended()])
    r = rollup(store)
    assert "churn/whole-dag" in [g.key for g in r.groups]
    groups, co2 = plotted(r)
    assert [g.key for g in groups] == [g.key for g in r.groups if g.key != "churn/whole-dag"]
    assert co2 == unit(r.total.co2e_kg, CO2_UNITS)
    assert r.total.co2e_kg * co2[1] >= 1 or co2[0] == "µgCO2e"
    assert plot(r, tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    store.put([Pipeline("bare", "hpc"), Execution(pipeline="bare", stage="s", site="hpc").ended()])
    with pytest.raises(NotFoundError, match="none of the matching executions has an energy"):
        plot(rollup(store, pipeline="bare"), tmp_path / "none.png")


def test_plot_errors_name_the_fix(tmp_path: Path, store: Store, recorded: Sites,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    r = rollup(store)
    with pytest.raises(InvalidInputError, match=r"\.png"):
        plot(r, tmp_path / "carbon.svg")
    with pytest.raises(InvalidInputError, match="does not exist"):
        plot(r, tmp_path / "missing" / "carbon.png")
    with pytest.raises(NotFoundError, match="nothing to plot"):
        plot(rollup(store, pipeline="nope"), tmp_path / "empty.png")
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if the plot extra were missing
    with pytest.raises(PlotUnavailableError, match=r"pip install 'cmf-foundation\[plot\]'"):
        plot(r, tmp_path / "carbon.png")
    assert not (tmp_path / "carbon.png").exists()


# HTTP ----------------------------------------------------------------------------------------
def test_http_route_returns_the_rollup(store: Store, recorded: Sites, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient

    from cmf_core.server import app as server_app
    from cmf_core.server.routers import carbon

    # no web UI mount at "/", which would shadow a router included after create_app
    monkeypatch.setattr(server_app, "STATIC_DIR", tmp_path / "no-ui")
    app = server_app.create_app(store, load_settings())
    if not any(getattr(r, "path", None) == "/api/v1/carbon" for r in app.routes):
        app.include_router(carbon.router)  # until create_app includes it
    with TestClient(app) as client:
        resp = client.get("/api/v1/carbon", params={"pipeline": "churn", "group_by": "site"})
        assert resp.status_code == 200, resp.text
        assert resp.json() == rollup(store, pipeline="churn", by="site").to_dict()
        resp = client.get("/api/v1/carbon", params={"since": "2026-01-02T00:00:00Z"})
        assert resp.json()["total"]["executions"] == 6
        assert resp.json()["by"] == "stage"
        bad = client.get("/api/v1/carbon", params={"group_by": "week"})
        assert bad.status_code == 400 and "group_by" in bad.json()["message"]
        bad = client.get("/api/v1/carbon", params={"since": "yesterday"})
        assert bad.status_code == 400 and "since" in bad.json()["message"]



def test_a_monitor_that_measured_nothing_counts_as_not_measured(tmp_path: Path) -> None:
    """A monitor that could read nothing (here: stopped without being started; also a monitor
    that breaks at start or stop) gives a record saying so, not a measured 0 kWh: roll-ups
    leave it out of the sums and the counts with energy, and a note keeps the reason."""
    settings = load_settings(site="hpc", pue=1.0, carbon_intensity=100.0)
    store = open_store(f"sqlite:///{tmp_path / 'u.db'}", site="hpc")
    try:
        measured = Execution("p", "train", "hpc", started_at=ts(0), ended_at=ts(0, 5))
        broken = Execution("p", "train", "hpc", started_at=ts(0, 1), ended_at=ts(0, 6))
        good = Measurement(pid=1, started_at=ts(0), duration_s=300.0, cpu_time_s=300.0,
                           components={"cpu": Reading("cpu", 3.6e6, "model")})
        failed = EnergyMonitor(settings).stop().to_record(broken.id, settings)
        assert failed.energy_kwh == 0.0 and not failed.measured
        assert any("without start" in n for n in failed.details["notes"])
        store.put([Pipeline("p", "hpc", 1.0), Stage("p", "train", "hpc", 1.0), measured,
                   broken, good.to_record(measured.id, settings), failed])
        r = rollup(store, pipeline="p")
        assert (r.total.executions, r.total.with_energy, r.total.energy_kwh) == (2, 1, 1.0)
        assert any(broken.id in n and "without start" in n for n in r.notes)
        only_broken = rollup_records([broken], [failed])
        assert only_broken.total.with_energy == 0 and only_broken.total.energy_kwh == 0.0
    finally:
        store.close()
