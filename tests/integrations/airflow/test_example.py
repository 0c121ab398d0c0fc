"""The example DAG users start from (examples/airflow/churn_pipeline.py) runs and is recorded."""

from __future__ import annotations

from pathlib import Path

import pytest

from cmf_core.model import EventType, ExecutionStatus
from tests.integrations.airflow.helpers import artifacts_of, by_stage

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.slow  # describes the 7,043-row churn table and fits a model: ~5-25 s
def test_example_churn_pipeline(run_dag, cmf_store, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("CHURN_CSV",
                       str(ROOT / "examples/data/telco-churn/Telco-Customer-Churn.csv"))
    monkeypatch.setenv("CHURN_DATA_DIR", str(tmp_path / "churn"))
    source = (ROOT / "examples/airflow/churn_pipeline.py").read_text()
    dr = run_dag(source, "churn_pipeline")
    states = {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}
    assert states == {"prepare": "success", "recommend_seeds": "success", "train": "success",
                      "evaluate": "success", "share_metadata": "skipped"}  # no cmf_peer here

    store = cmf_store()
    runs = by_stage(store, "churn_pipeline")
    assert runs["share_metadata"].status is ExecutionStatus.SKIPPED
    train = runs["train"]
    assert train.properties["cmf.task"]["category"] == "classification"
    assert "model" in train.params and "ti" not in train.params
    assert {m.name for m in store.metrics([train.id])} == {"score"}
    (model,) = artifacts_of(store, train.id, EventType.OUTPUT)
    assert model.type == "Model"
    inputs = {a.type: a for a in artifacts_of(store, runs["evaluate"].id, EventType.INPUT)}
    assert inputs["Model"].id == model.id and inputs["Dataset"].uri.endswith("test.csv")
    assert {m.name for m in store.metrics([runs["evaluate"].id])} >= {"accuracy", "f1"}
    assert all(store.energy([runs[t].id]) for t in states)

    # the run just recorded is now knowledge the recommender learns from
    from cmf_core.recommend import from_store

    kb = from_store(store)
    assert any(r.run_id == train.id for runs_ in kb.runs.values() for r in runs_)
