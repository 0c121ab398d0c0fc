"""Builders shared by the OpenLineage bridge tests: CMF lineage and foreign OpenLineage events."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from cmf_core.model import Artifact, EnergyRecord, Event, Execution, Metric
from cmf_core.openlineage.convert import ExecutionLineage

T0 = 1714564800.25  # 2024-05-01T12:00:00.25Z, a whole number of microseconds
FOREIGN = "https://github.com/apache/airflow/tree/providers-openlineage/2.20.0"


def digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def facet(**fields: Any) -> dict[str, Any]:
    return {"_producer": FOREIGN, "_schemaURL": "https://example.org/facets/X.json", **fields}


def build_lineage(status: str = "completed", *, tag: str = "", error: str | None = None
                  ) -> ExecutionLineage:
    """A finished training step: one input, two outputs, metrics, energy, params, props."""
    ex = Execution(pipeline="churn.v2", stage="train", site="site-a", started_at=T0,
                   params={"lr": 0.01, "layers": [64, 32], "opt": {"name": "adam", "b1": 0.9}},
                   properties={"orchestrator": "airflow", "try": 1},
                   custom_properties={"owner": "ana"})
    if status != "running":
        ex = ex.ended(status, error=error, ended_at=T0 + 125.5)
    data = Artifact(id=digest("data" + tag), type="Dataset", name="train.csv",
                    uri="/data/churn/train.csv", site="site-a", created_at=T0 - 3600,
                    properties={"rows": 1000})
    model = Artifact(id=digest("model" + tag), type="Model", name="model",
                     uri="s3://models/churn/model.pkl", site="site-a", created_at=T0 + 120,
                     custom_properties={"framework": "sklearn"})
    report = Artifact(id=digest("report" + tag), type="Metrics", name="report",
                      uri="file:///reports/churn.json", site="site-a", created_at=T0 + 121)
    events = [Event(ex.id, data.id, "INPUT"), Event(ex.id, model.id, "OUTPUT"),
              Event(ex.id, report.id, "OUTPUT")]
    metrics = [Metric(ex.id, "auc", 0.91, timestamp=T0 + 100),
               *(Metric(ex.id, "loss", 1.0 / (s + 1), step=s, timestamp=T0 + s) for s in range(3))]
    energy = EnergyRecord(ex.id, "site-a", 0.042, 0.011,
                          {"cpu": {"kwh": 0.03, "method": "rapl"}, "pue": 1.2})
    return ExecutionLineage.from_records(ex, [data, model, report], events, metrics, energy)


def airflow_events(run_id: str | None = None, dag_run_id: str | None = None
                   ) -> list[dict[str, Any]]:
    """START, RUNNING and COMPLETE of an Airflow-provider-like task run (no CMF facets)."""
    run_id = run_id or str(uuid.uuid4())
    dag_run_id = dag_run_id or str(uuid.uuid4())
    parent = facet(run={"runId": dag_run_id}, job={"namespace": "airflow", "name": "etl"})
    src = {"namespace": "postgres://db:5432", "name": "shop.public.orders",
           "facets": {"schema": facet(fields=[{"name": "id", "type": "int"}]),
                      "dataSource": facet(name="postgres://db:5432", uri="postgres://db:5432")}}
    out = {"namespace": "s3://lake", "name": "orders/2024-05-01.parquet",
           "facets": {"version": facet(datasetVersion="v7")},
           "outputFacets": {"outputStatistics": facet(rowCount=10, size=2048)}}

    def event(etype: str, t: str, facets: dict[str, Any], outputs: list[Any]) -> dict[str, Any]:
        return {"eventType": etype, "eventTime": t, "producer": FOREIGN,
                "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
                "run": {"runId": run_id, "facets": {"parent": parent, **facets}},
                "job": {"namespace": "airflow", "name": "etl.extract",
                        "facets": {"jobType": facet(processingType="BATCH",
                                                    integration="AIRFLOW", jobType="TASK")}},
                "inputs": [src], "outputs": outputs}

    return [
        event("START", "2024-05-01T12:00:00Z",
              {"nominalTime": facet(nominalStartTime="2024-05-01T00:00:00Z")}, []),
        event("RUNNING", "2024-05-01T12:00:30.5Z", {"progress": facet(percent=50)}, []),
        event("COMPLETE", "2024-05-01T14:01:00+02:00",
              {"processing_engine": facet(version="3.0.1", name="Airflow")}, [out]),
    ]


@pytest.fixture(scope="session")
def make_lineage() -> Callable[..., ExecutionLineage]:
    """``make_lineage(status="completed", tag="", error=None)``: a fresh finished step."""
    return build_lineage


@pytest.fixture(scope="session")
def make_airflow_events() -> Callable[..., list[dict[str, Any]]]:
    """``make_airflow_events(run_id=None, dag_run_id=None)``: START, RUNNING, COMPLETE dicts."""
    return airflow_events


@pytest.fixture(scope="session")
def make_facet() -> Callable[..., dict[str, Any]]:
    """``make_facet(**fields)``: a facet from a foreign producer."""
    return facet
