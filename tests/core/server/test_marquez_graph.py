"""``LineageGraph`` over a real store (SQLite and PostgreSQL): a graph of thousands of datasets,
read level by level in a few queries, gives the hand-checked nodes, edges and data."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from cmf_core.identity import remote_digest
from cmf_core.model import Artifact, Event, Execution, Pipeline, Record, Stage
from cmf_core.openlineage.ingest import JOB_PROPERTY
from cmf_core.server.marquez import MAX_RUNS_PER_JOB, LineageGraph
from cmf_core.store import Store
from cmf_core.store.base import IN_CHUNK
from tests.support.shared import SharedStore
from tests.support.sql import executed

N = IN_CHUNK + 100  # inputs, and as many outputs, of the wide job: several IN lists per level
T0 = 1_700_000_000.0
WIDE, INGEST, REPORT = "job:cmf:shop.wide", "job:cmf:shop.ingest", "job:cmf:shop.report"
PUBLISH = "job:airflow:dag.publish"
ORDERS = "dataset:postgres://db:5432:shop.public.orders"
WEEKLY = "dataset:s3://lake:reports/w.json"
RAW = [f"dataset:s3://lake:raw/{i:04d}.csv" for i in range(N)]
CLEAN = [f"dataset:s3://lake:clean/{i:04d}.parquet" for i in range(N)]


def _art(uri: str, name: str, version: str = "v1", at: float = T0) -> Artifact:
    return Artifact(id=remote_digest(uri, version), type="Dataset", name=name, uri=uri,
                    site="site-a", created_at=at)


def _run(pipeline: str, stage: str, at: float, inputs: list[Artifact],
         outputs: list[Artifact], **kw: Any) -> list[Record]:
    ex = Execution(pipeline=pipeline, stage=stage, site="site-a", started_at=at, **kw)
    return [ex.ended(ended_at=at + 5), *inputs, *outputs,
            *(Event(ex.id, a.id, "INPUT") for a in inputs),
            *(Event(ex.id, a.id, "OUTPUT") for a in outputs)]


def record_shop(store: Store) -> dict[str, Any]:
    """orders -> shop.ingest -> raw/0000.csv (version 2); raw/* -> shop.wide -> clean/*;
    clean/0000 -> shop.report (MAX_RUNS_PER_JOB + 2 runs) -> reports/w.json -> dag.publish.

    Odd raw files are named by their file name (as CMF names them), the rest by the full
    dataset name; orders and the weekly report carry names of their own (the producer's), so
    only their URIs find them."""
    raw = [_art(f"s3://lake/raw/{i:04d}.csv", f"{i:04d}.csv" if i % 2 else f"raw/{i:04d}.csv")
           for i in range(N)]
    raw0_v2 = _art("s3://lake/raw/0000.csv", "raw/0000.csv", "v2", T0 + 10)
    clean = [_art(f"s3://lake/clean/{i:04d}.parquet", f"clean/{i:04d}.parquet")
             for i in range(N)]
    orders = _art("postgres://db:5432/shop.public.orders", "orders")
    weekly = _art("s3://lake/reports/w.json", "weekly report")
    records: list[Record] = [Pipeline("shop", "site-a"), Pipeline("dag", "site-a")]
    records += [Stage("shop", s, "site-a") for s in ("ingest", "wide", "report")]
    records += [Stage("dag", "dag.publish", "site-a")]
    records += _run("shop", "ingest", T0 + 10, [orders], [raw0_v2])
    records += _run("shop", "wide", T0 + 20, raw, clean)
    reports = [_run("shop", "report", T0 + 30 + k, [clean[0]], [weekly])
               for k in range(MAX_RUNS_PER_JOB + 2)]
    records += [r for rs in reports for r in rs]
    records += _run("dag", "dag.publish", T0 + 200, [weekly], [], properties={
        JOB_PROPERTY: {"namespace": "airflow", "name": "dag.publish"}})
    store.put(records)
    return {"raw0": [raw[0], raw0_v2], "weekly": weekly, "report_runs": [r[0] for r in reports]}


@pytest.fixture
def shop(store: Store) -> dict[str, Any]:
    """``record_shop`` in this test's own store (for tests that add to it)."""
    return record_shop(store)


def _written(store: Store) -> tuple[int, int]:
    """What a test that wrote to a shared store changed: its seq, its raw events."""
    return store.max_seq(), len(store.lineage_events())


@pytest.fixture(scope="module")
def shared_shop(new_store: Callable[[], Store]) -> Iterator[SharedStore]:
    """A store holding ``record_shop``'s records, shared by the tests that only read it
    (replaced when anything was written to it)."""
    shared = SharedStore(new_store, mark=_written, load=record_shop)
    yield shared
    shared.close()


@pytest.fixture
def read_store(shared_shop: SharedStore) -> Store:
    """A store holding ``record_shop``'s records, shared by the tests that only read it."""
    return shared_shop.get()


@pytest.fixture
def read_shop(shared_shop: SharedStore, read_store: Store) -> dict[str, Any]:
    """What ``record_shop`` returned for ``read_store``."""
    return shared_shop.loaded


def _edges(graph: list[dict[str, Any]]) -> dict[str, tuple[set[str], set[str]]]:
    out: dict[str, tuple[set[str], set[str]]] = {}
    for n in graph:
        assert all(e["destination"] == n["id"] for e in n["inEdges"])
        assert all(e["origin"] == n["id"] for e in n["outEdges"])
        assert n["inEdges"] == sorted(n["inEdges"], key=lambda e: e["origin"])
        assert n["outEdges"] == sorted(n["outEdges"], key=lambda e: e["destination"])
        out[n["id"]] = ({e["origin"] for e in n["inEdges"]},
                        {e["destination"] for e in n["outEdges"]})
    return out


def _ref(node_id: str) -> dict[str, str]:
    namespace, _, name = node_id.split(":", 1)[1].rpartition(":")
    return {"namespace": namespace, "name": name}


def test_the_whole_graph_of_a_wide_job(read_store: Store, read_shop: dict[str, Any]) -> None:
    with executed(read_store) as statements:
        graph = LineageGraph(read_store).graph(WIDE)["graph"]
    assert [n["id"] for n in graph] == sorted(n["id"] for n in graph)
    want: dict[str, tuple[set[str], set[str]]] = {
        WIDE: (set(RAW), set(CLEAN)),
        INGEST: ({ORDERS}, {RAW[0]}),
        REPORT: ({CLEAN[0]}, {WEEKLY}),
        PUBLISH: ({WEEKLY}, set()),
        ORDERS: (set(), {INGEST}),
        WEEKLY: ({REPORT}, {PUBLISH}),
        RAW[0]: ({INGEST}, {WIDE}),
        CLEAN[0]: ({WIDE}, {REPORT}),
        **{r: (set(), {WIDE}) for r in RAW[1:]},
        **{c: ({WIDE}, set()) for c in CLEAN[1:]},
    }
    assert _edges(graph) == want
    by_id = {n["id"]: n for n in graph}
    assert {n["type"] for i, n in by_id.items() if i.startswith("job:")} == {"JOB"}
    wide = by_id[WIDE]["data"]
    assert wide["inputs"] == [_ref(r) for r in RAW]
    assert wide["outputs"] == [_ref(c) for c in CLEAN]
    assert wide["cmf"] == {"pipeline": "shop", "stage": "wide", "runs": 1}
    assert wide["parentJobName"] == "shop" and wide["simpleName"] == "wide"
    raw0 = by_id[RAW[0]]["data"]
    assert [a["id"] for a in raw0["cmf"]["artifacts"]] == [a.id for a in read_shop["raw0"]]
    assert raw0["currentVersion"] == read_shop["raw0"][1].id
    assert [a["name"] for a in by_id[RAW[1]]["data"]["cmf"]["artifacts"]] == ["0001.csv"]
    assert by_id[WEEKLY]["data"]["cmf"]["artifacts"][0]["name"] == "weekly report"
    assert by_id[ORDERS]["data"]["cmf"]["artifacts"][0]["name"] == "orders"
    report = by_id[REPORT]["data"]
    runs = read_shop["report_runs"]
    assert report["cmf"]["runs"] == MAX_RUNS_PER_JOB
    assert report["latestRun"]["id"] == runs[-1].id
    assert report["createdAt"] == "2023-11-14T22:13:52.000000Z"  # the third run: T0 + 32
    assert runs[2].started_at == T0 + 32
    publish = by_id[PUBLISH]["data"]
    assert publish["id"] == {"namespace": "airflow", "name": "dag.publish"}
    assert publish["inputs"] == [_ref(WEEKLY)] and publish["outputs"] == []
    # level by level: 16 statements here (one node at a time, as before, took 8,032)
    assert len(statements) < 50


def test_depth_cuts_the_graph_and_its_edges(read_store: Store, read_shop: dict[str, Any]) -> None:
    graph = LineageGraph(read_store).graph(CLEAN[0], depth=2)["graph"]
    edges = _edges(graph)
    assert set(edges) == {CLEAN[0], WIDE, REPORT, WEEKLY, *RAW, *CLEAN}
    assert edges[WEEKLY] == ({REPORT}, set())  # dag.publish is three edges away
    assert edges[RAW[0]] == (set(), {WIDE})  # shop.ingest too
    assert edges[WIDE] == (set(RAW), set(CLEAN))
    by_id = {n["id"]: n for n in graph}
    assert len(by_id[WIDE]["data"]["inputs"]) == N
    assert by_id[REPORT]["data"]["outputs"] == [_ref(WEEKLY)]
    one = LineageGraph(read_store).graph(ORDERS, depth=1)["graph"]
    assert _edges(one) == {ORDERS: (set(), {INGEST}), INGEST: ({ORDERS}, set())}
    assert one[1]["data"]["outputs"] == [_ref(RAW[0])]  # a job lists all its datasets


def test_every_level_reads_the_same_graph_as_one_node_at_a_time(
        read_store: Store, read_shop: dict[str, Any]) -> None:
    """A node read alone has the same artifacts, runs and neighbours as read with its level."""
    whole = LineageGraph(read_store)
    whole.graph(REPORT)
    for node_id in (WIDE, REPORT, PUBLISH, ORDERS, WEEKLY, RAW[0], RAW[1], CLEAN[0]):
        single = LineageGraph(read_store)
        (node,) = single._load_all([single.resolve(node_id)])
        single._expand_all([node])
        other = whole._nodes[node.ref]
        assert (node.artifacts, node.executions, node.inputs, node.outputs) == \
            (other.artifacts, other.executions, other.inputs, other.outputs), node_id


def test_a_dataset_in_a_namespace_with_colons_is_found_by_name_without_a_scan(
        read_store: Store, read_shop: dict[str, Any]) -> None:
    # "s3://lake:clean/0000.parquet" splits as ("s3", "//lake:clean/...") first: that split
    # matches no name, and must not send the lookup through every artifact of the store
    graph = LineageGraph(read_store)
    with executed(read_store) as statements:
        ref = graph.resolve(CLEAN[0])
    assert (ref.namespace, ref.name) == ("s3://lake", "clean/0000.parquet")
    # one name and URI lookup for every split, the ids of the artifacts named by a property,
    # the artifacts
    assert len(statements) <= 3, [s for s, _ in statements]
    assert graph._index is None  # the look at all artifacts was not taken
    # a name the producer set is found too, by the artifact's URI: still no look at all
    for node_id, namespace, name in ((WEEKLY, "s3://lake", "reports/w.json"),
                                     (ORDERS, "postgres://db:5432", "shop.public.orders")):
        graph = LineageGraph(read_store)
        ref = graph.resolve(node_id)
        assert (ref.namespace, ref.name) == (namespace, name)
        assert graph._index is None


# static lineage: JobEvents (a job with its datasets, no run) ---------------------------------
SPEC = "https://openlineage.io/spec/2-0-2/OpenLineage.json"
PRODUCER = "https://github.com/dbt-labs/dbt-core"
MODEL = "job:dbt:shop.orders_model"
SRC = "dataset:postgres://db:5432:shop.public.orders"
DST = "dataset:postgres://db:5432:shop.analytics.daily"
OLD = "dataset:postgres://db:5432:shop.analytics.old"


def _job_event(at: str, inputs: list[str], outputs: list[str], **facets: Any) -> dict[str, Any]:
    def ds(node_id: str) -> dict[str, str]:
        return _ref(node_id)

    return {"eventTime": at, "producer": PRODUCER, "schemaURL": f"{SPEC}#/$defs/JobEvent",
            "job": {"namespace": "dbt", "name": "shop.orders_model",
                    **({"facets": facets} if facets else {})},
            "inputs": [ds(i) for i in inputs], "outputs": [ds(o) for o in outputs]}


def test_a_job_known_only_from_job_events_is_in_the_graph(store: Store) -> None:
    from cmf_core.openlineage.ingest import ingest

    sql = {"_producer": PRODUCER, "_schemaURL": "https://openlineage.io/spec/facets/1-1-0/"
           "SQLJobFacet.json#/$defs/SQLJobFacet", "query": "select * from orders"}
    ingest(_job_event("2024-05-01T12:00:00Z", [SRC], [OLD]), store, "site-a")
    # a later JobEvent is the job's current design: it replaces what the first declared
    ingest(_job_event("2024-05-02T12:00:00Z", [SRC], [DST], sql=sql), store, "site-a")
    # arriving late, an older design changes nothing
    ingest(_job_event("2024-04-30T12:00:00Z", [OLD], [SRC]), store, "site-a")
    graph = LineageGraph(store).graph(MODEL)["graph"]
    assert _edges(graph) == {MODEL: ({SRC}, {DST}), SRC: (set(), {MODEL}),
                             DST: ({MODEL}, set())}
    job = {n["id"]: n for n in graph}[MODEL]
    assert job["type"] == "JOB" and job["data"]["id"] == {"namespace": "dbt",
                                                          "name": "shop.orders_model"}
    assert job["data"]["inputs"] == [_ref(SRC)] and job["data"]["outputs"] == [_ref(DST)]
    assert job["data"]["latestRun"] is None and job["data"]["facets"]["sql"] == sql
    assert job["data"]["createdAt"] == job["data"]["updatedAt"] == "2024-05-02T12:00:00.000000Z"
    assert job["data"]["cmf"] == {"pipeline": "shop", "stage": "shop.orders_model", "runs": 0,
                                  "declaredAt": "2024-05-02T12:00:00.000000Z"}
    # each dataset's graph includes the job that declares it
    assert _edges(LineageGraph(store).graph(DST)["graph"]) == {
        MODEL: ({SRC}, {DST}), SRC: (set(), {MODEL}), DST: ({MODEL}, set())}
    assert _edges(LineageGraph(store).graph(OLD)["graph"]) == {OLD: (set(), set())}


def test_declared_lineage_adds_to_what_runs_show(store: Store, shop: dict[str, Any]) -> None:
    from cmf_core.openlineage.ingest import ingest

    # shop.report ran reading clean/0000 and writing the weekly report; its design also reads
    # clean/0001, which no run of it has read yet
    event = _job_event("2024-05-01T12:00:00Z", [CLEAN[0], CLEAN[1]], [WEEKLY])
    event["job"] = {"namespace": "cmf", "name": "shop.report"}
    ingest(event, store, "site-a")
    graph = LineageGraph(store).graph(REPORT, depth=1)["graph"]
    assert _edges(graph)[REPORT] == ({CLEAN[0], CLEAN[1]}, {WEEKLY})
    report = {n["id"]: n for n in graph}[REPORT]["data"]
    assert report["cmf"]["runs"] == MAX_RUNS_PER_JOB  # the runs are still there
    assert report["latestRun"]["id"] == shop["report_runs"][-1].id
    assert _edges(LineageGraph(store).graph(CLEAN[1], depth=1)["graph"])[CLEAN[1]] == \
        ({WIDE}, {REPORT})


def test_a_graph_reads_job_events_once(store: Store, shop: dict[str, Any]) -> None:
    from cmf_core.openlineage.ingest import ingest

    ingest(_job_event("2024-05-01T12:00:00Z", [RAW[1]], [DST]), store, "site-a")
    with executed(store) as statements:
        graph = LineageGraph(store).graph(WIDE)["graph"]
    assert _edges(graph)[RAW[1]] == (set(), {WIDE, MODEL})
    assert _edges(graph)[MODEL] == ({RAW[1]}, {DST})
    assert sum("ol_events" in s for s, _ in statements) == 1


# one dataset held by several artifacts ------------------------------------------------------
LOAD = "job:dbt:shop.load"
FETCH = "job:cmf:shop.fetch"


def _run_event(job: str, k: int, outputs: list[str]) -> dict[str, Any]:
    namespace, _, name = job.split(":", 1)[1].partition(":")
    return {"eventType": "COMPLETE", "eventTime": f"2024-05-0{k}T12:00:00Z",
            "producer": PRODUCER, "schemaURL": f"{SPEC}#/$defs/RunEvent",
            "run": {"runId": f"3f0e6a52-8c1b-4a7e-9d3c-00000000000{k}"},
            "job": {"namespace": namespace, "name": name}, "inputs": [],
            "outputs": [_ref(o) for o in outputs]}


def test_a_dataset_held_by_artifacts_of_other_names_has_every_job(
        store: Store, shop: dict[str, Any]) -> None:
    """shop.public.orders is the artifact "orders" (a name of CMF's, read by shop.ingest) and,
    from a dbt RunEvent without a version, an artifact named by the dataset name; raw/0000.csv
    has a third version named by its producer. Each dataset node has every artifact and every
    job that read or wrote any of them, whichever name the lookup meets first."""
    from cmf_core.openlineage.ingest import ingest

    ingest(_run_event(LOAD, 1, [ORDERS]), store, "site-a")
    raw0_v3 = _art("s3://lake/raw/0000.csv", "first raw file", "v3", T0 + 300)
    store.put(_run("shop", "fetch", T0 + 300, [], [raw0_v3]))
    (by_dataset_name,) = store.find_artifacts(name="shop.public.orders")
    graph = LineageGraph(store).graph(ORDERS, depth=1)["graph"]
    assert _edges(graph) == {ORDERS: ({LOAD}, {INGEST}), LOAD: (set(), {ORDERS}),
                             INGEST: ({ORDERS}, set())}
    orders = {n["id"]: n for n in graph}[ORDERS]["data"]
    assert {a["name"] for a in orders["cmf"]["artifacts"]} == {"orders", "shop.public.orders"}
    assert orders["currentVersion"] == by_dataset_name.id  # the latest artifact
    # from the job's side, the same node
    graph = LineageGraph(store).graph(LOAD, depth=2)["graph"]
    assert _edges(graph)[ORDERS] == ({LOAD}, {INGEST})
    # a copy elsewhere that its producer says is that dataset (by neither name nor URI)
    copy = Artifact(id=remote_digest("s3://lake/copies/orders.parquet", "v1"), type="Dataset",
                    name="orders copy", uri="s3://lake/copies/orders.parquet", site="site-a",
                    created_at=T0 + 400, properties={"openlineage.dataset": _ref(ORDERS)})
    store.put(_run("shop", "copy", T0 + 400, [], [copy]))
    graph = LineageGraph(store).graph(ORDERS, depth=1)["graph"]
    assert _edges(graph)[ORDERS] == ({LOAD, "job:cmf:shop.copy"}, {INGEST})
    orders = {n["id"]: n for n in graph}[ORDERS]["data"]
    assert [a["id"] for a in orders["cmf"]["artifacts"]] == [  # oldest first
        *(a.id for a in store.find_artifacts(name="orders")), copy.id, by_dataset_name.id]
    # every version of a file, whatever each is named
    graph = LineageGraph(store).graph(RAW[0], depth=1)["graph"]
    assert _edges(graph)[RAW[0]] == ({INGEST, FETCH}, {WIDE})
    raw0 = {n["id"]: n for n in graph}[RAW[0]]["data"]
    assert [a["id"] for a in raw0["cmf"]["artifacts"]] == [a.id for a in shop["raw0"]] + [
        raw0_v3.id]
    assert raw0["currentVersion"] == raw0_v3.id
    assert _edges(LineageGraph(store).graph(WIDE, depth=2)["graph"])[RAW[0]] == (
        {INGEST, FETCH}, {WIDE})
