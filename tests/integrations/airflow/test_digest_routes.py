"""One local file is one artifact whichever route records it: the Airflow listener (a real
``dag.test()`` run), the Prefect adapter, ``CmfTransport`` and ``Cmf.log_dataset`` all read
files up to CMF's ``digest_max_mb`` and identify bigger ones by path, size and mtime. Big
files are sparse: their size costs no disk and, above the limit, nothing is read."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from cmf_core.model import EventType
from cmf_core.openlineage.local import local_stat_identity
from tests.integrations.airflow.helpers import artifacts_of, by_stage

READER = '''
from airflow.sdk import Asset, dag, task


@dag(dag_id="{dag_id}", schedule=None)
def reader():
    @task(inlets=[Asset("file://{path}")])
    def read() -> None:
        pass

    read()


reader()
'''


def _by_airflow(run_dag: Any, cmf_store: Any, dag_id: str, path: Path) -> str:
    assert run_dag(READER, dag_id, path=path).state == "success"
    store = cmf_store()
    (found,) = artifacts_of(store, by_stage(store, dag_id)["read"].id, EventType.INPUT)
    assert found.uri == str(path)
    return found.id


def _by_prefect(path: Path) -> str:
    from cmf_prefect.datasets import path_dataset

    # no time budget (a task hook's is 2 s): only the size limit decides
    return path_dataset(path, budget_s=None).facets["cmf_artifact"].digest


def _by_transport(path: Path, tmp_path: Path) -> str:
    from cmf_core.openlineage.transport.cmf import CmfConfig, CmfTransport

    run_id = str(uuid.uuid4())
    transport = CmfTransport(CmfConfig.from_dict({
        "store_url": f"sqlite:///{tmp_path / 'transport.db'}", "site": "ol",
        "on_failure": "raise"}))
    try:
        transport.emit({
            "eventType": "COMPLETE", "eventTime": "2026-01-01T00:00:00Z",
            "producer": "https://example.org/producer",
            "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
            "run": {"runId": run_id}, "job": {"namespace": "dbt", "name": "model"},
            "inputs": [{"namespace": "file", "name": str(path)}], "outputs": []})
        (event,) = transport.store.events(execution_ids=[run_id])
        return event.artifact_id
    finally:
        transport.close()


def _by_api(path: Path, tmp_path: Path) -> str:
    from cmf_core import Cmf

    with Cmf(pipeline_name="p", store=f"sqlite:///{tmp_path / 'api.db'}", site="api",
             measure_energy=False) as cmf, cmf.create_execution("s"):
        return cmf.log_dataset(str(path), "input").id


def test_a_file_of_1_to_2_gib_is_one_artifact_on_every_route(run_dag: Any, cmf_store: Any,
                                                              tmp_path: Path) -> None:
    """Prefect read files up to 2 GiB, the other routes up to 1 GiB: a 1.5 GiB file was two
    artifacts, its content digest from Prefect, its stat digest from the others."""
    big = tmp_path / "shard.bin"
    with big.open("wb") as fh:
        fh.truncate(3 << 29)  # 1.5 GiB, sparse
    expected = local_stat_identity(str(big))[0]
    assert _by_prefect(big) == expected
    assert _by_transport(big, tmp_path) == expected
    assert _by_api(big, tmp_path) == expected
    assert _by_airflow(run_dag, cmf_store, "digest_route_big", big) == expected


def test_cmf_digest_max_mb_is_every_routes_limit(run_dag: Any, cmf_store: Any, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """``CMF_DIGEST_MAX_MB`` alone sets the limit of each route: the Airflow listener and
    ``CmfTransport`` kept 1024 MiB unless their own option was set."""
    monkeypatch.setenv("CMF_DIGEST_MAX_MB", str(1 / 1024))  # 1 KiB
    data = tmp_path / "part.csv"
    data.write_bytes(b"x" * 4096)
    expected = local_stat_identity(str(data))[0]
    assert _by_prefect(data) == expected
    assert _by_transport(data, tmp_path) == expected
    assert _by_api(data, tmp_path) == expected
    assert _by_airflow(run_dag, cmf_store, "digest_route_env", data) == expected
