"""Scenario 2: AIOps anomaly detection; the recommender seeds the search for a new series.

An operations team has already searched anomaly detectors for a few of its metric series (CPU,
queue depth, error rate); every trial of those searches was recorded in the site's CMF store
(``record_trial``: the configuration, its score and the series' task description). A new
series arrives (checkout latency). The recommender describes it (length, seasonality, spikes,
entropy, ...), finds the most similar past tasks, in the store and in the shipped knowledge
base, and proposes seed configurations with the runs behind them. The search is then run twice
with the same budget: seeded with the recommendations, and cold (plain TPE).

The pipeline steps are recorded with :class:`cmf_core.Cmf` (lineage, parameters, metrics,
energy): describe -> recommend -> search (seeded, and cold for comparison).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # examples/

from aiops.search import SearchResult, compare, search

SITE = "ops"
PIPELINE = "aiops-anomaly-search"
# past series of this site: (name, period, noise, anomaly kind, seed)
PAST = (("cpu-utilisation", 48, 0.25, "spikes", 11), ("queue-depth", 96, 0.35, "shift", 12),
        ("error-rate", 24, 0.2, "burst", 13))
NEW = ("checkout-latency", 48, 0.3, "spikes", 21)


def make_series(n: int, period: int, noise: float, kind: str, seed: int) -> tuple[
        np.ndarray, np.ndarray]:
    """A seeded seasonal metric (daily cycle, slow trend, AR(1) noise) with labelled anomalies:
    ``spikes`` (single points), ``shift`` (level shifts of 10-30 steps) or ``burst`` (variance
    bursts)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=float)
    ar = np.zeros(n)
    e = rng.normal(0, noise, n)
    for i in range(1, n):
        ar[i] = 0.6 * ar[i - 1] + e[i]
    x = 2.0 + np.sin(2 * np.pi * t / period) + 0.3 * np.sin(4 * np.pi * t / period) \
        + 0.0004 * t + ar
    labels = np.zeros(n, dtype=int)
    n_anomalies = max(3, n // 150)
    starts = rng.choice(np.arange(period, n - 40), size=n_anomalies, replace=False)
    for s in starts:
        if kind == "spikes":
            x[s] += rng.choice([-1, 1]) * rng.uniform(2.5, 4.0)
            labels[s] = 1
        elif kind == "shift":
            length = int(rng.integers(10, 30))
            x[s:s + length] += rng.choice([-1, 1]) * rng.uniform(1.5, 2.5)
            labels[s:s + length] = 1
        else:
            length = int(rng.integers(10, 30))
            x[s:s + length] += rng.normal(0, 1.5, length)
            labels[s:s + length] = 1
    return x, labels


def objective_for(series: np.ndarray, labels: np.ndarray) -> Any:
    from sklearn.metrics import roc_auc_score

    from cmf_core.recommend.space import anomaly_scores

    def objective(config: Any) -> float:
        return float(roc_auc_score(labels, anomaly_scores(config, series)))

    return objective


def write_series(path: Path, series: np.ndarray, labels: np.ndarray) -> None:
    np.savetxt(path, np.column_stack([np.arange(len(series)), series, labels]), delimiter=",",
               header="t,value,anomaly", comments="", fmt=["%d", "%.5f", "%d"])


@dataclass
class AiopsResult:
    out: Path
    store_url: str
    task: dict[str, Any] = field(default_factory=dict)
    recommendation: dict[str, Any] = field(default_factory=dict)
    explain: str = ""
    past_trials: int = 0
    results: dict[str, list[SearchResult]] = field(default_factory=dict)
    best_model: str = ""                      # digest of best-config.json
    timings: dict[str, float] = field(default_factory=dict)


def run(out: str | Path, *, length: int = 1500, past_trials: int = 8, n_trials: int = 10,
        k: int = 5, repeats: int = 1, progress: Any = print) -> AiopsResult:
    """Run scenario 2 into ``out`` (emptied first)."""
    from cmf_core import Cmf
    from cmf_core.identity import file_digest
    from cmf_core.recommend import describe_series, recommend, record_trial
    from cmf_core.store import open_store

    out = Path(out).resolve()
    shutil.rmtree(out, ignore_errors=True)
    (out / "data").mkdir(parents=True)
    store_url = f"sqlite:///{out / '.cmf' / 'cmf.db'}"
    (out / ".cmf").mkdir()
    result = AiopsResult(out=out, store_url=store_url)
    t0 = time.perf_counter()
    with open_store(store_url, SITE) as store:
        # the site's history: earlier searches, each trial recorded with its task description
        for name, period, noise, kind, seed in PAST:
            x, y = make_series(length, period, noise, kind, seed)
            task = describe_series(x, name=name)
            past = search(objective_for(x, y), "anomaly_detection", past_trials,
                          sampler_seed=seed)
            for config, score in zip(past.configs, past.scores, strict=True):
                record_trial(store, task, config, score, pipeline=f"hpo-{name}")
            result.past_trials += past_trials
    result.timings["history"] = time.perf_counter() - t0
    progress(f"      history: {result.past_trials} trials of past searches on "
             f"{', '.join(p[0] for p in PAST)} recorded in the store")

    name, period, noise, kind, seed = NEW
    x, y = make_series(length, period, noise, kind, seed)
    series_csv = out / "data" / f"{name}.csv"
    write_series(series_csv, x, y)
    with Cmf(pipeline_name=PIPELINE, store=store_url, site=SITE) as cmf:
        with cmf.create_execution("describe", params={"series": name}) as ex:
            ex.log_dataset(series_csv, "input")
            task = describe_series(x, name=name)
            task_json = out / "data" / "task.json"
            task_json.write_text(json.dumps(task.to_dict(), indent=1, sort_keys=True))
            ex.log_dataset(task_json, "output")
        with cmf.create_execution("recommend", params={"k": k}) as ex:
            ex.log_dataset(task_json, "input")
            rec = recommend(task, k=k, store=cmf.store)
            seeds_json = out / "data" / "seeds.json"
            seeds_json.write_text(json.dumps(rec.to_dict(), indent=1, sort_keys=True))
            ex.log_dataset(seeds_json, "output")
            ex.log_execution_metrics("recommend", {"seeds": len(rec), "neighbours":
                                                   len(rec.neighbours)})
        t1 = time.perf_counter()
        results = compare(objective_for(x, y), "anomaly_detection", rec, n_trials, repeats)
        result.timings["search"] = time.perf_counter() - t1
        for kind_, runs in results.items():
            with cmf.create_execution(f"search_{kind_}", params={
                    "trials": n_trials, "repeats": repeats, "sampler": "tpe",
                    "seeded": kind_ == "seeded"}) as ex:
                ex.log_dataset(series_csv, "input")
                if kind_ == "seeded":
                    ex.log_dataset(seeds_json, "input")
                best = max(runs, key=lambda r: r.best)
                best_json = out / "data" / f"best-config-{kind_}.json"
                # the seeded search's record says where it started and why
                seeds = [{"config": c, "why": w} for c, w in zip(best.seeds, best.seed_reasons,
                                                                 strict=True)]
                best_json.write_text(json.dumps({"config": best.best_config, "auc": best.best,
                                                 "seeds": seeds}, sort_keys=True))
                ex.log_model(best_json, "output", model_framework="scikit-learn")
                ex.log_execution_metrics("search", {
                    "best_auc": sum(r.best for r in runs) / len(runs),
                    "best_auc_after_1": sum(r.best_after(1) for r in runs) / len(runs),
                    "best_auc_after_3": sum(r.best_after(3) for r in runs) / len(runs)})
    result.task = task.to_dict()
    result.recommendation = rec.to_dict()
    result.explain = rec.explain()
    result.results = results
    result.best_model = file_digest(out / "data" / "best-config-seeded.json")
    return result
