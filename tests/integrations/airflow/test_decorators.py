"""Explicit logging where users want it: @cmf_task and the log_* helpers."""

from __future__ import annotations

from pathlib import Path

from cmf_airflow.decorators import log_metric, log_model

from cmf_core.identity import file_digest
from cmf_core.model import EventType, ExecutionStatus
from tests.integrations.airflow.helpers import artifacts_of, by_stage

EXPLICIT = '''
from pathlib import Path

from airflow.sdk import dag

from cmf_airflow.decorators import (
    cmf_task, log_metric, log_model, log_params, log_properties, log_task,
)

DATA = Path("{data}")


@dag(dag_id="{dag_id}", schedule=None)
def explicit():
    @cmf_task(retries=0)
    def train(C: float = 1.0) -> dict:
        for epoch in range(3):
            log_metric("loss", 1.0 / (epoch + 1), step=epoch)
        (DATA / "model.pkl").write_bytes(b"model-bytes")
        log_model(DATA / "model.pkl", framework="sklearn")
        log_params({"model": "logreg", "penalty": "l2"})
        log_properties({"owner_team": "churn"})
        log_task({"name": "toy", "category": "classification",
                  "meta_features": {"n_rows": 0.5}})
        return {"score": 0.875, "f1": 0.8, "note": "not a metric"}

    train(C=0.1)


explicit()
'''


def test_cmf_task_and_helpers_record_metrics_models_and_properties(run_dag, cmf_store,
                                                                   tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    dr = run_dag(EXPLICIT, "explicit", data=data)
    assert dr.state == "success"
    store = cmf_store()
    ex = by_stage(store, "explicit")["train"]
    assert ex.status is ExecutionStatus.COMPLETED
    assert ex.params == {"C": 0.1, "model": "logreg", "penalty": "l2"}
    assert ex.custom_properties == {"owner_team": "churn"}
    assert ex.properties["cmf.task"]["category"] == "classification"
    metrics = {(m.name, m.step): m.value for m in store.metrics([ex.id])}
    assert metrics == {("loss", 0): 1.0, ("loss", 1): 0.5, ("loss", 2): 1 / 3,
                       ("score", None): 0.875, ("f1", None): 0.8}
    (model,) = artifacts_of(store, ex.id, EventType.OUTPUT)
    assert model.type == "Model" and model.id == file_digest(data / "model.pkl")
    assert model.properties["framework"] == "sklearn"


def test_helpers_outside_a_task_do_nothing_and_never_raise() -> None:
    assert log_metric("acc", 0.9) is False
    assert log_model("/nonexistent/model.pkl") is False


NOT_FINITE = '''
from airflow.sdk import dag, task

from cmf_airflow.decorators import log_metric, log_metrics


@dag(dag_id="{dag_id}", schedule=None)
def diverged():
    @task(retries=0)
    def train() -> None:
        log_metric("loss", float("nan"))  # a diverged run
        log_metric("", 1.0)
        log_metric("acc", 0.9)
        log_metrics({" ": 1.0, "f1": 0.8})  # a bad name does not cost the others

    train()


diverged()
'''


def test_a_metric_the_store_refuses_does_not_cost_the_task_its_end(run_dag, cmf_store) -> None:
    """log_metric of NaN (or with no name) used to go into the terminal event, which ingest
    then refused as a whole: the task stayed running in CMF."""
    dr = run_dag(NOT_FINITE, "diverged")
    assert dr.state == "success"
    store = cmf_store()
    ex = by_stage(store, "diverged")["train"]
    assert ex.status is ExecutionStatus.COMPLETED
    assert sorted((m.name, m.value) for m in store.metrics([ex.id])) == [("acc", 0.9),
                                                                         ("f1", 0.8)]
