"""OpenLineage endpoints (Marquez-compatible): POST events and batches, bad input, GET graph
and events, all against a real uvicorn server and real clients."""

from __future__ import annotations

import copy
import gzip
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from openlineage.client import OpenLineageClient
from openlineage.client.transport.http import HttpConfig, HttpTransport

from cmf_core import jsonutil
from cmf_core.model import ExecutionStatus
from cmf_core.openlineage.convert import (
    RUN_FACETS_PROPERTY,
    ExecutionLineage,
    to_event_dicts,
    to_run_events,
)
from cmf_core.openlineage.validate import validate_event
from cmf_core.server.body import MAX_JSON_DEPTH
from cmf_core.store import Store
from tests.core.openlineage.conftest import FOREIGN, airflow_events, build_lineage, facet
from tests.core.server.conftest import LiveServer, SharedServer, shared_server

SPEC = "https://openlineage.io/spec/2-0-2/OpenLineage.json"


def nothing_stored(store: Store) -> bool:
    return not store.lineage_events() and store.count_executions() == 0 \
        and not store.find_artifacts()


@pytest.fixture
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c


@pytest.fixture(scope="module")
def shared_empty(new_store: Callable[[], Store],
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedServer]:
    with shared_server(new_store, tmp_path_factory) as shared:
        yield shared


@pytest.fixture
def empty_server(shared_empty: SharedServer) -> LiveServer:
    """A server whose store is empty, shared by the tests whose input it must refuse (or that
    only read): a test that stored something gets the next test a fresh one."""
    return shared_empty.get()


@pytest.fixture
def empty_client(empty_server: LiveServer) -> Iterator[httpx.Client]:
    with empty_server.client() as c:
        yield c


# POST: the real openlineage-python client ----------------------------------------------------
def test_openlineage_http_transport_posts_to_cmf_serve(server: LiveServer) -> None:
    """openlineage-python's own HTTP transport (requests, retries) against ``cmf serve``."""
    lineage = build_lineage()
    client = OpenLineageClient(transport=HttpTransport(HttpConfig(url=server.url)))
    for event in to_run_events(lineage):
        client.emit(event)  # raises on any non-2xx
    client.close()
    assert without_client_tags(ExecutionLineage.from_store(server.store,
                                                           lineage.execution.id)) == lineage


def without_client_tags(lineage: ExecutionLineage) -> ExecutionLineage:
    """``lineage`` less the ``tags`` run facet openlineage-python's client adds to each event."""
    props = dict(lineage.execution.properties)
    facets = dict(props.pop(RUN_FACETS_PROPERTY))
    assert facets.pop("tags")["tags"][0]["key"] == "openlineage_client_version"
    assert not facets
    return replace(lineage, execution=replace(lineage.execution, properties=props))


def test_gzip_compressed_events_are_accepted(serve: Callable[..., Any]) -> None:
    lineage = build_lineage()
    with serve() as live:
        transport = HttpTransport(HttpConfig.from_dict({"url": live.url,
                                                        "compression": "gzip"}))
        for event in to_run_events(lineage):
            assert transport.emit(event).status_code == 201
        assert live.store.get_execution(lineage.execution.id).status is \
            ExecutionStatus.COMPLETED


def test_gzip_bodies_cut_short_or_in_several_members(client: httpx.Client,
                                                   server: LiveServer) -> None:
    """A gzip body whose end (its CRC) never came is 400, not taken unchecked; a body of
    several gzip members (RFC 1952; what gzip.decompress reads) is read whole."""
    gz = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    first, second = airflow_events()[:2]
    cut = client.post("/api/v1/lineage", content=gzip.compress(json.dumps(first).encode())[:-8],
                      headers=gz)
    assert cut.status_code == 400 and "truncated" in cut.json()["message"]
    assert nothing_stored(server.store)
    text = json.dumps([first, second]).encode()
    half = len(text) // 2
    both = client.post("/api/v1/lineage/batch", headers=gz,
                       content=gzip.compress(text[:half]) + gzip.compress(text[half:]))
    assert both.status_code == 201, both.text
    assert both.json()["accepted"] == 2 and len(server.store.lineage_events()) == 2
    junk = client.post("/api/v1/lineage", headers=gz,
                       content=gzip.compress(json.dumps(first).encode()) + b"\0" * 64)
    assert junk.status_code == 400 and "not valid gzip" in junk.json()["message"]
    assert len(server.store.lineage_events()) == 2


def test_gzip_bytes_past_the_limit_are_413_even_when_they_inflate_to_nothing(
        serve: Callable[..., Any]) -> None:
    """Bytes sent after a gzip body's end were kept in memory without limit; empty gzip
    members inflate to nothing: either way the bytes sent are bounded by the limit."""
    event = gzip.compress(json.dumps(airflow_events()[0]).encode())
    gz = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    with serve(max_body_bytes=10_000) as live, live.client() as c:
        for tail in (gzip.compress(b"") * 1000, b"\0" * 20_000):
            r = c.post("/api/v1/lineage", content=event + tail, headers=gz)
            assert r.status_code == 413, r.text
        assert not live.store.lineage_events()


def test_response_names_what_was_recorded(client: httpx.Client) -> None:
    start, _, complete = airflow_events()
    r = client.post("/api/v1/lineage", json=start)
    assert r.status_code == 201
    body = r.json()
    assert body["kind"] == "RunEvent" and body["runId"] == start["run"]["runId"]
    assert body["executionStatus"] == "running" and len(body["eventId"]) == 64
    assert client.post("/api/v1/lineage", json=complete).json()["executionStatus"] == "completed"


def test_dataset_and_job_events_are_recorded(client: httpx.Client, server: LiveServer) -> None:
    dataset_event = {"eventTime": "2024-05-01T12:00:00Z", "producer": FOREIGN,
                     "schemaURL": f"{SPEC}#/$defs/DatasetEvent",
                     "dataset": {"namespace": "gs://bucket", "name": "raw/events.avro"}}
    job_event = {"eventTime": "2024-05-01T12:00:00Z", "producer": FOREIGN,
                 "schemaURL": f"{SPEC}#/$defs/JobEvent",
                 "job": {"namespace": "dbt", "name": "shop.orders_model"},
                 "inputs": [], "outputs": []}
    assert client.post("/api/v1/lineage", json=dataset_event).json()["kind"] == "DatasetEvent"
    assert client.post("/api/v1/lineage", json=job_event).json()["kind"] == "JobEvent"
    assert [a.uri for a in server.store.find_artifacts()] == ["gs://bucket/raw/events.avro"]
    assert [s.name for s in server.store.list_stages("shop")] == ["shop.orders_model"]


def test_concurrent_posts_are_group_committed(serve: Callable[..., Any]) -> None:
    """Many clients at once: every event acknowledged is stored, in fewer transactions."""
    import concurrent.futures

    events = [e for _ in range(40) for e in airflow_events()]
    with serve() as live:
        def post(chunk: list[dict[str, Any]]) -> list[int]:
            with live.client() as c:
                return [c.post("/api/v1/lineage", json=e).status_code for e in chunk]

        per_run = [events[i:i + 3] for i in range(0, len(events), 3)]  # each run in order
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            codes = [c for chunk in pool.map(post, per_run) for c in chunk]
        writer = live.app.state.writer
        assert codes == [201] * len(events)
        assert len(live.store.lineage_events()) == len(events)
        assert live.store.count_executions() == 40
        assert writer.batches < len(events) and writer.largest_batch > 1
        assert all(e.status is ExecutionStatus.COMPLETED for e in live.store.list_executions())


# POST: bad input -------------------------------------------------------------------------
def _start() -> dict[str, Any]:
    return copy.deepcopy(airflow_events()[0])


@pytest.mark.parametrize(("change", "field", "text"), [
    (lambda e: e["run"].__setitem__("runId", "run-42"), "run.runId", "is not a UUID"),
    (lambda e: e.__setitem__("eventTime", "2024-05-01"), "eventTime",
     "needs a date, a time and a UTC offset"),
    (lambda e: e.__setitem__("eventTime", "2024-05-01T12:00:00"), "eventTime",
     "is not an RFC 3339 date-time"),
    (lambda e: e.pop("producer"), "producer", "required field is missing"),
    (lambda e: e.__setitem__("eventType", "DONE"), "eventType", "is not one of"),
    (lambda e: e["run"]["facets"].__setitem__("cmf_params", facet(params=[1])),
     "run.facets.cmf_params", ""),
    (lambda e: e.__setitem__("eventTime", "0000-01-01T00:00:00Z"), "eventTime",
     "is out of range; a time must be from 0001-01-01T00:00:00Z"),
    (lambda e: e.__setitem__("eventTime", "1969-12-31T23:59:59Z"), "eventTime",
     "is before 1970-01-01T00:00:00Z, the earliest time CMF records"),
    (lambda e: e.pop("run"), "run", "required field is missing"),  # not taken for a JobEvent
    (lambda e: e["run"]["facets"].__setitem__("cmf_energy", facet(energy_kwh=10**400,
                                                                  co2e_kg=1.0)),
     "run.facets.cmf_energy", "a number is too large for a float"),
])
def test_invalid_event_is_rejected_naming_the_field(
        empty_client: httpx.Client, empty_server: LiveServer,
        change: Callable[[dict[str, Any]], Any], field: str, text: str) -> None:
    event = _start()
    change(event)
    r = empty_client.post("/api/v1/lineage", json=event)
    assert r.status_code == 400
    body = r.json()
    assert body["code"] == 400 and body["error"] == "InvalidEventError"
    assert f"{field}" in body["message"] and text in body["message"]
    assert nothing_stored(empty_server.store)


def test_a_dataset_uri_longer_than_a_stored_one_is_kept_cut(client: httpx.Client,
                                                             server: LiveServer) -> None:
    """A long namespace (the URI is what every peer's import must take too): the run is
    recorded, the URI cut to the 512 characters a store holds, ending in a hash of the whole."""
    event = _start()
    event["inputs"][0]["namespace"] = "s3://" + "q" * 600
    r = client.post("/api/v1/lineage", json=event)
    assert r.status_code == 201, r.text
    assert server.store.count_executions() == 1
    (art,) = [a for a in server.store.find_artifacts() if a.uri.startswith("s3://qqq")]
    assert len(art.uri) == 512 and art.uri[-13] == "…"


@pytest.mark.parametrize(("bad", "why"), [
    # JSON's \ud800 escape decodes to a lone surrogate, which no store can hold as text
    ("\ud800", "a lone surrogate"),
    # JSON's \u0000 decodes to NUL, which PostgreSQL text refuses: a 400 on either backend (a
    # 503 told clients to retry what can never succeed; SQLite took it, and then its data could
    # not be synced to a PostgreSQL site)
    ("\x00", "a NUL character"),
])
@pytest.mark.parametrize(("change", "field"), [
    (lambda e, c: e["job"].__setitem__("namespace", "air" + c), "job.namespace"),
    (lambda e, c: e["job"].__setitem__("name", f"etl.{c}b"), "job.name"),
    (lambda e, c: e["inputs"][0].__setitem__("name", "t" + c), "inputs[0].name"),
    (lambda e, c: e["run"]["facets"].__setitem__("x", facet(v=["a" + c])), "run.facets.x.v[0]"),
    (lambda e, c: e["run"]["facets"].__setitem__("x", facet(**{"k" + c: 1})),
     "run.facets.x: the key"),
])
def test_text_no_store_can_hold_is_rejected_naming_the_field(
        empty_client: httpx.Client, empty_server: LiveServer,
        change: Callable[[dict[str, Any], str], Any], field: str, bad: str, why: str) -> None:
    event = _start()
    change(event, bad)
    for body in (event, [event]):
        r = empty_client.post("/api/v1/lineage", content=json.dumps(body).encode(),
                        headers={"Content-Type": "application/json"})
        answer = r.json()
        message = answer["results"][0]["message"] if "results" in answer else answer["message"]
        assert r.status_code == 400 and f"{field}" in message
        assert f"is not valid text ({why})" in message
    assert nothing_stored(empty_server.store)


def test_the_text_backslash_u0000_is_not_a_nul(client: httpx.Client, server: LiveServer) -> None:
    event = _start()
    event["run"]["facets"]["x"] = facet(v="a\\u0000")  # a backslash, then u0000: no NUL
    r = client.post("/api/v1/lineage", content=json.dumps(event).encode(),
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 201, r.text
    (stored,) = server.store.lineage_events()
    assert json.loads(stored.body)["run"]["facets"]["x"]["v"] == "a\\u0000"


def test_wrong_content_type_is_415(client: httpx.Client, server: LiveServer) -> None:
    r = client.post("/api/v1/lineage", content=json.dumps(_start()),
                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 415
    assert "Content-Type must be application/json" in r.json()["message"]
    r = client.post("/api/v1/lineage", content=json.dumps(_start()),
                    headers={"Content-Type": "application/json", "Content-Encoding": "br"})
    assert r.status_code == 415 and "Content-Encoding 'br'" in r.json()["message"]
    assert nothing_stored(server.store)


def test_json_with_a_charset_or_suffix_is_accepted(client: httpx.Client) -> None:
    for ctype in ("application/json; charset=utf-8", "application/vnd.openlineage+json"):
        r = client.post("/api/v1/lineage", content=json.dumps(_start()),
                        headers={"Content-Type": ctype})
        assert r.status_code == 201, r.text


def test_a_utf8_byte_order_mark_is_ignored(client: httpx.Client, server: LiveServer) -> None:
    """A file saved with a BOM (Notepad, PowerShell) and posted with curl --data-binary: read
    as json.loads reads bytes, not 'not valid JSON ... at line 1 column 1'."""
    bom = b"\xef\xbb\xbf"
    r = client.post("/api/v1/lineage", content=bom + json.dumps(_start()).encode(),
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 201, r.text
    assert len(server.store.lineage_events()) == 1
    empty = client.post("/api/v1/lineage", content=bom,
                        headers={"Content-Type": "application/json"})
    assert empty.status_code == 400 and "request body is empty" in empty.json()["message"]


@pytest.mark.parametrize(("body", "text"), [
    (b"", "request body is empty"),
    (b"   ", "request body is empty"),
    (b'{"eventType": "START",', "not valid JSON: Expecting property name"),
    (b"\xff\xfe{}", "not UTF-8"),
    (b"42", "not a JSON number"),
    (b'"START"', "not a JSON string"),
    (b'{"eventTime": NaN}', "NaN is not a JSON number (JSON has no NaN or Infinity)"),
    (b'[{"a": [-Infinity]}]', "-Infinity is not a JSON number"),
    (b'{"size": 1e999}', "the number 1e999, too large for a JSON number"),
    (b'{"size": ' + b"7" * 5000 + b"}", "number too long (more than 4300 digits)"),
    (b"[" * 100_000 + b"]" * 100_000, f"nested too deeply (limit {MAX_JSON_DEPTH} levels"),
    (b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1), "nested too deeply"),
    (b'{"a":' * MAX_JSON_DEPTH + b"{}" + b"}" * MAX_JSON_DEPTH, "nested too deeply"),
])
def test_malformed_bodies_are_400(empty_client: httpx.Client, empty_server: LiveServer, body: bytes,
                                  text: str) -> None:
    for route in ("/api/v1/lineage", "/api/v1/lineage/batch"):
        r = empty_client.post(route, content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 400
        assert text in r.json()["message"]
    assert nothing_stored(empty_server.store)


def _nested(levels: int) -> Any:
    value: Any = 1
    for i in range(levels):
        value = [value] if i % 2 else {"k": value}
    return value


def test_nesting_limit_is_one_every_read_can_serve(client: httpx.Client,
                                                   server: LiveServer) -> None:
    """An event nested MAX_JSON_DEPTH deep is recorded, and every read that returns it works
    (no RecursionError, no serialisation limit later); one level more is refused."""
    event = _start()
    # the body, run, facets and deep are four levels; _nested(n) is n more
    event["run"]["facets"]["deep"] = facet(v=_nested(MAX_JSON_DEPTH - 3))
    r = client.post("/api/v1/lineage", json=event)
    assert r.status_code == 400 and "nested too deeply" in r.json()["message"]
    assert nothing_stored(server.store)
    event["run"]["facets"]["deep"] = facet(v=_nested(MAX_JSON_DEPTH - 4))
    event["inputs"][0]["inputFacets"] = {"deep": facet(v=_nested(MAX_JSON_DEPTH - 5))}
    assert jsonutil.nesting(json.dumps(event).encode()) == MAX_JSON_DEPTH  # exactly the limit
    r = client.post("/api/v1/lineage", json=event)
    assert r.status_code == 201, r.text
    run_id = event["run"]["runId"]
    node = "job:" + event["job"]["namespace"] + ":" + event["job"]["name"]
    for path, params in [(f"/api/v1/executions/{run_id}", {}),
                         (f"/api/v1/executions/{run_id}/events", {}),
                         ("/api/v1/executions", {}), ("/api/v1/events/lineage", {}),
                         ("/api/v1/lineage", {"nodeId": node})]:
        got = client.get(path, params=params)
        assert got.status_code == 200, (path, got.text)
    served = client.get(f"/api/v1/executions/{run_id}/events").json()["items"][0]
    assert served["run"]["facets"]["deep"]["v"] == _nested(MAX_JSON_DEPTH - 4)


def test_oversized_bodies_are_413(serve: Callable[..., Any]) -> None:
    event = json.dumps(_start()).encode()
    big = json.dumps([_start() for _ in range(20)]).encode()
    with serve(max_body_bytes=len(event) + 10) as live, live.client() as c:
        assert c.post("/api/v1/lineage", content=event,
                      headers={"Content-Type": "application/json"}).status_code == 201
        declared = c.post("/api/v1/lineage", content=big,
                          headers={"Content-Type": "application/json"})
        assert declared.status_code == 413
        assert f"limit of {len(event) + 10} bytes" in declared.json()["message"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted while reading
            for i in range(0, len(big), 256):
                yield big[i:i + 256]

        streamed = c.post("/api/v1/lineage", content=chunks(),
                          headers={"Content-Type": "application/json"})
        assert streamed.status_code == 413
        bomb = gzip.compress(b"[" + b" " * 10_000_000 + b"]")
        inflated = c.post("/api/v1/lineage", content=bomb,
                          headers={"Content-Type": "application/json",
                                   "Content-Encoding": "gzip"})
        assert inflated.status_code == 413
        broken = c.post("/api/v1/lineage", content=b"not gzip",
                        headers={"Content-Type": "application/json",
                                 "Content-Encoding": "gzip"})
        assert broken.status_code == 400 and "not valid gzip" in broken.json()["message"]
        assert len(live.store.lineage_events()) == 1


def test_events_listing_too_many_datasets_are_400(client: httpx.Client, server: LiveServer,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """One event may list at most MAX_DATASETS datasets (each makes lineage reads slower)."""
    from cmf_core.openlineage import ingest

    assert ingest.MAX_DATASETS == 10_000
    monkeypatch.setattr(ingest, "MAX_DATASETS", 3)
    event = _start()
    event["inputs"] = [{"namespace": "s3://b", "name": f"part-{i}"} for i in range(3)]
    event["outputs"] = [{"namespace": "s3://b", "name": "out"}]
    r = client.post("/api/v1/lineage", json=event)
    assert r.status_code == 400 and r.json()["message"] == (
        "invalid OpenLineage event: inputs and outputs list 4 datasets, more than the 3 an "
        "event may list; name a dataset as a whole (a table, a directory) rather than each of "
        "its files")
    assert nothing_stored(server.store)
    event["outputs"] = []
    assert client.post("/api/v1/lineage", json=event).status_code == 201


# batches ------------------------------------------------------------------------------------
def test_one_bad_event_in_a_batch_does_not_lose_the_good_ones(client: httpx.Client,
                                                              server: LiveServer) -> None:
    start, running, complete = airflow_events()
    bad = copy.deepcopy(running)
    bad["run"]["runId"] = "nope"
    r = client.post("/api/v1/lineage", json=[start, bad, complete, 7])
    assert r.status_code == 207
    body = r.json()
    assert (body["accepted"], body["rejected"]) == (2, 2)
    assert [x["status"] for x in body["results"]] == [201, 400, 201, 400]
    assert "run.runId: 'nope' is not a UUID" in body["results"][1]["message"]
    assert "[3] must be a JSON object" in body["results"][3]["message"]
    assert body["results"][2]["executionStatus"] == "completed"
    assert len(server.store.lineage_events()) == 2


def test_batch_route_and_all_or_nothing_statuses(client: httpx.Client,
                                                 server: LiveServer) -> None:
    events = airflow_events()
    ok = client.post("/api/v1/lineage/batch", json=events)
    assert ok.status_code == 201 and ok.json()["accepted"] == 3
    bad = client.post("/api/v1/lineage/batch", json=[{"eventTime": "x"}, []])
    assert bad.status_code == 400 and bad.json()["rejected"] == 2
    assert client.post("/api/v1/lineage/batch", json=events[0]).status_code == 400
    assert client.post("/api/v1/lineage", json=[]).status_code == 400
    assert len(server.store.lineage_events()) == 3


def test_a_large_batch_is_recorded(client: httpx.Client, server: LiveServer) -> None:
    events = [e for _ in range(100) for e in airflow_events()]
    r = client.post("/api/v1/lineage/batch", json=events)
    assert r.status_code == 201 and r.json()["accepted"] == 300
    assert server.store.count_executions() == 100


# GET: Marquez lineage graph ---------------------------------------------------------------------
def record_pipeline(client: httpx.Client) -> dict[str, Any]:
    """Airflow task etl.extract: orders table -> parquet; then CMF's churn.v2.train."""
    events = airflow_events()
    lineage = build_lineage()
    for e in [*events, *to_event_dicts(lineage)]:
        assert client.post("/api/v1/lineage", json=e).status_code == 201
    return {"events": events, "lineage": lineage}


@pytest.fixture
def pipeline(client: httpx.Client) -> dict[str, Any]:
    """``record_pipeline`` into this test's own server (for tests that add to it)."""
    return record_pipeline(client)


@pytest.fixture(scope="module")
def shared_pipeline(new_store: Callable[[], Store], tmp_path_factory: pytest.TempPathFactory
                    ) -> Iterator[tuple[SharedServer, dict[str, Any]]]:
    """One server holding ``record_pipeline``'s runs, for the tests that only read them."""
    recorded: dict[str, Any] = {}

    def load(live: LiveServer) -> None:
        with live.client() as c:
            recorded.update(record_pipeline(c))

    with shared_server(new_store, tmp_path_factory, load) as shared:
        yield shared, recorded


@pytest.fixture
def reader(shared_pipeline: tuple[SharedServer, dict[str, Any]]) -> Iterator[httpx.Client]:
    with shared_pipeline[0].get().client() as c:
        yield c


@pytest.fixture
def recorded(shared_pipeline: tuple[SharedServer, dict[str, Any]],
             reader: httpx.Client) -> dict[str, Any]:
    """What ``record_pipeline`` recorded into the server ``reader`` talks to."""
    return shared_pipeline[1]


def test_graph_around_a_dataset(reader: httpx.Client, recorded: dict[str, Any]) -> None:
    node = "dataset:postgres://db:5432:shop.public.orders"
    graph = reader.get("/api/v1/lineage", params={"nodeId": node, "depth": 2}).json()["graph"]
    by_id = {n["id"]: n for n in graph}
    job, out = "job:airflow:etl.extract", "dataset:s3://lake:orders/2024-05-01.parquet"
    assert set(by_id) == {node, job, out}
    assert by_id[node]["type"] == "DATASET" and by_id[job]["type"] == "JOB"
    assert by_id[node]["outEdges"] == [{"origin": node, "destination": job}]
    assert by_id[job]["inEdges"] == [{"origin": node, "destination": job}]
    assert by_id[job]["outEdges"] == [{"origin": job, "destination": out}]
    assert by_id[out]["inEdges"] == [{"origin": job, "destination": out}]
    data = by_id[job]["data"]
    assert data["id"] == {"namespace": "airflow", "name": "etl.extract"}
    assert data["latestRun"]["state"] == "COMPLETED"
    assert data["latestRun"]["id"] == recorded["events"][0]["run"]["runId"]
    # Marquez's nominal times, from the START's nominalTime facet
    assert data["latestRun"]["nominalStartTime"] == "2024-05-01T00:00:00Z"
    assert data["latestRun"]["nominalEndTime"] is None
    assert data["parentJobName"] == "etl" and data["simpleName"] == "extract"
    assert data["inputs"] == [{"namespace": "postgres://db:5432", "name": "shop.public.orders"}]
    assert by_id[node]["data"]["fields"][0]["name"] == "id"


def test_graph_depth_limits_the_hops(reader: httpx.Client) -> None:
    node = "dataset:postgres://db:5432:shop.public.orders"
    zero = reader.get("/api/v1/lineage", params={"nodeId": node, "depth": 0}).json()["graph"]
    one = reader.get("/api/v1/lineage", params={"nodeId": node, "depth": 1}).json()["graph"]
    assert [n["id"] for n in zero] == [node] and zero[0]["outEdges"] == []
    assert [n["id"] for n in one] == [node, "job:airflow:etl.extract"]


def test_graph_around_a_cmf_job(reader: httpx.Client) -> None:
    graph = reader.get("/api/v1/lineage", params={"nodeId": "job:cmf:churn.v2.train"}).json()
    ids = {n["id"] for n in graph["graph"]}
    assert ids == {"job:cmf:churn.v2.train", "dataset:file:/data/churn/train.csv",
                   "dataset:s3://models:churn/model.pkl", "dataset:file:/reports/churn.json"}
    job = next(n for n in graph["graph"] if n["type"] == "JOB")
    assert job["data"]["cmf"] == {"pipeline": "churn.v2", "stage": "train", "runs": 1}


def spark_under_airflow(task_run: str) -> dict[str, Any]:
    """openlineage-spark's COMPLETE of a Spark job run by Airflow task ``etl.extract``: its
    ``parent`` is the task, whose name its own job name does not start with."""
    return {
        "eventType": "COMPLETE", "eventTime": "2024-05-01T12:05:23.456Z",
        "producer": "https://github.com/OpenLineage/OpenLineage/tree/1.23.0/integration/spark",
        "schemaURL": f"{SPEC}#/$defs/RunEvent",
        "run": {"runId": str(uuid.uuid4()), "facets": {"parent": facet(
            run={"runId": task_run}, job={"namespace": "airflow", "name": "etl.extract"})}},
        "job": {"namespace": "spark", "name": "etl_app.execute_insert_into_hadoop_fs_relation",
                "facets": {"jobType": facet(processingType="BATCH", integration="SPARK",
                                            jobType="SQL_JOB")}},
        "inputs": [{"namespace": "s3://lake", "name": "orders/2024-05-01.parquet"}],
        "outputs": [{"namespace": "hdfs://nn:8020", "name": "/warehouse/orders"}],
    }


def test_graph_around_a_job_whose_parent_is_not_in_its_name(
        client: httpx.Client, pipeline: dict[str, Any]) -> None:
    """Ingest files the Spark job as stage <job name> of pipeline ``etl.extract``; the graph
    finds it by its own OpenLineage name, with its runs and datasets (it was a 404, and an
    empty node when reached from a dataset)."""
    task_run = pipeline["events"][0]["run"]["runId"]
    event = spark_under_airflow(task_run)
    assert client.post("/api/v1/lineage", json=event).status_code == 201
    other = copy.deepcopy(event)  # the same job name in another namespace, with no parent:
    other["job"]["namespace"] = "other"  # (etl_app, <job name>), a pair the name gives
    other["run"] = {"runId": str(uuid.uuid4())}
    assert client.post("/api/v1/lineage", json=other).status_code == 201
    job = "job:spark:etl_app.execute_insert_into_hadoop_fs_relation"
    r = client.get("/api/v1/lineage", params={"nodeId": job, "depth": 1})
    assert r.status_code == 200, r.text
    by_id = {n["id"]: n for n in r.json()["graph"]}
    out = "dataset:hdfs://nn:8020:/warehouse/orders"
    assert set(by_id) == {job, "dataset:s3://lake:orders/2024-05-01.parquet", out}
    data = by_id[job]["data"]
    assert data["latestRun"]["id"] == event["run"]["runId"]
    assert data["latestRun"]["state"] == "COMPLETED"
    assert data["cmf"] == {"pipeline": "etl.extract", "stage": event["job"]["name"], "runs": 1}
    assert data["type"] == "BATCH"
    assert data["outputs"] == [{"namespace": "hdfs://nn:8020", "name": "/warehouse/orders"}]
    # from the Airflow task's input, through the task and the Spark job, to Spark's output
    node = "dataset:postgres://db:5432:shop.public.orders"
    graph = client.get("/api/v1/lineage", params={"nodeId": node, "depth": 4}).json()["graph"]
    assert out in {n["id"] for n in graph}


def test_a_streaming_job_is_a_marquez_stream(client: httpx.Client) -> None:
    """A Flink job (jobType processingType STREAMING, only RUNNING events so far) is Marquez's
    STREAM job type, not BATCH."""
    event = {
        "eventType": "RUNNING", "eventTime": "2024-05-01T12:00:00.123456789Z",
        "producer": "https://github.com/OpenLineage/OpenLineage/tree/1.23.0/integration/flink",
        "schemaURL": f"{SPEC}#/$defs/RunEvent", "run": {"runId": str(uuid.uuid4())},
        "job": {"namespace": "flink-jobs", "name": "orders_stream",
                "facets": {"jobType": facet(processingType="STREAMING", integration="FLINK",
                                            jobType="JOB")}},
        "inputs": [{"namespace": "kafka://broker:9092", "name": "orders"}],
        "outputs": [{"namespace": "kafka://broker:9092", "name": "orders_clean"}],
    }
    assert client.post("/api/v1/lineage", json=event).status_code == 201
    graph = client.get("/api/v1/lineage",
                       params={"nodeId": "job:flink-jobs:orders_stream", "depth": 1}).json()
    job = next(n for n in graph["graph"] if n["type"] == "JOB")
    assert job["data"]["type"] == "STREAM"
    assert job["data"]["latestRun"]["state"] == "RUNNING"
    assert job["data"]["outputs"] == [{"namespace": "kafka://broker:9092", "name": "orders_clean"}]


@pytest.mark.parametrize(("params", "status", "text"), [
    ({"nodeId": "dataset:nowhere:nothing"}, 404, "no dataset"),
    ({"nodeId": "run:abc"}, 400, "not a Marquez node id"),
    ({"nodeId": "dataset:file:/data/churn/train.csv", "depth": -1}, 400, "depth"),
    ({}, 400, "nodeId"),
])
def test_graph_errors(reader: httpx.Client, params: dict[str, Any], status: int,
                      text: str) -> None:
    r = reader.get("/api/v1/lineage", params=params)
    assert r.status_code == status and text in r.json()["message"]


# GET: events ---------------------------------------------------------------------------------
def test_events_list_in_marquez_shape(reader: httpx.Client) -> None:
    body = reader.get("/api/v1/events/lineage").json()
    assert body["totalCount"] == 5 and len(body["events"]) == 5
    times = [e["eventTime"] for e in body["events"]]
    assert times[0] == "2024-05-01T12:02:05.750000+00:00"  # newest first
    for e in body["events"]:
        validate_event(e)  # served back as valid OpenLineage
    asc = reader.get("/api/v1/events/lineage",
                     params={"sortDirection": "asc", "limit": 2, "offset": 1}).json()
    assert asc["totalCount"] == 5
    assert [e["eventTime"] for e in asc["events"]] == ["2024-05-01T12:00:00.250000+00:00",
                                                        "2024-05-01T12:00:30.5Z"]
    window = reader.get("/api/v1/events/lineage", params={
        "after": "2024-05-01T12:00:01Z", "before": "2024-05-01T12:01:00Z"}).json()
    assert window["totalCount"] == 2  # RUNNING at 12:00:30.5 and COMPLETE at 14:01+02:00
    bad = reader.get("/api/v1/events/lineage", params={"before": "yesterday"})
    assert bad.status_code == 400 and "before" in bad.json()["message"]


@pytest.mark.parametrize("when", ["0000-01-01T00:00:00Z", "9999-12-31T23:59:59-01:00"])
def test_events_list_time_out_of_range_is_400(empty_client: httpx.Client, when: str) -> None:
    r = empty_client.get("/api/v1/events/lineage", params={"after": when})
    assert r.status_code == 400
    assert r.json()["message"] == (f"after: {when!r} is out of range; a time must be from "
                                   "0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z")


def test_run_ids_are_canonical(client: httpx.Client, server: LiveServer) -> None:
    run_id = str(uuid.uuid4())
    events = airflow_events(run_id=run_id.upper())
    for e in events:
        assert client.post("/api/v1/lineage", json=e).status_code == 201
    assert server.store.get_execution(run_id) is not None


def test_graph_around_a_job_known_only_from_a_job_event(client: httpx.Client) -> None:
    """Static lineage (a dbt model's JobEvent, no run): the job and its datasets are linked."""
    job_event = {"eventTime": "2024-05-01T12:00:00Z", "producer": FOREIGN,
                 "schemaURL": f"{SPEC}#/$defs/JobEvent",
                 "job": {"namespace": "dbt", "name": "shop.orders_model"},
                 "inputs": [{"namespace": "postgres://db:5432", "name": "shop.public.orders"}],
                 "outputs": [{"namespace": "postgres://db:5432", "name": "shop.daily"}]}
    assert client.post("/api/v1/lineage", json=job_event).status_code == 201
    job, src = "job:dbt:shop.orders_model", "dataset:postgres://db:5432:shop.public.orders"
    r = client.get("/api/v1/lineage", params={"nodeId": job})
    assert r.status_code == 200, r.text
    nodes = {n["id"]: n for n in r.json()["graph"]}
    assert nodes[job]["inEdges"] == [{"origin": src, "destination": job}]
    assert nodes[job]["outEdges"] == [
        {"origin": job, "destination": "dataset:postgres://db:5432:shop.daily"}]
    r = client.get("/api/v1/lineage", params={"nodeId": src})
    assert {n["id"]: n for n in r.json()["graph"]}[src]["outEdges"] == [
        {"origin": src, "destination": job}]
