"""Scenario 3: Telco churn, the recommender's seeds versus a cold Bayesian search, on real data.

The data are IBM's Telco Customer Churn sample (``examples/data/telco-churn/``, 7,043 customers).
The shipped knowledge base was built with two Telco tasks in it; they are left out here
(``KnowledgeBase.without(groups=["telco"])``), so the recommendation comes only from *other*
tasks, as it would for a team that meets this data for the first time.

Both searches use Optuna's TPE with the same sampler seed and budget over the recommender's
search space, scored by 3-fold stratified cross-validated ROC AUC on a seeded sample of the
customers; the seeded search starts with the recommended configurations. The steps are recorded
with :class:`cmf_core.Cmf`: describe -> recommend -> search (seeded and cold).
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

from aiops.search import SearchResult, compare

DATA = Path(__file__).resolve().parents[1] / "data" / "telco-churn" / "Telco-Customer-Churn.csv"
SITE = "crm"
PIPELINE = "telco-churn-search"
LEFT_OUT_GROUP = "telco"


def load(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Model matrix (one-hot categoricals, missing numbers as 0) and churn labels of a seeded,
    stratified sample of ``rows`` customers."""
    from cmf_core.recommend.task import read_csv

    table = read_csv(DATA)
    churn = table.column("Churn")
    levels = table.levels["Churn"]
    y = (churn == levels.index("Yes")).astype(int)
    X = np.nan_to_num(table.without("Churn").one_hot())
    rng = np.random.default_rng(seed)
    if rows < len(y):
        pick = np.concatenate([rng.choice(np.flatnonzero(y == c),
                                          size=round(rows * float((y == c).mean())),
                                          replace=False) for c in (0, 1)])
        X, y = X[np.sort(pick)], y[np.sort(pick)]
    return X, y


def objective_for(X: np.ndarray, y: np.ndarray) -> Any:
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    from cmf_core.recommend import build_estimator

    folds = StratifiedKFold(3, shuffle=True, random_state=0)

    def objective(config: Any) -> float:
        est = build_estimator(config, "classification", seed=0)
        return float(cross_val_score(est, X, y, cv=folds, scoring="roc_auc").mean())

    return objective


@dataclass
class TelcoResult:
    out: Path
    store_url: str
    rows: int = 0
    recommendation: dict[str, Any] = field(default_factory=dict)
    explain: str = ""
    left_out: list[str] = field(default_factory=list)
    results: dict[str, list[SearchResult]] = field(default_factory=dict)
    best_model: str = ""
    timings: dict[str, float] = field(default_factory=dict)


def run(out: str | Path, *, rows: int = 1500, n_trials: int = 10, k: int = 5,
        repeats: int = 1, progress: Any = print) -> TelcoResult:
    """Run scenario 3 into ``out`` (emptied first)."""
    from cmf_core import Cmf
    from cmf_core.identity import file_digest
    from cmf_core.recommend import describe_csv, recommend, shipped

    out = Path(out).resolve()
    shutil.rmtree(out, ignore_errors=True)
    (out / "data").mkdir(parents=True)
    (out / ".cmf").mkdir()
    store_url = f"sqlite:///{out / '.cmf' / 'cmf.db'}"
    result = TelcoResult(out=out, store_url=store_url, rows=rows)
    kb = shipped()
    result.left_out = sorted(t.name for t in kb.tasks.values() if t.group == LEFT_OUT_GROUP)
    knowledge = kb.without(groups=[LEFT_OUT_GROUP])
    with Cmf(pipeline_name=PIPELINE, store=store_url, site=SITE) as cmf:
        with cmf.create_execution("describe", params={"target": "Churn"}) as ex:
            ex.log_dataset(DATA, "input")
            task = describe_csv(DATA, category="classification", target="Churn",
                                name="telco-customer-churn")
            task_json = out / "data" / "task.json"
            task_json.write_text(json.dumps(task.to_dict(), indent=1, sort_keys=True))
            ex.log_dataset(task_json, "output")
        left_out = ",".join(result.left_out)
        with cmf.create_execution("recommend", params={"k": k, "left_out": left_out}) as ex:
            ex.log_dataset(task_json, "input")
            rec = recommend(task, k=k, knowledge=knowledge)
            seeds_json = out / "data" / "seeds.json"
            seeds_json.write_text(json.dumps(rec.to_dict(), indent=1, sort_keys=True))
            ex.log_dataset(seeds_json, "output")
        t0 = time.perf_counter()
        X, y = load(rows)
        results = compare(objective_for(X, y), "classification", rec, n_trials, repeats)
        result.timings["search"] = time.perf_counter() - t0
        for kind, runs in results.items():
            with cmf.create_execution(f"search_{kind}", params={
                    "trials": n_trials, "repeats": repeats, "rows": rows, "sampler": "tpe",
                    "seeded": kind == "seeded"}) as ex:
                ex.log_dataset(DATA, "input")
                if kind == "seeded":
                    ex.log_dataset(seeds_json, "input")
                best = max(runs, key=lambda r: r.best)
                best_json = out / "data" / f"best-config-{kind}.json"
                best_json.write_text(json.dumps({"config": best.best_config,
                                                 "roc_auc": best.best}, sort_keys=True))
                ex.log_model(best_json, "output", model_framework="scikit-learn")
                ex.log_execution_metrics("search", {
                    "best_roc_auc": sum(r.best for r in runs) / len(runs),
                    "best_roc_auc_after_1": sum(r.best_after(1) for r in runs) / len(runs),
                    "best_roc_auc_after_3": sum(r.best_after(3) for r in runs) / len(runs)})
    result.recommendation = rec.to_dict()
    result.explain = rec.explain()
    result.results = results
    result.best_model = file_digest(out / "data" / "best-config-seeded.json")
    return result
