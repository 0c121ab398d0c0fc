"""The recommender benchmark scripts in smoke mode: build (HPO recorded into CMF) and
leave-one-task-out replay."""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from cmf_core.recommend import knowledge
from cmf_core.recommend.knowledge import KnowledgeBase, Run, run_id
from cmf_core.recommend.space import config_key
from cmf_core.store import open_store
from tests.core.recommend.conftest import CONFIGS, make_task

ROOT = Path(__file__).resolve().parents[3]
BENCH = ROOT / "benchmarks" / "recommender"


#: Leave-one-task-out calibrations by the task ids of the knowledge base calibrated: both smoke
#: runs below calibrate the same three leave-one-out bases (calibrate() is deterministic), so the
#: second run reuses the first's; test_loto_smoke_report checks one of them against a fresh one.
_CALIBRATIONS: dict[tuple[str, ...], dict[str, Any]] = {}


def _load_loto() -> ModuleType:
    """benchmarks/recommender/loto.py with its calibrate() remembering its results."""
    loto = _load("loto")
    calibrate = loto.calibrate

    def remembered(kb: KnowledgeBase) -> dict[str, Any]:
        key = tuple(sorted(kb.tasks))
        if key not in _CALIBRATIONS:
            _CALIBRATIONS[key] = calibrate(kb)
        return copy.deepcopy(_CALIBRATIONS[key])

    loto.calibrate = remembered
    return loto


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=float)


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_build_kb_records_trials_into_cmf(tmp_path: Path) -> None:
    build = _load("build_kb")
    url = f"sqlite:///{tmp_path / 'kb.db'}"
    out = tmp_path / "kb.json.gz"
    assert build.main(["--smoke", "--tasks", "iris", "ts-spikes-p24", "--jobs", "1",
                       "--cache", str(tmp_path / "cache"), "--store-url", url,
                       "--out", str(out)]) == 0
    kb = knowledge.load(out)
    assert sorted(t.name for t in kb.tasks.values()) == ["iris", "ts-spikes-p24"]
    assert kb.calibration["metric"]["name"] and "validation" in kb.calibration
    with open_store(url, "kb-builder") as store:
        assert {p.name for p in store.list_pipelines()} == {"hpo-iris", "hpo-ts-spikes-p24"}
        execs = store.list_executions()
        assert len(execs) == kb.n_runs
        e = execs[0]
        assert "model" in e.params and e.properties["cmf.task"]["name"] in {"iris",
                                                                           "ts-spikes-p24"}
        assert {m.name for m in store.metrics([e.id])} == {"score", "fit_time_s"}


def test_extra_tasks_are_a_fixed_random_draw_apart_from_the_corpus() -> None:
    import numpy as np

    sys.path.insert(0, str(BENCH))
    corpus = _load("corpus")
    first, again = corpus.extra(), corpus.extra()
    assert [t.name for t in first] == [t.name for t in again]
    assert len(first) == sum(corpus.EXTRA.values()) == 40
    for category, n in corpus.EXTRA.items():
        assert sum(t.category == category for t in first) == n
    groups = [t.group for t in first]
    assert len(set(groups)) == len(groups)  # each its own group ...
    assert not set(groups) & {t.group for t in corpus.corpus()}  # ... none a target's
    # the same data on every load (the scores in the cache stay valid)
    for task, twin in zip(first[::13], again[::13], strict=True):
        a, b = task.load(), twin.load()
        for x, y in ((a.X, b.X), (a.y, b.y), (a.series, b.series)):
            assert (x is None and y is None) or np.array_equal(x, y)
    assert corpus.extra(seed=1)[0].load().X is not None
    assert [t.name for t in corpus.extra(seed=1)] != [t.name for t in first]


def test_retrain_twins_are_a_fixed_share_of_each_tasks_own_data() -> None:
    import numpy as np

    sys.path.insert(0, str(BENCH))
    corpus = _load("corpus")
    originals, twins = corpus.corpus(), corpus.retrain()
    assert [t.name for t in twins] == [f"{t.name}@retrain" for t in originals]
    assert [t.category for t in twins] == [t.category for t in originals]
    groups = [t.group for t in twins]
    assert len(set(groups)) == len(groups)  # each its own group: kept when the original is out
    assert not set(groups) & {t.group for t in originals}
    for task, twin in [(originals[i], twins[i]) for i in (0, 4, 24, 33)]:  # iris, telco, ts
        a, b, again = task.load(), twin.load(), twin.load()
        if a.series is not None:
            m = len(b.series)
            assert m == int(corpus.RETRAIN_SHARE * len(a.series))
            at = next(i for i in range(len(a.series) - m + 1)
                      if np.array_equal(a.series[i:i + m], b.series))  # a contiguous stretch
            assert np.array_equal(a.labels[at:at + m], b.labels) and b.labels.any()
            assert np.array_equal(b.series, again.series)
            continue
        assert abs(len(b.X) - corpus.RETRAIN_SHARE * len(a.X)) <= 3
        rows = {r.tobytes() for r in np.nan_to_num(a.X, nan=-1e300)}
        assert all(r.tobytes() in rows for r in np.nan_to_num(b.X, nan=-1e300))  # its own rows
        assert np.array_equal(b.X, again.X, equal_nan=True)
        if task.category == "classification":
            assert set(np.unique(b.y)) == set(np.unique(a.y))


@pytest.mark.slow
def test_build_kb_extended_scores_an_extra_task(tmp_path: Path) -> None:
    build = _load("build_kb")
    out = tmp_path / "kb.json.gz"
    assert build.main(["--smoke", "--extended", "--tasks", "iris", "x01-mixed", "--jobs", "1",
                       "--cache", str(tmp_path / "cache"), "--no-store",
                       "--out", str(out)]) == 0
    kb = knowledge.load(out)
    assert sorted(t.name for t in kb.tasks.values()) == ["iris", "x01-mixed"]
    assert kb.n_runs > 30
    # without --extended the extra tasks are unknown
    with pytest.raises(SystemExit):
        build.main(["--smoke", "--tasks", "x01-mixed", "--no-store", "--out", str(out)])
    # the same for the retraining twins
    assert build.main(["--smoke", "--retrain", "--tasks", "iris@retrain", "--jobs", "1",
                       "--cache", str(tmp_path / "cache"), "--no-store",
                       "--out", str(out)]) == 0
    assert [t.name for t in knowledge.load(out).tasks.values()] == ["iris@retrain"]
    with pytest.raises(SystemExit):
        build.main(["--smoke", "--tasks", "iris@retrain", "--no-store", "--out", str(out)])


@pytest.mark.slow
@pytest.mark.skipif(not knowledge.shipped().tasks, reason="shipped knowledge base not built")
def test_loto_smoke_report(tmp_path: Path) -> None:
    loto = _load_loto()
    assert loto.main(["--smoke", "--jobs", "1", "--out", str(tmp_path), "--no-plots"]) == 0
    report = json.loads((tmp_path / "loto-smoke.json").read_text())
    cfg = report["config"]
    assert (cfg["n_tasks"], cfg["seeds"], cfg["budget"]) == (3, 2, 15)
    arms = report["analysis"]["arms"]
    assert set(arms) == {"cold"} | {f"{a}@{k}" for a in ("kg", "random", "portfolio")
                                    for k in (1, 3, 5, 10)}
    for name, entry in arms.items():
        assert 1 <= entry["mean_trials"] <= 16
        if name != "cold":
            lo, hi = entry["speedup_ci95"]
            assert lo <= entry["speedup_geomean"] <= hi
    assert len(report["analysis"]["per_task"]) == 3
    assert {t["category"] for t in report["tasks"]} == {"classification", "regression",
                                                        "anomaly_detection"}
    assert report["seeds_first_ok"] is True
    table = (tmp_path / "loto-smoke.md").read_text()
    assert len(re.findall(r"^\| kg \| \d+ \|", table, flags=re.M)) == 4
    # seeded arms start exactly with the recommended configurations, from a knowledge base
    # calibrated without the target and its group
    from cmf_core.recommend import recommend
    from cmf_core.recommend.calibrate import calibrate

    kb = knowledge.shipped()
    for i, t in enumerate(report["tasks"]):
        assert len(t["seed_configs"]["kg"]) == 10
        rest = kb.without(task_ids=[t["task_id"]], groups=[kb.tasks[t["task_id"]].group])
        used = _CALIBRATIONS[tuple(sorted(rest.tasks))]  # what the run calibrated
        assert t["task_id"] not in rest.tasks and t["threshold"] == used["threshold"]
        if i == 0:  # one afresh (each takes ~12 s): the run's is the same
            assert _json(calibrate(rest)) == _json(used)
        rest.calibration = copy.deepcopy(used)
        rec = recommend(kb.tasks[t["task_id"]], k=10, knowledge=rest)
        assert [config_key(c) for c in rec.configs()] == t["seed_configs"]["kg"]


@pytest.mark.slow
@pytest.mark.skipif(not knowledge.shipped().tasks, reason="shipped knowledge base not built")
def test_loto_smoke_adaptive(tmp_path: Path) -> None:
    loto = _load_loto()
    assert loto.main(["--smoke", "--jobs", "1", "--out", str(tmp_path), "--no-plots",
                      "--adaptive", "--ks", "5"]) == 0
    report = json.loads((tmp_path / "loto-smoke-adaptive.json").read_text())
    assert report["config"]["adaptive"] is True and report["seeds_first_ok"] is True
    assert set(report["analysis"]["arms"]) == {"cold", "kg@5", "random@5", "portfolio@5"}
    for t in report["tasks"]:
        assert set(t["adaptive"]) == {"beta", "covered_weight", "sigma", "refine_after"}
        static, adaptive = t["seed_configs"]["kg"], t["seed_configs"]["kg_adaptive"]
        for given in adaptive:  # per TPE seed: 5 distinct configurations, the first static
            assert len(given) == len(set(given)) == 5 and given[0] == static[0]


def test_family_bound_on_a_task_whose_family_medians_mislead(toy_kb: KnowledgeBase) -> None:
    """Toy knowledge base (conftest) plus task ``c``: its only hit is the last kNN
    configuration, while every logistic regression scores just below it, so the family
    medians and the top configurations name logreg and only the oracle finds the kNN hit
    (6th in the kNN order learned from the b tasks)."""
    bound = _load("family_bound")
    c = make_task("c", (0.5, 0.5, 0.5))
    families = [cfg["model"] for cfg in CONFIGS]
    assert families.count("logreg") == 14 and families.count("knn") == 6
    scores = [0.79 if f == "logreg" else 0.5 for f in families]
    scores[-1] = 0.8
    runs = {t: toy_kb.runs[t] for t in toy_kb.tasks}
    runs[c.id] = [Run(cfg, s, run_id(c.id, cfg), 0.1) for cfg, s in zip(CONFIGS, scores,
                                                                          strict=True)]
    kb = KnowledgeBase([*toy_kb.tasks.values(), c], runs)
    rows = bound.family_bounds(kb)
    assert rows["oracle"] == {"k=1": 6, "k=3": 6, "k=5": 6, "k=10": 7,
                              "names the oracle family": 7}
    for choice in ("family medians", "top configurations"):
        assert rows[choice] == {"k=1": 6, "k=3": 6, "k=5": 6, "k=10": 6,
                                "names the oracle family": 6}
    rnd = rows["oracle family, random order"]
    # a tasks: 1 hit among 14 logreg configurations; b tasks and c: 1 among 6 kNN ones
    assert rnd["k=1"] == pytest.approx(3 / 14 + 4 / 6)
    assert rnd["k=5"] == pytest.approx(3 * 5 / 14 + 4 * 5 / 6)
    assert rnd["k=10"] == pytest.approx(3 * 10 / 14 + 4)
    assert bound.main([]) == 0  # the shipped knowledge base, as in RESULTS.md
