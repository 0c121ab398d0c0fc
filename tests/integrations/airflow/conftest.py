"""Real Airflow for the cmf_airflow tests.

A temporary AIRFLOW_HOME (SQLite metadata database, examples off, unit-test mode) is set up when
this file is imported, before anything imports Airflow, and its database is migrated once per
test session. Since Airflow 3.1 ``dag.test()`` needs the DAG to live in the configured dags
folder, so :func:`run_dag` writes each test DAG there and runs it with ``dag.test()``.

Each test gets its own CMF store (the root conftest points ``CMF_HOME`` into ``tmp_path``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integrations.airflow.helpers import flush

AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="cmf-airflow-tests-"))
DAGS = AIRFLOW_HOME / "dags"
DAGS.mkdir()
os.environ.update({
    "AIRFLOW_HOME": str(AIRFLOW_HOME),
    "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{AIRFLOW_HOME / 'airflow.db'}",
    "AIRFLOW__OPENLINEAGE__DISABLED": "True",  # the OpenLineage route runs in its own process
})
for key in [k for k in os.environ if k.startswith("AIRFLOW__CMF__")]:
    del os.environ[key]


@pytest.fixture(scope="session", autouse=True)
def airflow_db() -> Iterator[Path]:
    """Migrate the Airflow metadata database once for the whole session."""
    from airflow import settings
    from airflow.utils import db

    settings.configure_orm()
    db.initdb()
    # the plugin decides once, when first imported, whether to register the listener: import it
    # now, enabled, so a test that disables tracking first does not disable the whole session
    import cmf_airflow.plugin  # noqa: F401

    yield AIRFLOW_HOME
    shutil.rmtree(AIRFLOW_HOME, ignore_errors=True)


@pytest.fixture
def cmf_store(tmp_path: Path) -> Iterator[Any]:
    """``cmf_store()`` opens the CMF store the listener records into for this test (after
    waiting for queued DAG-run events)."""
    from cmf_core.store import open_store

    stores: list[Any] = []

    def opener() -> Any:
        flush()
        store = open_store(f"sqlite:///{Path(os.environ['CMF_HOME']) / 'cmf.db'}")
        stores.append(store)
        return store

    yield opener
    for store in stores:
        store.close()


def _write(source: str, name: str, **values: Any) -> Path:
    path = DAGS / f"{name}.py"
    text = textwrap.dedent(source)
    for key, value in values.items():
        text = text.replace("{" + key + "}", str(value))
    path.write_text(text)
    return path


@pytest.fixture
def dags_folder() -> Path:
    """The configured dags folder (dag.test() only runs DAGs that live there)."""
    return DAGS


@pytest.fixture
def write_dag() -> Callable[..., Path]:
    """``write_dag(source, dag_id, **values)``: write ``<dag_id>.py`` into the dags folder,
    with ``{dag_id}`` and each ``{key}`` field of ``source`` filled in."""
    return lambda source, dag_id, **values: _write(source, dag_id, dag_id=dag_id, **values)


@pytest.fixture
def run_dag() -> Callable[..., Any]:
    """``run_dag(source, dag_id, **values)``: write the DAG (as :func:`write_dag`) and run it
    once with dag.test(); returns the DagRun."""
    from airflow.dag_processing.dagbag import DagBag

    def run(source: str, dag_id: str, **values: Any) -> Any:
        path = _write(source, dag_id, dag_id=dag_id, **values)
        bag = DagBag(dag_folder=str(path))
        assert not bag.import_errors, bag.import_errors
        dag = bag.get_dag(dag_id)
        assert dag is not None, f"{dag_id} not found in {path}"
        return dag.test()

    return run
