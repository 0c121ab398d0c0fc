"""Group commit: a batch gives exactly the records of ingesting its events one by one."""

from __future__ import annotations

import copy
import random
import uuid
from pathlib import Path
from typing import Any

import pytest

from cmf_core.errors import InvalidEventError
from cmf_core.model import ExecutionStatus
from cmf_core.openlineage.convert import RUN_FACETS_PROPERTY, to_event_dicts
from cmf_core.openlineage.ingest import IngestResult, ingest
from cmf_core.server.writer import IngestWriter, ingest_batch
from cmf_core.store import Store, open_store
from tests.core.openlineage.conftest import airflow_events, build_lineage
from tests.core.server.conftest import store_contents


def mixed_events() -> list[dict[str, Any]]:
    """Foreign and CMF events of several runs, with the same run's events interleaved."""
    a, b = airflow_events(), airflow_events()
    cmf = to_event_dicts(build_lineage(tag="x")) + to_event_dicts(
        build_lineage("failed", tag="y", error="boom"))
    return [a[0], b[0], cmf[0], a[1], cmf[1], b[2], a[2], cmf[2], b[1], cmf[3]]


def fresh(tmp_path: Path, name: str) -> Store:
    return open_store(f"sqlite:///{tmp_path / name}.db", site="site-a")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_batch_equals_ingesting_one_by_one(store: Store, tmp_path: Path, seed: int) -> None:
    events = mixed_events()
    rng = random.Random(seed)
    order = [*events, *rng.sample(events, 3)]  # repeats too
    rng.shuffle(order)
    reference = fresh(tmp_path, "ref")
    try:
        expected = [ingest(copy.deepcopy(e), reference, "site-a") for e in order]
        half = len(order) // 2  # two batches: the second merges with what the first wrote
        got = ingest_batch(order[:half], store, "site-a") + ingest_batch(order[half:], store,
                                                                          "site-a")
        assert got == expected
        assert store_contents(store) == store_contents(reference)
    finally:
        reference.close()


def test_invalid_events_fail_alone(sqlite_store: Store) -> None:
    good = airflow_events()
    bad = copy.deepcopy(good[1])
    bad["run"]["runId"] = "not-a-uuid"
    outcomes = ingest_batch([good[0], bad, good[2]], sqlite_store, "site-a")
    assert isinstance(outcomes[0], IngestResult) and isinstance(outcomes[2], IngestResult)
    assert isinstance(outcomes[1], InvalidEventError)
    assert "run.runId: 'not-a-uuid' is not a UUID" in str(outcomes[1])
    assert len(sqlite_store.lineage_events()) == 2
    ex = sqlite_store.get_execution(good[0]["run"]["runId"])
    assert ex is not None and ex.status is ExecutionStatus.COMPLETED


class NoReads:
    """A store that refuses every read: the writer must only ``put``."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def put(self, records: Any) -> None:
        self.store.put(records)

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the writer read the store ({name})")


def test_the_writer_reads_nothing_and_the_store_merges(store: Store) -> None:
    """A late START, in another batch, adds its keys to the COMPLETE already stored."""
    start, running, complete = airflow_events()
    start["run"]["facets"]["onlyStart"] = {
        "_producer": "https://x.org/p", "_schemaURL": "https://x.org/s.json", "x": 1}
    writer = IngestWriter(NoReads(store), "site-a")  # type: ignore[arg-type]
    for batch in ([complete], [running, start]):
        assert all(isinstance(o, IngestResult)
                   for o in writer.submit(batch).result(timeout=60))
    assert writer.close(30)
    ex = store.get_execution(start["run"]["runId"])
    assert ex is not None and ex.status is ExecutionStatus.COMPLETED
    assert ex.properties[RUN_FACETS_PROPERTY]["onlyStart"]["x"] == 1
    assert ex.started_at < ex.ended_at


def test_writer_resolves_every_future_after_commit(sqlite_store: Store) -> None:
    writer = IngestWriter(sqlite_store, "site-a", max_batch=4)
    events = [e for _ in range(5) for e in airflow_events()]
    futures = [writer.submit([e]) for e in events]
    results = [f.result(timeout=60) for f in futures]
    assert writer.close(30)
    assert all(isinstance(r[0], IngestResult) for r in results)
    assert writer.events == len(events) and writer.largest_batch <= 4
    assert len(sqlite_store.lineage_events()) == len(events)


def test_writer_answers_an_all_invalid_request_without_queueing(sqlite_store: Store) -> None:
    writer = IngestWriter(sqlite_store, "site-a")
    (outcome,) = writer.submit([{"eventTime": "2024-05-01"}]).result(timeout=5)
    assert isinstance(outcome, InvalidEventError)
    assert writer.batches == 0
    assert writer.close(5)


def test_closed_writer_refuses_new_events(sqlite_store: Store) -> None:
    writer = IngestWriter(sqlite_store, "site-a")
    writer.start()
    assert writer.close(30)
    from cmf_core.errors import StoreError

    with pytest.raises(StoreError, match="shutting down"):
        writer.submit(airflow_events()[:1])


def test_unique_run_ids_are_kept_apart(sqlite_store: Store) -> None:
    events = [airflow_events(run_id=str(uuid.uuid4()))[0] for _ in range(20)]
    outcomes = ingest_batch(events, sqlite_store, "site-a")
    assert len({o.execution_id for o in outcomes if isinstance(o, IngestResult)}) == 20


def test_a_client_going_away_does_not_disturb_the_batch(sqlite_store: Store) -> None:
    """A waiting request that is cancelled cannot cancel its events or its neighbours'."""
    writer = IngestWriter(sqlite_store, "site-a")
    first = writer.submit(airflow_events())
    assert not first.cancel()
    second = writer.submit(airflow_events())
    assert all(isinstance(r, IngestResult) for r in second.result(timeout=60))
    assert all(isinstance(r, IngestResult) for r in first.result(timeout=60))
    assert writer.close(30)
    assert len(sqlite_store.lineage_events()) == 6
