"""Export: canonical lines straight from store rows, selectors, paging, version filtering."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings

from cmf_core.federation.bundle import Reader
from cmf_core.federation.export import (
    ExportResult,
    Selector,
    export_bundle,
    load_vector,
    page_lines,
    record_line,
)
from cmf_core.identity import remote_digest
from cmf_core.model import (
    Artifact,
    EnergyRecord,
    Event,
    Execution,
    Metric,
    Pipeline,
    Record,
    Stage,
)
from cmf_core.records import record_from_dict
from cmf_core.store import Store
from tests.core.federation.strategies import key, record_sets


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(records=record_sets())
def test_fast_lines_are_the_canonical_lines(store: Store, records: list[Record]) -> None:
    """Lines made from rows == jsonutil.dumps of the record (+ version), on SQLite and PG."""
    mark = store.max_seq()
    store.put(records)
    by_key = {key(r): r for r in records}
    page = store.export_page(mark)
    seen = 0
    for line in page_lines(page):
        data = json.loads(line)
        origin, oseq = data.pop("_v")
        record = record_from_dict(data)
        assert line == record_line(record, origin, oseq)
        if data["kind"] == "location":
            continue
        assert record == by_key[key(record)]
        assert origin == store.store_id and oseq > mark
        seen += 1
    assert seen == len(records)


# selectors -----------------------------------------------------------------------------------
def art(name: str, site: str = "a") -> Artifact:
    return Artifact(id=remote_digest(f"s3://b/{name}", "1"), type="Dataset", name=name,
                    uri=f"s3://b/{name}", site=site, created_at=1.0)


def step(store: Store, pipeline: str, stage: str, ins: list[Artifact], outs: list[Artifact],
         started: float = 100.0) -> Execution:
    ex = Execution(pipeline, stage, store.site, started_at=started).ended(ended_at=started + 1)
    store.put([Pipeline(pipeline, store.site, 1.0), Stage(pipeline, stage, store.site, 1.0),
               *ins, *outs, ex, *[Event(ex.id, a.id, "INPUT") for a in ins],
               *[Event(ex.id, a.id, "OUTPUT") for a in outs], Metric(ex.id, "loss", 0.5),
               EnergyRecord(ex.id, store.site, 0.01, 0.004)])
    return ex


def bundle_records(store: Store, selector: Selector, **kw: Any) -> list[dict[str, Any]]:
    reader = Reader(export_bundle(store, selector, **kw))
    reader.open()
    return list(reader)


def kinds(records: list[dict[str, Any]], kind: str, field: str = "id") -> set[Any]:
    return {r[field] for r in records if r["kind"] == kind}


def test_whole_store_and_since_seq(sqlite_store: Store) -> None:
    s = sqlite_store
    raw, clean = art("raw"), art("clean")
    e1 = step(s, "etl", "clean", [raw], [clean])
    mark = s.max_seq()
    e2 = step(s, "train", "fit", [clean], [art("model")], started=200.0)
    everything = bundle_records(s, Selector())
    assert kinds(everything, "execution") == {e1.id, e2.id}
    assert len(everything) == len(s.export_page(0))
    delta = bundle_records(s, Selector(since_seq=mark))
    assert kinds(delta, "execution") == {e2.id}
    assert kinds(delta, "pipeline", "name") == {"train"}


def test_pipeline_selector_brings_the_artifacts_its_executions_used(sqlite_store: Store) -> None:
    s = sqlite_store
    raw, clean = art("raw"), art("clean")
    step(s, "etl", "clean", [raw], [clean])
    mark = s.max_seq()
    e2 = step(s, "train", "fit", [clean], [art("model")], started=200.0)
    got = bundle_records(s, Selector(pipelines=("train",)))
    assert kinds(got, "execution") == {e2.id}
    assert kinds(got, "pipeline", "name") == {"train"}
    assert kinds(got, "artifact") == {clean.id, art("model").id}  # clean came from etl
    assert raw.id not in kinds(got, "location", "artifact_id")
    # incremental: the input artifact changed before `mark` still comes with the new events
    later = bundle_records(s, Selector(pipelines=("train",), since_seq=mark))
    assert clean.id in kinds(later, "artifact")


def test_since_time_and_closure(sqlite_store: Store) -> None:
    s = sqlite_store
    raw, clean, model, other = art("raw"), art("clean"), art("model"), art("other")
    e1 = step(s, "etl", "clean", [raw], [clean], started=100.0)
    e2 = step(s, "train", "fit", [clean], [model], started=200.0)
    e3 = step(s, "side", "x", [other], [art("y")], started=300.0)
    assert kinds(bundle_records(s, Selector(since_time=150.0)), "execution") == {e2.id, e3.id}
    closure = bundle_records(s, Selector(artifact=model.id))
    assert kinds(closure, "execution") == {e1.id, e2.id}
    assert kinds(closure, "artifact") == {raw.id, clean.id, model.id}
    assert kinds(closure, "pipeline", "name") == {"etl", "train"}
    assert {r["name"] for r in closure if r["kind"] == "metric"} == {"loss"}
    assert len([r for r in closure if r["kind"] == "energy"]) == 2
    only_train = bundle_records(s, Selector(artifact=model.id).restricted_to(["train"]))
    assert kinds(only_train, "execution") == {e2.id}


def test_paging_gives_the_same_rows(sqlite_store: Store) -> None:
    s = sqlite_store
    for i in range(7):
        step(s, "p", "s", [art(f"in{i}")], [art(f"out{i}")], started=float(i))
    res = ExportResult()
    paged = bundle_records(s, Selector(), page_size=3, result=res)
    whole = bundle_records(s, Selector())
    assert sorted(map(json.dumps, paged)) == sorted(map(json.dumps, whole))
    assert res.end == s.max_seq() and res.records == len(whole)
    reader = Reader(export_bundle(s, Selector(), page_size=3))  # the trailer, written last,
    reader.open()                                             # ends where the last page did
    assert len(list(reader)) == len(whole)
    assert reader.trailer is not None and reader.trailer.end == s.max_seq()
    assert reader.trailer.complete
    first = s.export_page(0, 3)
    assert first.more and first.end < first.snapshot


def test_vector_leaves_out_what_the_receiver_has(sqlite_store: Store) -> None:
    s = sqlite_store
    step(s, "p", "s", [art("a")], [art("b")])
    vector = load_vector(s)
    assert vector == {s.store_id: s.max_seq()}
    assert len(s.export_page(0, vector=vector)) == 0
    assert len(s.export_page(0, vector={s.store_id: 3})) == len(s.export_page(3))
    assert len(s.export_page(0, vector={"someone-else": 10**9})) == len(s.export_page(0))
