"""A PostgreSQL store outliving its database sessions: a restart, a failover, a firewall's idle
timeout or ``pg_terminate_backend`` ends the store's connections while the process goes on.

The store held one writer connection for its lifetime and never replaced it: after the first
write failed, every later write failed too ("the connection is closed", a raw psycopg error),
until the process was restarted. Real PostgreSQL (the suite's shared server); its sessions are
ended with ``pg_terminate_backend``, and an outage is a database that refuses connections
(``ALLOW_CONNECTIONS false``), as a server that is down does.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from cmf_core import Cmf
from cmf_core.errors import StoreError
from cmf_core.model import ExecutionStatus, Pipeline
from cmf_core.store import Store, open_store
from tests.support.postgres import TempPostgres

pytestmark = pytest.mark.postgres


def end_sessions(postgres: TempPostgres, db: str) -> int:
    """End every session of database ``db`` (as a restart or failover does); how many."""
    with psycopg.connect(postgres.url("postgres"), autocommit=True) as c:
        row = c.execute("SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) "
                        "FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                        (db,)).fetchone()
    assert row is not None
    return int(row[0])


def allow_connections(postgres: TempPostgres, db: str, allow: bool) -> None:
    with psycopg.connect(postgres.url("postgres"), autocommit=True) as c:
        c.execute(f'ALTER DATABASE "{db}" ALLOW_CONNECTIONS {str(allow).lower()}')


@pytest.fixture
def pg(postgres: TempPostgres) -> Iterator[tuple[Store, str]]:
    url = postgres.create_database()
    store = open_store(url, site="a")
    yield store, url.rsplit("/", 1)[1]
    store.close()


def pipelines(store: Store) -> list[str]:
    return sorted(p.name for p in store.list_pipelines())


def test_a_write_after_the_sessions_were_ended_reconnects(
        postgres: TempPostgres, pg: tuple[Store, str], caplog: pytest.LogCaptureFixture) -> None:
    store, db = pg
    store.put([Pipeline(name="before", site="a")])
    assert end_sessions(postgres, db) >= 1  # the writer's session at least
    caplog.set_level(logging.INFO, logger="cmf")
    store.put([Pipeline(name="after", site="a")])  # used to raise, and every put after it
    store.put([Pipeline(name="after-2", site="a")])
    assert pipelines(store) == ["after", "after-2", "before"]
    assert "ended the writer connection" in caplog.text and "reconnected" in caplog.text
    # federation's versioned writes go through the same connection
    end_sessions(postgres, db)
    changed = store.put_versioned([(Pipeline(name="merged", site="b"), "site-b", 1)])
    assert changed == 1 and "merged" in pipelines(store)


def test_writes_fail_clearly_while_the_database_is_down_and_work_once_it_is_back(
        postgres: TempPostgres, pg: tuple[Store, str]) -> None:
    store, db = pg
    store.put([Pipeline(name="before", site="a")])
    allow_connections(postgres, db, False)
    try:
        end_sessions(postgres, db)
        for _ in range(2):  # each write tries again, and says why it failed
            with pytest.raises(StoreError, match=r"PostgreSQL store .* failed: .*connection"):
                store.put([Pipeline(name="during", site="a")])
    finally:
        allow_connections(postgres, db, True)
    store.put([Pipeline(name="after", site="a")])
    assert pipelines(store) == ["after", "before"]  # nothing of the failed writes


def test_a_long_lived_logger_records_its_executions_after_the_sessions_were_ended(
        postgres: TempPostgres, tmp_path: Path) -> None:
    """A logger in a long-running process (a training service, a notebook kernel): its store
    lost its connections between two executions; the next one ends recorded in the store, not
    spooled."""
    url = postgres.create_database()
    db = url.rsplit("/", 1)[1]
    with Cmf(pipeline_name="p", store=url, site="hpc", measure_energy=False) as cmf:
        with cmf.create_execution("first"):
            pass
        end_sessions(postgres, db)
        with cmf.create_execution("second", params={"lr": 0.1}) as ex:
            ex.log_metrics("", {"loss": 0.5})
    assert not list((tmp_path / ".cmf-home" / "spool").glob("*.json"))
    with open_store(url, site="reader") as s:
        got = {e.stage: e for e in s.list_executions()}
        assert {k: e.status for k, e in got.items()} == {
            "first": ExecutionStatus.COMPLETED, "second": ExecutionStatus.COMPLETED}
        assert got["second"].params == {"lr": 0.1}
        assert [m.value for m in s.metrics([ex.id])] == [0.5]
