"""Validation against the vendored spec: valid events pass, invalid ones name the bad field."""

from __future__ import annotations

import copy
import re
import uuid
from typing import Any

import pytest
from openlineage.client.event_v2 import DatasetEvent, Job, JobEvent, StaticDataset
from openlineage.client.facet_v2 import schema_dataset

from cmf_core.errors import InvalidEventError
from cmf_core.openlineage.convert import event_to_dict, to_event_dicts, to_run_events
from cmf_core.openlineage.validate import (
    EventKind,
    FacetLocation,
    known_facets,
    problems,
    validate_event,
    validate_facet,
)


@pytest.fixture
def run_event(make_lineage: Any) -> dict[str, Any]:
    return to_event_dicts(make_lineage())[-1]


def rejected(event: Any) -> str:
    with pytest.raises(InvalidEventError) as info:
        validate_event(event)
    return str(info.value)


def test_valid_events_of_every_kind(run_event: dict[str, Any], make_airflow_events: Any) -> None:
    assert validate_event(run_event) is EventKind.RUN
    for event in make_airflow_events():
        assert validate_event(event) is EventKind.RUN
    dataset_event = event_to_dict(DatasetEvent(
        eventTime="2024-05-01T12:00:00Z",
        dataset=StaticDataset(namespace="s3://b", name="k", facets={
            "schema": schema_dataset.SchemaDatasetFacet(
                fields=[schema_dataset.SchemaDatasetFacetFields(name="id", type="int")])})),
    )
    assert validate_event(dataset_event) is EventKind.DATASET
    job_event = event_to_dict(JobEvent(eventTime="2024-05-01T12:00:00Z",
                                       job=Job(namespace="n", name="j")))
    assert validate_event(job_event) is EventKind.JOB
    assert problems(run_event) == []


def test_openlineage_python_objects_are_validated_too(make_lineage: Any) -> None:
    start = to_run_events(make_lineage())[0]
    assert validate_event(start) is EventKind.RUN
    start.eventTime = "2024-05-01T12:00:00"  # the client accepts it; the spec wants an offset
    assert "eventTime: '2024-05-01T12:00:00' is not an RFC 3339 date-time" in rejected(start)


def test_missing_run_id_is_named(run_event: dict[str, Any]) -> None:
    del run_event["run"]["runId"]
    assert "run.runId: required field is missing" in rejected(run_event)


def test_non_uuid_run_id_is_named(run_event: dict[str, Any]) -> None:
    run_event["run"]["runId"] = "abc"
    assert "run.runId: 'abc' is not a UUID" in rejected(run_event)


@pytest.mark.parametrize("when", ["2024-05-01", "2024-05-01T12:00:00", "May 1st"])
def test_event_time_needs_date_time_and_offset(run_event: dict[str, Any], when: str) -> None:
    run_event["eventTime"] = when
    message = rejected(run_event)
    assert f"eventTime: {when!r} is not an RFC 3339 date-time" in message
    assert "needs a date, a time and a UTC offset" in message


def test_bad_spec_facet_is_named(run_event: dict[str, Any]) -> None:
    run_event["run"]["facets"]["errorMessage"] = {
        "_producer": "https://x.org", "_schemaURL": "https://x.org/s", "message": "boom"}
    assert ("run.facets.errorMessage.programmingLanguage: required field is missing"
            in rejected(run_event))


def test_bad_parent_run_id_is_named(run_event: dict[str, Any]) -> None:
    run_event["run"]["facets"]["parent"]["run"]["runId"] = "dag-run-1"
    assert "run.facets.parent.run.runId: 'dag-run-1' is not a UUID" in rejected(run_event)


def test_bad_cmf_facet_is_named(run_event: dict[str, Any]) -> None:
    run_event["outputs"][1]["facets"]["cmf_artifact"]["type"] = 7
    run_event["run"]["facets"]["cmf_energy"]["co2e_kg"] = "lots"
    message = rejected(run_event)
    assert "outputs[1].facets.cmf_artifact.type: 7 is not of type 'string'" in message
    assert "run.facets.cmf_energy.co2e_kg: 'lots' is not of type 'number'" in message


def test_facet_without_producer_is_named(run_event: dict[str, Any]) -> None:
    del run_event["run"]["facets"]["cmf_site"]["_producer"]
    run_event["job"]["facets"]["custom"] = {"_schemaURL": "https://x.org/s"}
    message = rejected(run_event)
    assert "run.facets.cmf_site._producer: required field is missing" in message
    assert "job.facets.custom._producer: required field is missing" in message


def test_custom_facet_missing_both_base_fields_is_named_not_dumped(
        run_event: dict[str, Any]) -> None:
    """A facet lacking ``_producer`` and ``_schemaURL`` (two equally good errors under the
    spec's one-branch ``anyOf``) is named field by field, not as the whole facet map."""
    run_event["run"]["facets"]["spark_properties"] = {"properties": {"spark.master": "local"}}
    run_event["outputs"][0]["outputFacets"] = {"custom": "text"}
    message = rejected(run_event)
    assert message == (
        "invalid OpenLineage RunEvent: outputs[0].outputFacets.custom: 'text' is not of type "
        "'object'; run.facets.spark_properties._producer: required field is missing; "
        "run.facets.spark_properties._schemaURL: required field is missing")


def test_all_problems_are_listed_sorted(run_event: dict[str, Any]) -> None:
    run_event["eventType"] = "DONE"
    run_event["producer"] = "not a uri"
    del run_event["job"]["name"]
    found = [str(p) for p in problems(run_event)]
    assert found == [
        "eventType: 'DONE' is not one of START, RUNNING, COMPLETE, ABORT, FAIL, OTHER",
        "job.name: required field is missing",
        "producer: 'not a uri' is not a URI (it needs a scheme, e.g. 'https://...', and no "
        "spaces)",
    ]


def test_event_shapes_that_are_not_events() -> None:
    assert "none of 'run', 'job' or 'dataset'" in rejected({"eventTime": "x"})
    assert "is a JSON object, not list" in rejected([1])
    both = {"eventTime": "2024-05-01T12:00:00Z", "producer": "https://x.org",
            "schemaURL": "https://x.org/s", "dataset": {"namespace": "a", "name": "b"},
            "job": {"namespace": "a", "name": "b"}}
    assert "both a DatasetEvent and a JobEvent" in rejected(both)
    with_run = {**both, "run": {"runId": str(uuid.uuid4())}}
    del with_run["job"]
    assert validate_event(with_run) is EventKind.DATASET  # the spec's oneOf allows it


def test_event_type_without_run_is_a_run_event_missing_run(
        make_airflow_events: Any) -> None:
    """Only a RunEvent has an eventType: without its run it is rejected, not taken for a
    JobEvent (the spec's JobEvent schema would ignore the field)."""
    event = make_airflow_events()[0]
    del event["run"]
    assert [str(p) for p in problems(event)] == ["run: required field is missing"]
    assert "invalid OpenLineage RunEvent: run: required field is missing" in rejected(event)
    del event["eventType"]
    assert validate_event(event) is EventKind.JOB


def test_deleted_facet_marker_is_not_checked_against_its_schema(
        make_airflow_events: Any) -> None:
    event = make_airflow_events()[0]
    event["inputs"][0]["facets"]["schema"] = {"_producer": "https://x.org",
                                              "_schemaURL": "https://x.org/s", "_deleted": True}
    assert validate_event(event) is EventKind.RUN
    event["inputs"][0]["facets"]["schema"]["_deleted"] = False
    event["inputs"][0]["facets"]["schema"]["fields"] = "id"
    assert "inputs[0].facets.schema.fields: 'id' is not of type 'array'" in rejected(event)


def test_facets_are_chosen_by_key_and_location() -> None:
    assert {"parent", "errorMessage", "nominalTime", "tags", "cmf_energy"} <= known_facets("run")
    assert {"jobType", "sql", "tags", "ownership"} <= known_facets(FacetLocation.JOB)
    assert {"schema", "version", "dataSource", "tags", "cmf_artifact", "dataQualityMetrics"} <= \
        known_facets("dataset")
    assert {"dataQualityMetrics", "inputStatistics", "subset"} <= known_facets("input")
    assert {"outputStatistics", "subset"} <= known_facets("output")
    assert "cmf_artifact" not in known_facets("run")
    # the same key is a different facet elsewhere: a dataset's 'tags' needs key and value
    tags = {"_producer": "https://x.org", "_schemaURL": "https://x.org/s", "tags": [{"key": "a"}]}
    with pytest.raises(InvalidEventError, match=re.escape("dataset facet tags.tags[0].value")):
        validate_facet("dataset", "tags", tags)


def test_unknown_facet_needs_only_the_base_fields() -> None:
    validate_facet("run", "myCompany_thing", {"_producer": "https://x.org",
                                              "_schemaURL": "https://x.org/s", "any": 1})
    with pytest.raises(InvalidEventError, match="_schemaURL: required field is missing"):
        validate_facet("run", "myCompany_thing", {"_producer": "https://x.org"})


def test_validation_does_not_change_the_event(run_event: dict[str, Any]) -> None:
    before = copy.deepcopy(run_event)
    validate_event(run_event)
    run_event["run"]["runId"] = "bad"
    problems(run_event)
    before["run"]["runId"] = "bad"
    assert run_event == before
