"""Done-when: the Python API, the CmfTransport and HTTP (``cmf serve``) give identical CMF
records for the same events; CMF -> OpenLineage -> CMF keeps lineage; every event CMF emits
is accepted by an OpenLineage backend (ours, validating against spec 2-0-2)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from openlineage.client import OpenLineageClient
from openlineage.client.transport.http import HttpConfig, HttpTransport

from cmf_core.openlineage.convert import ExecutionLineage, to_event_dicts, to_run_events
from cmf_core.openlineage.ingest import ingest
from cmf_core.openlineage.transport import CMF_TRANSPORT, MEMORY_TRANSPORT
from cmf_core.openlineage.validate import validate_event
from cmf_core.store import Store, open_store
from tests.core.openlineage.conftest import airflow_events, build_lineage
from tests.core.server.conftest import LiveServer, live_server, store_contents

SPEC = "https://openlineage.io/spec/2-0-2/OpenLineage.json"


def lineages() -> list[ExecutionLineage]:
    return [build_lineage(tag="a"), build_lineage("failed", tag="b", error="oom"),
            build_lineage("running", tag="c"), build_lineage("skipped", tag="d")]


def foreign_events() -> list[dict[str, Any]]:
    """A foreign producer's runs, a DatasetEvent and a JobEvent (dicts, as on the wire)."""
    return [*airflow_events(), *airflow_events(), {
        "eventTime": "2024-05-01T12:00:00Z", "producer": "https://x.org/p",
        "schemaURL": f"{SPEC}#/$defs/DatasetEvent",
        "dataset": {"namespace": "gs://bucket", "name": "raw/events.avro"}}, {
        "eventTime": "2024-05-01T12:00:00Z", "producer": "https://x.org/p",
        "schemaURL": f"{SPEC}#/$defs/JobEvent",
        "job": {"namespace": "dbt", "name": "shop.orders_model"}, "inputs": [], "outputs": []}]


def client_events(lineage_list: list[ExecutionLineage]) -> list[dict[str, Any]]:
    """What openlineage-python's client emits for CMF's events (it adds its ``tags`` facet)."""
    client = OpenLineageClient(config={"transport": {"type": MEMORY_TRANSPORT}})
    for lineage in lineage_list:
        for event in to_run_events(lineage):
            client.emit(event)
    return client.transport.pop_events()  # type: ignore[attr-defined]


def test_python_api_transport_and_http_give_identical_records(
        store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cmf = lineages()
    foreign = foreign_events()
    # 1. Python API
    api = open_store(f"sqlite:///{tmp_path / 'api.db'}", site="site-a")
    for event in [*client_events(cmf), *foreign]:
        ingest(copy.deepcopy(event), api, "site-a")
    # 2. CmfTransport, configured for openlineage-python by environment variables alone
    via_transport = tmp_path / "transport.db"
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__TYPE", CMF_TRANSPORT)
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__STORE_URL", f"sqlite:///{via_transport}")
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__SITE", "site-a")
    client = OpenLineageClient()
    for lineage in cmf:
        for event in to_run_events(lineage):
            client.emit(event)
    for event in foreign:  # the client takes only event objects: dicts go to the transport
        client.transport.emit(copy.deepcopy(event))
    assert client.close()
    # 3. HTTP: openlineage-python's HTTP transport and plain JSON against cmf serve
    with live_server(store) as live, live.client() as http:
        client = OpenLineageClient(transport=HttpTransport(HttpConfig(url=live.url)))
        for lineage in cmf:
            for event in to_run_events(lineage):
                client.emit(event)
        for event in foreign:
            assert http.post("/api/v1/lineage", json=event).status_code == 201
    transport = open_store(f"sqlite:///{via_transport}", site="site-a")
    try:
        expected = store_contents(api)
        assert expected["LineageEvent"] and expected["Execution"] and expected["Metric"]
        assert store_contents(transport) == expected
        assert store_contents(store) == expected
    finally:
        api.close()
        transport.close()


def test_round_trip_through_http_keeps_lineage(server: LiveServer) -> None:
    cmf = lineages()
    with server.client() as http:
        for lineage in cmf:
            for event in to_event_dicts(lineage):
                validate_event(event)  # every event CMF emits is valid OpenLineage ...
                r = http.post("/api/v1/lineage", json=event)
                assert r.status_code == 201, r.text  # ... and an OpenLineage backend takes it
    for lineage in cmf:
        assert ExecutionLineage.from_store(server.store, lineage.execution.id) == lineage
