"""OpenLineage -> CMF: mapping, validation first, round trips, order and duplicates."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cmf_core.errors import InvalidEventError
from cmf_core.identity import remote_digest
from cmf_core.model import (
    Artifact,
    EnergyRecord,
    Event,
    Execution,
    ExecutionStatus,
    Metric,
    Pipeline,
    Stage,
)
from cmf_core.openlineage.convert import ExecutionLineage, to_event_dicts, to_run_events
from cmf_core.openlineage.ingest import (
    canonical_event_id,
    event_to_records,
    ingest,
    merge_dicts,
    unversioned_digest,
)
from cmf_core.openlineage.validate import EventKind
from cmf_core.store import Store, open_store

SPEC = "https://openlineage.io/spec/2-0-2/OpenLineage.json"


def of(records: list[Any], cls: type) -> list[Any]:
    return [r for r in records if isinstance(r, cls)]


# pure mapping ------------------------------------------------------------------------------
def test_foreign_task_run_maps_to_pipeline_stage_execution(make_airflow_events: Any) -> None:
    start, running, complete = make_airflow_events(run_id="0190F0A0-0000-7000-8000-0000000000AA")
    records = event_to_records(complete, "site-a")
    assert of(records, Pipeline)[0].name == "etl"
    assert of(records, Stage)[0].name == "extract"
    (ex,) = of(records, Execution)
    assert ex.id == "0190f0a0-0000-7000-8000-0000000000aa"
    assert (ex.pipeline, ex.stage, ex.site) == ("etl", "extract", "site-a")
    assert ex.status is ExecutionStatus.COMPLETED and ex.ended_at == 1714564860.0
    props = ex.properties
    assert props["openlineage.job"] == {"namespace": "airflow", "name": "etl.extract"}
    assert set(props["openlineage.run_facets"]) == {"parent", "processing_engine"}
    assert props["openlineage.job_facets"]["jobType"]["integration"] == "AIRFLOW"
    out_uri = "s3://lake/orders/2024-05-01.parquet"
    assert props["openlineage.output_facets"][out_uri]["outputStatistics"]["rowCount"] == 10
    source, table = of(records, Artifact)
    assert source.id == unversioned_digest("postgres://db:5432/shop.public.orders")
    assert source.type == "Dataset" and source.name == "shop.public.orders"
    assert set(source.properties["openlineage.facets"]) == {"schema", "dataSource"}
    assert table.id == remote_digest(out_uri, "v7") and table.uri == out_uri
    assert {(e.type.value, e.artifact_id) for e in of(records, Event)} == {
        ("INPUT", source.id), ("OUTPUT", table.id)}
    assert of(event_to_records(start, "site-a"), Execution)[0].status is ExecutionStatus.RUNNING
    assert "progress" in of(event_to_records(running, "s"), Execution)[0].properties[
        "openlineage.run_facets"]


@pytest.mark.parametrize(("job", "parent", "pipeline", "stage"), [
    ("dag.task", "dag", "dag", "task"),
    ("dag.group.task", "dag", "dag", "group.task"),
    ("flow-run", "flow", "flow", "flow-run"),
    ("dag.task", None, "dag", "dag.task"),
    ("single", None, "single", "single"),
])
def test_job_names_map_to_pipeline_and_stage(make_airflow_events: Any, job: str,
                                             parent: str | None, pipeline: str,
                                             stage: str) -> None:
    event = make_airflow_events()[0]
    event["job"]["name"] = job
    if parent is None:
        del event["run"]["facets"]["parent"]
    else:
        event["run"]["facets"]["parent"]["job"]["name"] = parent
    (ex,) = of(event_to_records(event, "s"), Execution)
    assert (ex.pipeline, ex.stage) == (pipeline, stage)


@pytest.mark.parametrize(("event_type", "status"), [
    ("START", "running"), ("RUNNING", "running"), ("COMPLETE", "completed"),
    ("FAIL", "failed"), ("ABORT", "aborted"), ("OTHER", "running"), (None, "running"),
])
def test_event_types_map_to_status(make_airflow_events: Any, event_type: str | None,
                                   status: str) -> None:
    event = make_airflow_events()[2]
    if event_type is None:
        del event["eventType"]
    else:
        event["eventType"] = event_type
    (ex,) = of(event_to_records(event, "s"), Execution)
    assert ex.status.value == status
    assert (ex.ended_at is not None) is (status != "running")


def test_fail_keeps_the_error_message(make_airflow_events: Any, make_facet: Any) -> None:
    event = make_airflow_events()[2]
    event["eventType"] = "FAIL"
    event["run"]["facets"]["errorMessage"] = make_facet(
        message="KeyError: 'x'", programmingLanguage="python", stackTrace="Traceback ...")
    (ex,) = of(event_to_records(event, "s"), Execution)
    assert ex.status is ExecutionStatus.FAILED and ex.error == "KeyError: 'x'"
    assert ex.properties["openlineage.run_facets"]["errorMessage"]["stackTrace"]


def test_cmf_facets_become_params_metrics_energy_and_site(make_lineage: Any) -> None:
    lineage = make_lineage()
    records = event_to_records(to_event_dicts(lineage)[-1], "ignored-site")
    (ex,) = of(records, Execution)
    assert ex.params == lineage.execution.params and ex.site == "site-a"
    assert sorted(of(records, Metric), key=lambda m: (m.name, m.step or 0)) == sorted(
        lineage.metrics, key=lambda m: (m.name, m.step or 0))
    assert of(records, EnergyRecord) == [lineage.energy]


def test_dataset_event_gives_an_artifact(make_facet: Any) -> None:
    event = {"eventTime": "2024-05-01T12:00:00Z", "producer": "https://x.org/p",
             "schemaURL": f"{SPEC}#/$defs/DatasetEvent",
             "dataset": {"namespace": "gs://bucket", "name": "raw/events.avro",
                         "facets": {"version": make_facet(datasetVersion="42")}}}
    (artifact,) = event_to_records(event, "edge-1")
    assert artifact.id == remote_digest("gs://bucket/raw/events.avro", "42")
    assert (artifact.uri, artifact.site, artifact.created_at) == (
        "gs://bucket/raw/events.avro", "edge-1", 1714564800.0)


def test_job_event_gives_pipeline_and_stage(make_facet: Any) -> None:
    event = {"eventTime": "2024-05-01T12:00:00Z", "producer": "https://x.org/p",
             "schemaURL": f"{SPEC}#/$defs/JobEvent",
             "job": {"namespace": "dbt", "name": "shop.orders_model",
                     "facets": {"sql": make_facet(query="select 1")}},
             "inputs": [{"namespace": "postgres://db:5432", "name": "shop.public.orders"}],
             "outputs": []}
    pipeline, stage, artifact = event_to_records(event, "s")
    assert pipeline == Pipeline(name="shop", site="s", created_at=1714564800.0)
    assert stage.name == "shop.orders_model"
    assert stage.properties["openlineage.job_facets"]["sql"]["query"] == "select 1"
    assert isinstance(artifact, Artifact)


def test_unknown_artifact_type_is_named(make_lineage: Any) -> None:
    event = to_event_dicts(make_lineage())[-1]
    event["outputs"][0]["facets"]["cmf_artifact"]["type"] = "Hologram"
    with pytest.raises(InvalidEventError,
                       match=r"outputs\[0\]\.facets\.cmf_artifact: unknown artifact type "
                             r"'Hologram'.*register_artifact_type"):
        event_to_records(event, "s")


def test_deleted_dataset_facets_do_not_identify_the_artifact(make_airflow_events: Any,
                                                             make_facet: Any) -> None:
    event = make_airflow_events()[2]
    event["outputs"][0]["facets"]["version"] = make_facet(_deleted=True)
    event["outputs"][0]["facets"]["cmf_artifact"] = make_facet(_deleted=True)
    out = of(event_to_records(event, "s"), Artifact)[1]
    assert out.id == unversioned_digest("s3://lake/orders/2024-05-01.parquet")
    assert out.properties["openlineage.facets"]["version"]["_deleted"] is True


def test_empty_dataset_name_is_named(make_airflow_events: Any) -> None:
    event = make_airflow_events()[0]
    event["inputs"][0].update(namespace="file", name="")
    with pytest.raises(InvalidEventError, match=r"inputs\[0\]\.name: artifact uri ''"):
        event_to_records(event, "s")


@pytest.mark.parametrize("where", ["job", "parent"])
def test_job_name_longer_than_a_name_is_kept_cut_to_fit(make_airflow_events: Any, store: Store,
                                                        where: str) -> None:
    """A job (or parent job) name longer than a stored name may be (Spark names a job after its
    output dataset, whose name may be a long path): the run is recorded, its stage (or
    pipeline) name is cut with a hash of the whole, and the whole job comes back in
    OpenLineage and in the Marquez graph."""
    from cmf_core.server.marquez import LineageGraph

    long = "x" * 600
    events = make_airflow_events()
    for event in events:
        if where == "job":
            event["job"]["name"] = f"etl.{long}"
        else:
            event["run"]["facets"]["parent"]["job"]["name"] = long
    for event in events:
        ingest(event, store, "s")
    (ex,) = store.list_executions()
    assert ex.status is ExecutionStatus.COMPLETED
    cut = ex.stage if where == "job" else ex.pipeline
    assert len(cut) == 512 and cut.startswith("x" * 400)
    job = events[0]["job"]
    assert ex.properties["openlineage.job"] == {"namespace": "airflow", "name": job["name"]}
    back = to_event_dicts(ExecutionLineage.from_store(store, ex.id))[-1]
    assert back["job"]["name"] == job["name"]
    assert back["run"]["facets"]["parent"]["job"]["name"] == (
        long if where == "parent" else "etl")
    graph = LineageGraph(store).graph(f"job:airflow:{job['name']}", depth=1)["graph"]
    (node,) = [n for n in graph if n["type"] == "JOB"]
    assert node["data"]["name"] == job["name"] and node["data"]["latestRun"]["id"] == ex.id
    assert node["data"]["outputs"] == [{"namespace": "s3://lake",
                                        "name": "orders/2024-05-01.parquet"}]


def test_dataset_longer_than_a_name_is_kept_cut_to_fit(make_airflow_events: Any,
                                                        store: Store) -> None:
    """A presigned URL longer than a stored URI may be: the run and the dataset are recorded,
    the URI is cut with a hash of the whole, and the whole name comes back in OpenLineage."""
    start, _, complete = make_airflow_events()
    name = "lake/orders.parquet?X-Amz-Signature=" + "ab" * 400
    for event in (start, complete):
        event["inputs"][0].update(namespace="s3://bucket", name=name)
    for event in (start, complete):
        ingest(event, store, "s")
    (ex,) = store.list_executions()
    assert ex.status is ExecutionStatus.COMPLETED
    (inp,) = [store.get_artifact(e.artifact_id) for e in store.events(execution_ids=[ex.id])
              if e.type.name == "INPUT"]
    assert inp is not None and inp.id == unversioned_digest("s3://bucket/" + name)
    assert len(inp.uri) == len(inp.name) == 512 and inp.uri.startswith("s3://bucket/lake/")
    other = make_airflow_events()[0]  # the same first 499 characters: another cut URI
    other["inputs"][0].update(namespace="s3://bucket", name=name[:-2] + "cd")
    (cut,) = [a for a in of(event_to_records(other, "s"), Artifact) if a.id != inp.id
              and a.name.startswith("lake/")]
    assert cut.uri[:499] == inp.uri[:499] and cut.uri != inp.uri
    back = to_event_dicts(ExecutionLineage.from_store(store, ex.id))[-1]
    assert {(d["namespace"], d["name"]) for d in back["inputs"]} == {("s3://bucket", name)}


@pytest.mark.parametrize(("where", "field"), [
    (("inputs", 0, "name"), r"inputs\[0\]\.name: 't\\ud800'"),
    (("job", "namespace"), r"job\.namespace: 't\\ud800'"),
    (("job", "name"), r"job\.name: 't\\ud800'"),
])
def test_lone_surrogate_is_named(make_airflow_events: Any, store: Store, where: tuple[Any, ...],
                                 field: str) -> None:
    """Text no store can hold (JSON's \\ud800 escape decodes to a lone surrogate)."""
    event = make_airflow_events()[0]
    inner = event
    for key in where[:-1]:
        inner = inner[key]
    inner[where[-1]] = "t\ud800"
    with pytest.raises(InvalidEventError, match=field + r" is not valid text \(a lone surr"):
        event_to_records(event, "s")
    with pytest.raises(InvalidEventError, match=field):
        ingest(event, store, "s")
    assert not store.lineage_events() and store.count_executions() == 0


def test_run_facet_marked_deleted_is_still_checked(make_lineage: Any) -> None:
    event = to_event_dicts(make_lineage())[-1]
    event["run"]["facets"]["cmf_energy"] = {"_producer": "https://x.org",
                                            "_schemaURL": "https://x.org/s", "_deleted": True}
    with pytest.raises(InvalidEventError, match=r"cmf_energy\.energy_kwh: required field"):
        event_to_records(event, "s")


def test_non_finite_metric_is_named(make_lineage: Any) -> None:
    event = to_event_dicts(make_lineage())[-1]
    event["run"]["facets"]["cmf_metrics"]["metrics"][1]["value"] = float("nan")
    with pytest.raises(InvalidEventError, match=r"cmf_metrics\.metrics\[1\]: .* not finite"):
        event_to_records(event, "s")


def test_canonical_event_id_ignores_key_order_only(make_airflow_events: Any) -> None:
    event = make_airflow_events()[0]
    shuffled = dict(reversed(list(copy.deepcopy(event).items())))
    assert canonical_event_id(event) == canonical_event_id(shuffled)
    assert len(canonical_event_id(event)) == 64
    shuffled["eventTime"] = "2024-05-01T12:00:00.000001Z"
    assert canonical_event_id(event) != canonical_event_id(shuffled)


def test_canonical_event_id_of_an_object_matches_its_dict(make_lineage: Any) -> None:
    lineage = make_lineage()
    assert [canonical_event_id(e) for e in to_run_events(lineage)] == [
        canonical_event_id(d) for d in to_event_dicts(lineage)]


def test_merge_dicts_is_a_recursive_union_with_high_winning() -> None:
    low = {"a": 1, "b": {"x": 1, "y": 2}, "c": [1]}
    high = {"a": 2, "b": {"y": 3, "z": 4}, "d": None}
    assert merge_dicts(low, high) == {"a": 2, "b": {"x": 1, "y": 3, "z": 4}, "c": [1], "d": None}


# against a real store ---------------------------------------------------------------------
def snapshot(store: Store, run_ids: list[str]) -> dict[str, Any]:
    """Everything the store holds about these runs, in a comparable form."""
    events = sorted(store.events(execution_ids=run_ids),
                    key=lambda e: (e.execution_id, e.artifact_id, e.type.value))
    artifacts = {e.artifact_id: store.get_artifact(e.artifact_id) for e in events}
    executions = [store.get_execution(i) for i in run_ids]
    names = {ex.pipeline for ex in executions if ex is not None}
    return {
        "executions": executions,
        "events": events,
        "artifacts": artifacts,
        "locations": {a: sorted(store.artifact_locations(a), key=repr) for a in artifacts},
        "metrics": sorted(store.metrics(run_ids), key=lambda m: (m.execution_id, m.name,
                                                                 m.step or -1)),
        "energy": sorted(store.energy(run_ids), key=lambda e: e.execution_id),
        "pipelines": [store.get_pipeline(n) for n in sorted(names)],
        "stages": sorted((s for s in store.list_stages() if s.pipeline in names),
                         key=lambda s: (s.pipeline, s.name)),
        "raw": sorted((e.id, e.body) for i in run_ids for e in store.lineage_events(run_id=i)),
    }


def test_invalid_event_stores_nothing(store: Store, make_lineage: Any) -> None:
    start, end = to_event_dicts(make_lineage())
    end["run"]["runId"] = "not-a-uuid"
    with pytest.raises(InvalidEventError, match=r"run\.runId: 'not-a-uuid' is not a UUID"):
        ingest(end, store, "site-a")
    del start["eventTime"]
    with pytest.raises(InvalidEventError, match="eventTime: required field is missing"):
        ingest(start, store, "site-a")
    assert store.list_pipelines() == [] and store.lineage_events() == []
    assert store.max_seq() == 0


def test_round_trip_cmf_to_openlineage_to_cmf(store: Store, make_lineage: Any) -> None:
    lineage = make_lineage("failed", error="OOM")
    results = [ingest(e, store, "site-b") for e in to_run_events(lineage)]
    assert [r.status for r in results] == [ExecutionStatus.RUNNING, ExecutionStatus.FAILED]
    assert results[-1].kind is EventKind.RUN and results[-1].execution_id == lineage.execution.id
    back = ExecutionLineage.from_store(store, lineage.execution.id)
    assert back == lineage
    assert to_event_dicts(back) == to_event_dicts(lineage)
    assert store.get_pipeline("churn.v2").site == "site-a"
    raw = store.lineage_events(run_id=lineage.execution.id)
    assert sorted(e.id for e in raw) == sorted(r.event_id for r in results)


def test_dataset_and_job_events_are_stored(store: Store, make_facet: Any) -> None:
    dataset_event = {"eventTime": "2024-05-01T12:00:00Z", "producer": "https://x.org/p",
                     "schemaURL": f"{SPEC}#/$defs/DatasetEvent",
                     "dataset": {"namespace": "s3://b", "name": "k.csv"}}
    job_event = {"eventTime": "2024-05-01T12:00:00Z", "producer": "https://x.org/p",
                 "schemaURL": f"{SPEC}#/$defs/JobEvent",
                 "job": {"namespace": "dbt", "name": "shop.model"}}
    r1 = ingest(dataset_event, store, "site-a")
    r2 = ingest(job_event, store, "site-a")
    assert (r1.kind, r1.execution_id, r2.kind) == (EventKind.DATASET, None, EventKind.JOB)
    artifact = store.get_artifact(unversioned_digest("s3://b/k.csv"))
    assert artifact is not None and artifact.uri == "s3://b/k.csv"
    assert [s.name for s in store.list_stages("shop")] == ["shop.model"]
    assert {e.id for e in store.lineage_events()} == {r1.event_id, r2.event_id}


def test_same_event_twice_changes_nothing(store: Store, make_airflow_events: Any) -> None:
    events = make_airflow_events()
    run_id = events[0]["run"]["runId"]
    for e in events:
        ingest(e, store, "site-a")
    before = snapshot(store, [run_id])
    results = [ingest(copy.deepcopy(e), store, "site-a") for e in events]
    assert snapshot(store, [run_id]) == before
    assert sorted(e.id for e in store.lineage_events(run_id=run_id)) == sorted(
        r.event_id for r in results)


def permuted(data: st.DataObject, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``events`` in any order, some of them twice."""
    extra = data.draw(st.lists(st.sampled_from(events), max_size=3))
    return data.draw(st.permutations([*events, *extra]))


def same_store_contents(store: Store, tmp_path_factory: pytest.TempPathFactory,
                        events: list[dict[str, Any]], order: list[dict[str, Any]]) -> None:
    """Ingesting ``order`` into ``store`` leaves it as ``events`` in order leave a new store."""
    run_ids = sorted({e["run"]["runId"] for e in events})
    reference = open_store(f"sqlite:///{tmp_path_factory.mktemp('ref') / 'ref.db'}", "site-a")
    try:
        for e in events:
            ingest(e, reference, "site-a")
        for e in order:
            ingest(e, store, "site-a")
        assert snapshot(store, run_ids) == snapshot(reference, run_ids)
    finally:
        reference.close()


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_order_and_duplicates_do_not_change_the_store(
        store: Store, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject,
        make_lineage: Any) -> None:
    """CMF's own events (START, then COMPLETE/FAIL/ABORT) of two runs, any order, repeats."""
    events = [e for status in ("completed", data.draw(st.sampled_from(
                  ["failed", "aborted", "skipped", "running"])))
              for e in to_event_dicts(make_lineage(status, tag=uuid.uuid4().hex, error="boom"))]
    same_store_contents(store, tmp_path_factory, events, permuted(data, events))


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_order_and_duplicates_do_not_change_the_store_for_foreign_events(
        store: Store, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject,
        make_airflow_events: Any) -> None:
    """A foreign producer's START, RUNNING, COMPLETE each carry facets the others lack."""
    events = make_airflow_events()
    same_store_contents(store, tmp_path_factory, events, permuted(data, events))


def test_start_after_complete_loses_nothing(store: Store, make_airflow_events: Any) -> None:
    start, running, complete = make_airflow_events()
    for e in (complete, running, start):
        ingest(e, store, "site-a")
    ex = store.get_execution(start["run"]["runId"])
    assert ex is not None and ex.status is ExecutionStatus.COMPLETED
    assert ex.started_at == 1714564800.0 and ex.ended_at == 1714564860.0
    assert set(ex.properties["openlineage.run_facets"]) == {
        "parent", "nominalTime", "progress", "processing_engine"}


def test_late_start_moves_started_at_back_and_keeps_the_terminal_state(
        store: Store, make_airflow_events: Any) -> None:
    """What the store contract already guarantees for a late START."""
    start, _, complete = make_airflow_events()
    ingest(complete, store, "site-a")
    ingest(start, store, "site-a")
    ex = store.get_execution(start["run"]["runId"])
    assert ex is not None and ex.status is ExecutionStatus.COMPLETED
    assert (ex.started_at, ex.ended_at) == (1714564800.0, 1714564860.0)
    assert "processing_engine" in ex.properties["openlineage.run_facets"]
