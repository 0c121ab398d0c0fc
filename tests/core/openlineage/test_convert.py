"""CMF -> OpenLineage: every emitted event is valid and says what the records say."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import RunEvent, RunState
from openlineage.client.transport.file import FileConfig, FileTransport

from cmf_core.errors import InvalidInputError
from cmf_core.model import Artifact, Event, Execution, Metric
from cmf_core.openlineage.convert import (
    ExecutionLineage,
    default_parent_run_id,
    to_event_dicts,
    to_run_events,
)
from cmf_core.openlineage.facets import PRODUCER
from cmf_core.openlineage.ingest import event_to_records, ingest
from cmf_core.openlineage.times import parse_time
from cmf_core.openlineage.validate import validate_event
from cmf_core.store import Store

STATES = {"completed": "COMPLETE", "failed": "FAIL", "aborted": "ABORT", "skipped": "COMPLETE"}


@pytest.mark.parametrize("status", ["running", *STATES])
def test_events_are_valid_and_follow_the_run(make_lineage: Any, status: str) -> None:
    lineage = make_lineage(status, error="boom" if status == "failed" else None)
    ex = lineage.execution
    events = to_event_dicts(lineage)
    for e in events:
        validate_event(e)
        assert e["producer"] == PRODUCER
        assert e["run"]["runId"] == ex.id
        assert e["job"] == {"namespace": "cmf", "name": "churn.v2.train", "facets": {}}
        parent = e["run"]["facets"]["parent"]
        assert parent["job"] == {"namespace": "cmf", "name": "churn.v2", "facets": {}}
        assert parent["run"]["runId"] == default_parent_run_id("cmf", "churn.v2")
        assert [d["name"] for d in e["inputs"]] == ["/data/churn/train.csv"]
    start = events[0]
    assert start["eventType"] == "START"
    assert parse_time(start["eventTime"]) == ex.started_at
    assert start["run"]["facets"]["cmf_execution"]["status"] == "running"
    if status == "running":
        assert len(events) == 1
        return
    assert len(events) == 2 and start["outputs"] == []
    end = events[1]
    assert end["eventType"] == STATES[status]
    assert parse_time(end["eventTime"]) == ex.ended_at
    facets = end["run"]["facets"]
    assert facets["cmf_execution"]["status"] == status
    assert facets["cmf_params"]["params"] == dict(ex.params)
    assert [(m["name"], m.get("step")) for m in facets["cmf_metrics"]["metrics"]] == [
        ("auc", None), ("loss", 0), ("loss", 1), ("loss", 2)]
    assert facets["cmf_energy"]["energy_kwh"] == 0.042
    assert facets["cmf_site"]["name"] == "site-a"
    assert ("errorMessage" in facets) is (status == "failed")
    outputs = {(d["namespace"], d["name"]): d["facets"]["cmf_artifact"] for d in end["outputs"]}
    assert set(outputs) == {("s3://models", "churn/model.pkl"), ("file", "/reports/churn.json")}
    model = outputs["s3://models", "churn/model.pkl"]
    assert model["digest"] == next(a.id for a in lineage.outputs if a.type == "Model")
    assert model["type"] == "Model"
    assert model["custom_properties"] == {"framework": "sklearn"}
    assert outputs["file", "/reports/churn.json"]["uri"] == "file:///reports/churn.json"


def test_namespace_and_parent_run_are_configurable(make_lineage: Any) -> None:
    parent = "0190f0a0-0000-7000-8000-000000000001"
    events = to_event_dicts(make_lineage(), namespace="hpc-a", parent_run_id=parent)
    for e in events:
        validate_event(e)
        assert e["job"]["namespace"] == "hpc-a"
        assert e["run"]["facets"]["parent"]["run"]["runId"] == parent
        assert e["run"]["facets"]["parent"]["job"]["namespace"] == "hpc-a"
    with pytest.raises(InvalidInputError, match="namespace must be non-empty"):
        to_event_dicts(make_lineage(), namespace="")


def test_objects_and_dicts_are_the_same_events(make_lineage: Any) -> None:
    lineage = make_lineage()
    objects = to_run_events(lineage)
    assert all(isinstance(e, RunEvent) for e in objects)
    assert [e.eventType for e in objects] == [RunState.START, RunState.COMPLETE]
    dicts = to_event_dicts(lineage)
    assert [json.loads(json.dumps(d)) for d in dicts] == dicts
    assert [e.run.runId for e in objects] == [d["run"]["runId"] for d in dicts]


def test_run_events_travel_through_an_openlineage_python_transport(
        make_lineage: Any, tmp_path: Path, sqlite_store: Store) -> None:
    """Sent with the real client and its file transport, read back, validated, ingested."""
    lineage = make_lineage()
    log = tmp_path / "ol.jsonl"
    client = OpenLineageClient(transport=FileTransport(FileConfig(log_file_path=str(log),
                                                                  append=True)))
    for event in to_run_events(lineage):
        client.emit(event)
    sent = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["eventType"] for e in sent] == ["START", "COMPLETE"]
    records = [r for e in sent for r in event_to_records(e, "elsewhere")]
    for e in sent:
        ingest(e, sqlite_store, "elsewhere")
    execution = sqlite_store.get_execution(lineage.execution.id)
    assert execution is not None
    # the client adds its own 'tags' run facet: a foreign facet, kept as a property
    tags = execution.properties["openlineage.run_facets"]["tags"]
    assert tags["tags"][0]["key"] == "openlineage_client_version"
    assert execution == replace(lineage.execution, properties={
        **lineage.execution.properties, "openlineage.run_facets": {"tags": tags}})
    artifacts = {r.id: r for r in records if isinstance(r, Artifact)}
    assert artifacts == {a.id: a for a in (*lineage.inputs, *lineage.outputs)}


def test_from_records_pairs_events_with_artifacts(make_lineage: Any) -> None:
    lineage = make_lineage()
    ex = lineage.execution
    arts = [*lineage.inputs, *lineage.outputs]
    events = [Event(ex.id, a.id, "INPUT" if a in lineage.inputs else "OUTPUT") for a in arts]
    assert ExecutionLineage.from_records(ex, arts, events, lineage.metrics, lineage.energy) \
        == lineage
    with pytest.raises(InvalidInputError, match="not among the artifacts given"):
        ExecutionLineage.from_records(ex, arts[:1], events)


# text a store can hold: no lone surrogates (not UTF-8), no NUL (not PostgreSQL)
CHARS = st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="\x00")
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(CHARS, max_size=5)
                    | st.floats(allow_nan=False, allow_infinity=False),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(CHARS, max_size=4), inner, max_size=3),
                    max_leaves=6)
NAMES = st.text(CHARS, min_size=1, max_size=12).filter(str.strip)


@settings(max_examples=60, deadline=None)
@given(pipeline=NAMES, stage=NAMES, params=st.dictionaries(st.text(CHARS, max_size=6), JSON),
       props=st.dictionaries(st.text(CHARS, max_size=6), JSON), uri=NAMES,
       status=st.sampled_from(["running", *STATES]),
       metrics=st.lists(st.tuples(NAMES, st.floats(allow_nan=False, allow_infinity=False),
                                  st.none() | st.integers(0, 10**6)), max_size=4))
def test_any_execution_gives_valid_events(pipeline: str, stage: str, params: dict[str, Any],
                                          props: dict[str, Any], uri: str, status: str,
                                          metrics: list[tuple[str, float, int | None]]) -> None:
    ex = Execution(pipeline=pipeline, stage=stage, site="s", params=params, properties=props)
    if status != "running":
        ex = ex.ended(status)
    art = Artifact(id="sha256:" + "e" * 64, type="Dataset", name=uri, uri=uri, site="s")
    lineage = ExecutionLineage.from_records(
        ex, [art], [Event(ex.id, art.id, "OUTPUT")],
        [Metric(ex.id, n, v, step=s) for n, v, s in metrics])
    for event in to_event_dicts(lineage):
        assert validate_event(event)


@pytest.mark.parametrize("parent", [True, False])
def test_a_foreign_run_is_emitted_as_the_job_its_producer_named(
        make_airflow_events: Any, sqlite_store: Store, tmp_path: Path, parent: bool) -> None:
    """An Airflow task run read from the store is emitted as Airflow's job (namespace, name,
    job facets), as the Marquez API and ``cmf reap`` name it, not ``cmf:<pipeline>.<stage>``;
    another store reading the events back records the same execution."""
    from cmf_core.store import open_store

    events = make_airflow_events()
    if not parent:  # the parent CMF derives is then in the job's namespace, and not kept
        for e in events:
            del e["run"]["facets"]["parent"]
    for e in events:
        ingest(e, sqlite_store, "site-a")
    run_id = events[0]["run"]["runId"]
    out = to_event_dicts(ExecutionLineage.from_store(sqlite_store, run_id), namespace="hpc-a")
    assert [e["eventType"] for e in out] == ["START", "COMPLETE"]
    for e in out:
        validate_event(e)
        assert e["job"] == {"namespace": "airflow", "name": "etl.extract",
                            "facets": events[0]["job"]["facets"]}
        assert e["run"]["facets"]["parent"]["job"] == (
            events[0]["run"]["facets"]["parent"]["job"] if parent
            else {"namespace": "airflow", "name": "etl", "facets": {}})
    # the producer's facets travel as facets an OpenLineage backend reads, not only inside
    # cmf_execution: run facets, dataset facets, output facets, the error with its stack
    start, end = out
    assert start["run"]["facets"]["nominalTime"] == events[0]["run"]["facets"]["nominalTime"]
    assert end["run"]["facets"]["processing_engine"] == \
        events[2]["run"]["facets"]["processing_engine"]
    assert start["inputs"][0]["facets"]["schema"] == events[0]["inputs"][0]["facets"]["schema"]
    assert end["outputs"][0]["facets"]["version"] == events[2]["outputs"][0]["facets"]["version"]
    assert end["outputs"][0]["outputFacets"] == events[2]["outputs"][0]["outputFacets"]
    with open_store(f"sqlite:///{tmp_path / 'other.db'}", site="site-b") as other:
        for e in out:
            ingest(e, other, "site-b")
        assert other.get_execution(run_id) == sqlite_store.get_execution(run_id)
        ids = sorted(a.id for a in sqlite_store.find_artifacts())
        assert ids == sorted(a.id for a in other.find_artifacts())
        assert other.find_artifacts(ids=ids) == sqlite_store.find_artifacts(ids=ids)


def test_a_foreign_error_is_emitted_with_its_stack_trace(
        make_airflow_events: Any, make_facet: Any, sqlite_store: Store, tmp_path: Path) -> None:
    """The producer's errorMessage facet (stack trace and language included) is what the FAIL
    event carries, and reading it back gives the same execution."""
    from cmf_core.store import open_store

    events = make_airflow_events()
    events[2]["eventType"] = "FAIL"
    error = make_facet(message="division by zero", programmingLanguage="JAVA",
                       stackTrace="java.lang.ArithmeticException: / by zero")
    events[2]["run"]["facets"]["errorMessage"] = error
    for e in events:
        ingest(e, sqlite_store, "site-a")
    run_id = events[0]["run"]["runId"]
    start, end = to_event_dicts(ExecutionLineage.from_store(sqlite_store, run_id))
    assert "errorMessage" not in start["run"]["facets"]
    assert end["eventType"] == "FAIL" and end["run"]["facets"]["errorMessage"] == error
    with open_store(f"sqlite:///{tmp_path / 'other.db'}", site="site-b") as other:
        for e in (start, end):
            ingest(e, other, "site-b")
        assert other.get_execution(run_id) == sqlite_store.get_execution(run_id)


def test_openlineage_properties_set_by_hand_never_make_an_invalid_event(
        make_lineage: Any) -> None:
    """Only real facets (``_producer`` and ``_schemaURL``) of the ``openlineage.*`` properties
    become facets; anything else a user put there stays in ``cmf_execution`` only."""
    lineage = make_lineage()
    ex = replace(lineage.execution, properties={
        "openlineage.run_facets": {"x": 1, "y": {"no": "producer"}},
        "openlineage.output_facets": "junk", "openlineage.input_facets": {"/data": 3}})
    for e in to_event_dicts(replace(lineage, execution=ex)):
        validate_event(e)
        assert not {"x", "y"} & set(e["run"]["facets"])
