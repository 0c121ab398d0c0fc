"""``rollup(store)`` folds the store's rows as they stream in (``Store.carbon_rows``) instead of
building an Execution and an EnergyRecord per execution: it must give exactly what the object
path gives (``rollup(store, keep_items=True)``, i.e. ``rollup_records`` over
``list_executions`` + ``energy``, the reference), on real SQLite and PostgreSQL stores."""

from __future__ import annotations

import json
import math
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cmf_core.carbon.rollup import GROUP_BY, PHASE_KEY, Rollup, _Sum, plot, rollup, rollups
from cmf_core.errors import InvalidInputError
from cmf_core.model import EnergyRecord, Execution, Pipeline, Record, Stage
from cmf_core.store import ExecutionFilter, Store
from tests.support.sql import executed

from .test_rollup import Sites, cloud_records, hpc_records

DAY0 = datetime(2026, 3, 1, tzinfo=UTC).timestamp()
SITES = ("hpc", "cloud", "edge")
STAGE_NAMES = ("ingest", "trainModel", "fine-tune", "serve", "eval", "misc", "Predict")
LABELS = ("training", "Inference ", "retraining", "bogus", 3, None)


def _details(rng: random.Random, kwh: float) -> dict[str, Any]:
    """Energy details as producers write them, and odd ones (another producer, mixed types)."""
    shape = rng.randrange(8)
    if shape == 0:
        return {}  # no details at all: counted as "details: missing"
    if shape == 1:
        return {"components": "cpu", "pue": "1.3"}  # not a mapping; a PUE as text
    comps: dict[str, Any] = {"cpu": {"kwh": kwh, "method": rng.choice(("model", "rapl"))}}
    if rng.random() < 0.4:
        comps["gpu"] = {"kwh": kwh / 2, "method": rng.choice(("nvml-counter", None))}
    if rng.random() < 0.1:
        comps["ram"] = 4  # a component that is not a mapping
    d: dict[str, Any] = {
        "components": comps,
        "pue": rng.choice((1.2, 1, 1.0, 1.4, True, [1.1])),  # 1 and 1.0; a bool and a list
        "intensity_g_per_kwh": rng.choice((350.0, 56, 56.0, 0.0)),
        "intensity_source": rng.choice(("static", "electricitymaps", None)),
        "region": rng.choice(("FR", "DE", "aws:us-east-1", 7, "Zürich")),
        "notes": rng.choice(([], ["fell back to the model"])),
    }
    if shape == 2:  # a monitor that measured nothing
        d = {"measured": False, **rng.choice(({"notes": ["stopped without start"]},
                                              {"notes": []}, {"notes": "text"}, {}))}
    if shape == 3:
        d["measured"] = rng.choice((True, "no", 0))  # only False means unmeasured
    return d


def random_records(seed: int, n: int = 400) -> list[Record]:
    rng = random.Random(seed)
    records: list[Record] = []
    pipelines = [f"p{i}" for i in range(rng.randint(2, 4))]
    for p in pipelines:
        site = rng.choice(SITES)
        records.append(Pipeline(p, site))
        for name in rng.sample(STAGE_NAMES, 4):
            label = rng.choice(LABELS)
            props = {} if label is None else {PHASE_KEY: label}
            where = rng.choice(("properties", "custom_properties"))
            records.append(Stage(p, name, site, **{where: props}))  # type: ignore[arg-type]
    stages = [(s.pipeline, s.name) for s in records if isinstance(s, Stage)]
    stages.append((pipelines[0], "no-stage-record"))  # an execution of a stage never written
    starts = [DAY0 + rng.uniform(0, 6 * 86400) for _ in range(n // 3)]
    # a day's first instant, its last second, and 0.4 µs before midnight (the next day, as
    # datetime rounds to µs)
    starts += [DAY0 + 86400, DAY0 + 86400 - 0.5, DAY0 + 2 * 86400 - 4e-7]
    for i in range(n):
        p, st = rng.choice(stages)
        label = rng.choice(LABELS + (None,) * 6)
        props = {} if label is None else {PHASE_KEY: label}
        where = rng.choice(("properties", "custom_properties"))
        extra = rng.choice(({}, {"note": "phase of the moon"}, {"café": "\u00e9t\u00e9"}))
        start = starts[-1 - i] if i < 3 else rng.choice(starts)  # equal starts too
        e = Execution(p, st, rng.choice(SITES), started_at=start,
                      **{where: {**extra, **props}})  # type: ignore[arg-type]
        records.append(e)
        if rng.random() < 0.15:
            continue  # no energy record
        kwh = rng.choice((0.0, 1e-9, 0.1, 1e10, rng.uniform(0, 3), 0.1 + 1e-16))
        records.append(EnergyRecord(e.id, e.site, kwh, kwh * rng.choice((0.35, 0.056, 0.0)),
                                    _details(rng, kwh)))
    return records


def _same(fold: Rollup, ref: Rollup) -> None:
    """Exactly equal: every group, split, input, stage and note, and the JSON (which tells 1 from
    1.0 and shows every bit of a float)."""
    assert fold.items == () and len(ref.items) == ref.total.executions
    assert fold.groups == ref.groups
    assert fold.total == ref.total
    assert fold.stages == ref.stages
    assert fold.notes == ref.notes
    assert fold.site_co2e == ref.site_co2e
    assert json.dumps(fold.to_dict()) == json.dumps(ref.to_dict())


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_fold_gives_exactly_what_the_object_path_gives(store: Store, seed: int) -> None:
    store.put(random_records(seed))
    first = store.list_executions()[0]
    filters: list[dict[str, Any]] = [
        {}, {"pipeline": "p1"}, {"site": "cloud"}, {"pipeline": "p0", "site": "edge"},
        {"since": DAY0 + 86400, "until": DAY0 + 3 * 86400},
        {"since": first.started_at}, {"until": first.started_at}, {"pipeline": "nope"}]
    for f in filters:
        for by in GROUP_BY:
            _same(rollup(store, by=by, **f), rollup(store, by=by, keep_items=True, **f))
    r = rollup(store)
    assert r.total.executions == 400 and 0 < r.total.with_energy < 400
    assert any("saying nothing was measured" in n for n in r.notes)
    assert any("is not one of" in n for n in r.notes)
    assert {s.source for s in r.stages} == {"execution", "stage", "inferred"}
    assert len(r.groups) >= 5


def test_the_fold_on_the_fixture_stores(store: Store, tmp_path: Path) -> None:
    sites = Sites()
    store.put(hpc_records(tmp_path, sites))
    store.put(cloud_records(tmp_path, sites))
    for by in GROUP_BY:
        for f in ({}, {"pipeline": "churn"}, {"site": "hpc"}):
            _same(rollup(store, by=by, **f), rollup(store, by=by, keep_items=True, **f))


def test_carbon_rows_streams_what_the_reference_implementation_reads(store: Store) -> None:
    """The SQL backends' one joined query gives the rows the base Store's reference
    (list_executions + energy) gives, in the same order, with the same stored JSON."""
    store.put(random_records(4, n=1200))  # more than one IN_CHUNK of ids for the reference
    for where in (None, ExecutionFilter(pipeline="p1"), ExecutionFilter(site="hpc"),
                  ExecutionFilter(since=DAY0 + 86400, until=DAY0 + 2 * 86400)):
        got = list(store.carbon_rows(where))
        ref = list(Store.carbon_rows(store, where))
        assert got == ref and got
        assert [r.id for r in got] == [e.id for e in store.list_executions(where)]


def test_rollup_reads_one_joined_statement_not_an_object_per_record(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """The roll-up used to read every execution (list_executions) and then every energy record
    (energy, 500 ids a statement), building an object of each; now it streams one statement."""
    store.put(random_records(5, n=1200))

    def refused(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("rollup read objects")

    monkeypatch.setattr(store, "list_executions", refused)
    monkeypatch.setattr(store, "energy", refused)
    with executed(store) as seen:
        r = rollup(store, by="day")
    statements = [statement for statement, _ in seen]
    assert r.total.executions == 1200
    reads = [s for s in statements if "executions" in s]
    assert len(reads) == 1 and "LEFT OUTER JOIN energy" in reads[0]
    assert not any(s.lstrip().upper().startswith("SELECT") and "FROM energy" in s
                   for s in statements)


def test_regroup_and_plot_work_without_items(store: Store, tmp_path: Path) -> None:
    store.put(random_records(6, n=120))
    r = rollup(store, pipeline="p0")
    assert r.items == ()
    by_day = r.regroup("day")
    assert by_day.filters == r.filters and by_day.total == r.total
    _same(by_day, rollup(store, pipeline="p0", by="day", keep_items=True))
    kept = rollup(store, pipeline="p0", keep_items=True)
    assert kept.regroup("site").to_dict() == r.regroup("site").to_dict()
    assert plot(r, tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("values", [
    [0.1] * 10, [0.1] * 1000, [1e-20, 1.0, 1e20] * 300, [-0.0] * 600, [1e16, 1.0, -1e16],
    [1e-300, 1e300, -1e300, 3.0, 0.1, 0.2, 0.3],
    [-0.0], [], [float("nan"), 1.0], [float("inf"), 2.0, 1e308, -1e308],
])
def test_exact_running_sums_are_fsum(values: list[float]) -> None:
    """Partials of running sums, joined, give math.fsum of all values to the last bit (and its
    NaN and inf), however the values were split among the sums."""
    rng = random.Random(len(values))
    values = [*values, *(rng.uniform(-1, 1) * 10 ** rng.randint(-20, 20) for _ in range(50))]
    sums = [_Sum() for _ in range(3)]
    for v in values:
        rng.choice(sums).add(v)
    got = math.fsum([p for s in sums for p in s.values] + [x for s in sums for x in s.special])
    want = math.fsum(values)
    assert got == want or (math.isnan(got) and math.isnan(want))
    assert math.copysign(1, got) == math.copysign(1, want)


@pytest.mark.parametrize("seed", [7, 8])
def test_rollups_give_each_grouping_from_one_pass(store: Store, seed: int) -> None:
    """The web UI's carbon page needs the roll-up by its grouping and by day: ``rollups``
    gives both (any groupings) from one read of the store, each exactly ``rollup(by=)``."""
    store.put(random_records(seed))
    first = store.list_executions()[0]
    for f in ({}, {"pipeline": "p1"}, {"site": "cloud"}, {"since": first.started_at},
              {"pipeline": "nope"}):
        with executed(store) as seen:
            got = rollups(store, [*GROUP_BY, "day"], **f)
        reads = [s for s, _ in seen if "FROM executions" in s]
        assert len(reads) == 1, reads
        assert list(got) == list(GROUP_BY)
        for by in GROUP_BY:
            want = rollup(store, by=by, **f)
            assert got[by].by == by
            assert got[by].groups == want.groups and got[by].total == want.total
            assert got[by].site_co2e == want.site_co2e
            assert json.dumps(got[by].to_dict()) == json.dumps(want.to_dict())
            assert got[by].regroup("site").to_dict() == want.regroup("site").to_dict()
    with pytest.raises(InvalidInputError, match="cannot group by 'week'"):
        rollups(store, ["day", "week"])
    with pytest.raises(InvalidInputError, match="at least one grouping"):
        rollups(store, [])
