"""Telco churn on Airflow 3: prepare -> recommend seeds -> train -> evaluate -> share metadata.

Nothing here is needed for lineage: with cmf-foundation[airflow] installed, every task of any
DAG becomes a CMF execution (DAG -> pipeline, task -> stage, try -> execution) with its assets
(content-digested files), parameters, XCom summary, energy and carbon. This DAG adds the two
steps users choose to add:

* ``recommend_seeds`` (CmfRecommendSeedOperator): the model + hyperparameter configurations that
  did best on the most similar past tasks; ``train`` starts from the best one;
* ``share_metadata`` (CmfFederatedSyncOperator): pushes this pipeline's metadata to the peer
  site of the ``cmf_peer`` connection (skipped when that connection is not defined);

and logs what only the code knows (``log_task``, ``log_params``, ``log_metric``): together they
make ``train`` a run of the recommender's knowledge base, so the next recommendation learns
from it. See README.md in this folder.

Environment: ``CHURN_CSV`` (default: examples/data/telco-churn/Telco-Customer-Churn.csv) and
``CHURN_DATA_DIR`` (default: /tmp/cmf-churn) for the files the tasks write.
"""

from __future__ import annotations

import csv
import json
import os
import pickle
import random
from pathlib import Path

from airflow.sdk import Asset, dag, task
from cmf_airflow.decorators import log_metric, log_metrics, log_params, log_task
from cmf_airflow.operators import CmfFederatedSyncOperator, CmfRecommendSeedOperator

SOURCE = Path(os.environ.get("CHURN_CSV", Path(__file__).resolve().parents[1] / "data"
                             / "telco-churn" / "Telco-Customer-Churn.csv"))
DATA = Path(os.environ.get("CHURN_DATA_DIR", "/tmp/cmf-churn"))

RAW = Asset(SOURCE.as_uri())
TRAIN = Asset((DATA / "train.csv").as_uri())
TEST = Asset((DATA / "test.csv").as_uri())
MODEL = Asset((DATA / "model.pkl").as_uri(), extra={"cmf_type": "Model"})
REPORT = Asset((DATA / "metrics.json").as_uri(), extra={"cmf_type": "Metrics"})

NUMERIC = ("SeniorCitizen", "tenure", "MonthlyCharges", "TotalCharges")
CATEGORICAL = ("Contract", "InternetService", "PaymentMethod", "PaperlessBilling",
               "TechSupport", "OnlineSecurity")
COLD_START = {"model": "logreg", "C": 1.0, "class_weight": "none"}


def _read(path: Path) -> tuple[list[list[float]], list[int]]:
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    return [[float(v) for v in r[:-1]] for r in rows[1:]], [int(r[-1]) for r in rows[1:]]


@dag(schedule=None, params={"test_size": 0.25, "seed": 7}, tags=["cmf", "example"])
def churn_pipeline():
    @task(inlets=[RAW], outlets=[TRAIN, TEST])
    def prepare(params=None) -> dict:
        """Encode the customer table as numbers and split it into train and test files."""
        with SOURCE.open(newline="") as fh:
            records = list(csv.DictReader(fh))
        levels = {c: sorted({r[c] for r in records}) for c in CATEGORICAL}
        header = [*NUMERIC, *CATEGORICAL, "churn"]
        rows = []
        for r in records:
            numbers = [float(r[c]) if r[c].strip() else 0.0 for c in NUMERIC]
            codes = [float(levels[c].index(r[c])) for c in CATEGORICAL]
            rows.append([*numbers, *codes, int(r["Churn"] == "Yes")])
        random.Random(params["seed"]).shuffle(rows)
        cut = int(len(rows) * (1 - params["test_size"]))
        DATA.mkdir(parents=True, exist_ok=True)
        for name, part in (("train.csv", rows[:cut]), ("test.csv", rows[cut:])):
            with (DATA / name).open("w", newline="") as fh:
                csv.writer(fh).writerows([header, *part])
        return {"train_rows": cut, "test_rows": len(rows) - cut}

    seeds = CmfRecommendSeedOperator(
        task_id="recommend_seeds", category="classification",
        dataset_path=str(DATA / "train.csv"), target="churn", task_name="telco-churn", k=3)

    @task(inlets=[TRAIN], outlets=[MODEL])
    def train(configs: list, ti=None) -> dict:
        """Fit the best seed (or a cold-start default) and score it on a validation split."""
        from sklearn.model_selection import train_test_split

        from cmf_core.recommend import build_estimator

        config = configs[0] if configs else COLD_START
        X, y = _read(DATA / "train.csv")
        X_fit, X_val, y_fit, y_val = train_test_split(X, y, test_size=0.2, random_state=0)
        model = build_estimator(config, "classification").fit(X_fit, y_fit)
        score = float(model.score(X_val, y_val))
        (DATA / "model.pkl").write_bytes(pickle.dumps(model))
        # what makes this run part of the recommender's knowledge base
        log_task(ti.xcom_pull(task_ids="recommend_seeds", key="task"))
        log_params(config)
        log_metric("score", score)
        return {"config": config, "validation_accuracy": score}

    @task(inlets=[MODEL, TEST], outlets=[REPORT])
    def evaluate(trained: dict) -> dict:
        """Test-set metrics of the trained model."""
        from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

        model = pickle.loads((DATA / "model.pkl").read_bytes())
        X, y = _read(DATA / "test.csv")
        predicted = model.predict(X)
        metrics = {"accuracy": accuracy_score(y, predicted), "f1": f1_score(y, predicted)}
        if hasattr(model, "predict_proba"):
            metrics["roc_auc"] = roc_auc_score(y, model.predict_proba(X)[:, 1])
        (DATA / "metrics.json").write_text(json.dumps(metrics, indent=2))
        log_metrics(metrics)
        return metrics

    share = CmfFederatedSyncOperator(
        task_id="share_metadata", cmf_conn_id="cmf_peer", direction="push",
        pipeline="{{ dag.dag_id }}", missing_peer="skip")

    prepared = prepare()
    prepared >> seeds
    evaluate(train(seeds.output)) >> share


churn_pipeline()
