"""A real two-site run for the web UI tests: the telco churn example recorded with ``Cmf`` at
two sites, each with its own store, energy measured by ``cmf_core.energy``, then federated.

* Site ``lab`` (region FR, PUE 1.2), pipeline ``churn``: ``prepare`` encodes the shipped telco
  CSV into ``train.csv``/``test.csv``; ``train`` fits two logistic regressions (scikit-learn,
  configurations of the recommender's space, each a run of task ``telco-churn-lab``).
* Site ``hpc`` (region DE, PUE 1.4) receives ``model-2.pkl`` and ``test.csv`` (the same bytes,
  hence the same digests) and runs ``churn``/``evaluate``; pipeline ``churn-hpo`` tunes three
  configurations on the long-tenure customers of ``train.csv`` (task ``telco-churn-hpc``).
* The ``hpc`` store is exported as a federation bundle and imported into the ``lab`` store,
  which is the store the UI is served from: one provenance chain across both sites.
"""

from __future__ import annotations

import csv
import pickle
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cmf_core import Cmf
from cmf_core.config import Settings, load_settings
from cmf_core.federation.export import Selector, export_bundle
from cmf_core.federation.merge import import_bundle
from cmf_core.identity import file_digest
from cmf_core.recommend import describe_csv, task_properties
from cmf_core.recommend.space import build_estimator
from cmf_core.store import Store, open_store

ROOT = Path(__file__).resolve().parents[2]
TELCO = ROOT / "examples" / "data" / "telco-churn" / "Telco-Customer-Churn.csv"
SITES = {"lab": {"pue": 1.2, "carbon_region": "FR"},
         "hpc": {"pue": 1.4, "carbon_region": "DE"}}
TRAIN_CONFIGS = [{"model": "logreg", "C": 1.0, "class_weight": "none"},
                 {"model": "logreg", "C": 0.1, "class_weight": "balanced"}]
HPO_CONFIGS = [{"model": "logreg", "C": 0.01, "class_weight": "balanced"},
               {"model": "logreg", "C": 10.0, "class_weight": "none"},
               {"model": "knn", "n_neighbors": 25, "weights": "uniform"}]


@dataclass
class Scenario:
    """What the run recorded, for the tests to compare the page against."""

    root: Path
    store_url: str  # the merged store (site lab)
    digests: dict[str, str] = field(default_factory=dict)  # file name -> sha256 digest
    executions: dict[str, str] = field(default_factory=dict)  # "train-1" -> execution id
    task_ids: dict[str, str] = field(default_factory=dict)  # task name -> task id

    def open(self) -> Store:
        return open_store(self.store_url, site="lab")


def settings_for(site: str, root: Path) -> Settings:
    return load_settings(site=site, home=str(root / site / "home"),
                         store_url=f"sqlite:///{root / site / 'cmf.db'}", **SITES[site])


def _encode(row: dict[str, str]) -> list[float]:
    yes = {"Yes": 1.0}
    contract = row["Contract"]
    internet = row["InternetService"]
    return [float(row["SeniorCitizen"]), float(row["tenure"]), float(row["MonthlyCharges"]),
            float(row["TotalCharges"].strip() or 0.0), float(row["gender"] == "Male"),
            yes.get(row["Partner"], 0.0), yes.get(row["Dependents"], 0.0),
            yes.get(row["PhoneService"], 0.0), yes.get(row["PaperlessBilling"], 0.0),
            float(contract == "Month-to-month"), float(contract == "One year"),
            float(internet == "DSL"), float(internet == "Fiber optic"),
            yes.get(row["Churn"], 0.0)]


COLUMNS = ["SeniorCitizen", "tenure", "MonthlyCharges", "TotalCharges", "male", "Partner",
           "Dependents", "PhoneService", "PaperlessBilling", "month_to_month", "one_year",
           "dsl", "fiber", "Churn"]


def _write(path: Path, rows: list[list[float]]) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(COLUMNS)
        w.writerows(rows)
    return path


def _xy(path: Path) -> tuple[np.ndarray, np.ndarray]:
    data = np.loadtxt(path, delimiter=",", skiprows=1)
    return data[:, :-1], data[:, -1]


def _fit(config: dict[str, Any], train: Path, test: Path) -> tuple[Any, dict[str, float]]:
    (x, y), (xt, yt) = _xy(train), _xy(test)
    started = time.perf_counter()
    model = build_estimator(config, "classification").fit(x, y)
    seconds = time.perf_counter() - started
    pred = model.predict(xt)
    tp = float(((pred == 1) & (yt == 1)).sum())
    f1 = 2 * tp / max(1.0, float((pred == 1).sum() + (yt == 1).sum()))
    accuracy = float((pred == yt).mean())
    return model, {"score": accuracy, "accuracy": accuracy, "f1": round(f1, 6),
                   "fit_time_s": seconds}


def build(root: Path) -> Scenario:
    """Run the example at both sites under ``root`` and merge them; see the module docs."""
    lab_dir, hpc_dir = root / "lab", root / "hpc"
    for d in (lab_dir, hpc_dir):
        d.mkdir(parents=True)
    lab, hpc = settings_for("lab", root), settings_for("hpc", root)
    sc = Scenario(root=root, store_url=lab.store_url or "")
    build_estimator(TRAIN_CONFIGS[0], "classification")  # import scikit-learn before timing

    # site lab: prepare and train -----------------------------------------------------------
    with open_store(settings=lab) as store, \
            Cmf(pipeline_name="churn", store=store, settings=lab) as cmf:
        with cmf.create_execution("prepare", params={"test_every": 5, "source": TELCO.name}):
            cmf.log_dataset(TELCO, "input")
            with TELCO.open(newline="") as fh:
                rows = [_encode(r) for r in csv.DictReader(fh)]
            train = _write(lab_dir / "train.csv", [r for i, r in enumerate(rows) if i % 5])
            test = _write(lab_dir / "test.csv", [r for i, r in enumerate(rows) if not i % 5])
            cmf.log_dataset(train, "output")
            cmf.log_dataset(test, "output")
        task = describe_csv(train, category="classification", target="Churn",
                            name="telco-churn-lab", metric="accuracy")
        sc.task_ids[task.name] = task.id
        for n, config in enumerate(TRAIN_CONFIGS, 1):
            with cmf.create_execution("train", params=config,
                                      properties=task_properties(task)) as ex:
                cmf.log_dataset(train, "input")
                model, scores = _fit(config, train, test)
                path = lab_dir / f"model-{n}.pkl"
                path.write_bytes(pickle.dumps(model))
                cmf.log_model(path, "output", model_framework="scikit-learn",
                              model_type=config["model"])
                cmf.log_execution_metrics("eval", scores)
                sc.executions[f"train-{n}"] = ex.id
        sc.executions["prepare"] = store.list_executions()[0].id

    # the model and the test set travel to site hpc --------------------------------------------
    for name in ("model-2.pkl", "test.csv", "train.csv"):
        shutil.copy2(lab_dir / name, hpc_dir / name)
        sc.digests[name] = file_digest(hpc_dir / name)
    sc.digests["Telco-Customer-Churn.csv"] = file_digest(TELCO)

    # site hpc: evaluate, and a small search on long-tenure customers --------------------------
    with open_store(settings=hpc) as store:
        with Cmf(pipeline_name="churn", store=store, settings=hpc) as cmf, \
                cmf.create_execution("evaluate", params={"threshold": 0.5}) as ex:
            cmf.log_model(hpc_dir / "model-2.pkl", "input")
            cmf.log_dataset(hpc_dir / "test.csv", "input")
            model = pickle.loads((hpc_dir / "model-2.pkl").read_bytes())
            x, y = _xy(hpc_dir / "test.csv")
            accuracy = float((model.predict(x) == y).mean())
            report = hpc_dir / "report.json"
            report.write_text(f'{{"accuracy": {accuracy:.6f}, "rows": {len(y)}}}\n')
            cmf.log_dataset(report, "output")
            cmf.log_execution_metrics("evaluation", {"accuracy": accuracy})
            sc.executions["evaluate"] = ex.id
        with Cmf(pipeline_name="churn-hpo", store=store, settings=hpc) as cmf:
            with cmf.create_execution("select", params={"min_tenure": 6}) as ex:
                cmf.log_dataset(hpc_dir / "train.csv", "input")
                with (hpc_dir / "train.csv").open(newline="") as fh:
                    kept = [[float(v) for v in r.values()] for r in csv.DictReader(fh)
                            if float(r["tenure"]) >= 6]
                subset = _write(hpc_dir / "train-tenure6.csv", kept)
                cmf.log_dataset(subset, "output")
                sc.executions["select"] = ex.id
            task = describe_csv(subset, category="classification", target="Churn",
                                name="telco-churn-hpc", metric="accuracy")
            sc.task_ids[task.name] = task.id
            for n, config in enumerate(HPO_CONFIGS, 1):
                with cmf.create_execution("trial", params=config,
                                          properties=task_properties(task)) as ex:
                    cmf.log_dataset(subset, "input")
                    _, scores = _fit(config, subset, hpc_dir / "test.csv")
                    cmf.log_execution_metrics("eval", scores)
                    sc.executions[f"trial-{n}"] = ex.id
        bundle = list(export_bundle(store, Selector()))

    # federation: the hpc records join the lab store -----------------------------------------
    with open_store(settings=lab) as store:
        import_bundle(store, bundle, name="hpc.jsonl")
    return sc
