"""Shared fixtures: a real SQLite file store and a real PostgreSQL started once per test run."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from cmf_core.store import Store, open_store
from tests.support.postgres import TempPostgres

# A terminal size in the environment (pytest-xdist's workers have COLUMNS=80) would fix the
# width of the CLI's rich console when cmf_core.cli is first imported (no import above loads
# it), and a test's CliRunner(env={"COLUMNS": ...}) could no longer widen it: each test sizes
# its terminal itself.
for _key in ("COLUMNS", "LINES"):
    os.environ.pop(_key, None)

# CI (.ci/run) draws the property tests' examples from a fixed seed, so that a landing depends on
# the code, not on the draw; `make test` elsewhere draws new examples each run, and a case it
# finds is kept as an @example.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(autouse=True)
def _clean_cmf_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests never see the developer's CMF_* settings or ~/.cmf."""
    for key in list(os.environ):
        if key.startswith("CMF_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("CMF_HOME", str(tmp_path / ".cmf-home"))


@pytest.fixture(scope="module", autouse=True)
def _no_event_loop_left_running() -> Iterator[None]:
    """A module's tests and fixtures must not leave an asyncio loop running in the main thread
    (as a session-wide Playwright sync API does): a later module's ``asyncio.run`` would raise,
    and Prefect's sync calls would return coroutines instead of running."""
    yield
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    raise AssertionError(f"this module (a test or fixture) left {loop!r} running in the main "
                         "thread")


@pytest.fixture(scope="session")
def postgres() -> Iterator[TempPostgres]:
    """A real PostgreSQL server; a missing server is an error, never a skip."""
    server = TempPostgres().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    store = open_store(f"sqlite:///{tmp_path / 'cmf.db'}", site="site-a")
    yield store
    store.close()


@pytest.fixture
def postgres_store(postgres: TempPostgres) -> Iterator[Store]:
    store = open_store(postgres.create_database(), site="site-a")
    yield store
    store.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest) -> Store:
    """The same tests run against a real SQLite file and a real PostgreSQL database."""
    return request.getfixturevalue(f"{request.param.replace('postgresql', 'postgres')}_store")


@pytest.fixture(scope="module",
                params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def new_store(request: pytest.FixtureRequest,
              tmp_path_factory: pytest.TempPathFactory) -> Callable[[], Store]:
    """Opens a fresh, empty store of the parametrised backend (as ``store`` gives one per test);
    for module-scoped fixtures, which cannot use the per-test ``store``."""
    folder = tmp_path_factory.mktemp("shared")
    count = iter(range(1_000_000))
    if request.param == "sqlite":
        return lambda: open_store(f"sqlite:///{folder / f'cmf-{next(count)}.db'}", site="site-a")
    pg: TempPostgres = request.getfixturevalue("postgres")
    return lambda: open_store(pg.create_database(), site="site-a")
