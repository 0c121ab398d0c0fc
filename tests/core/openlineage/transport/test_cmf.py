"""CmfTransport: loaded by openlineage-python from configuration alone; records, validates,
spools."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from openlineage.client import OpenLineageClient

from cmf_core.errors import ConfigError, InvalidEventError, StoreError
from cmf_core.identity import file_digest
from cmf_core.model import ExecutionStatus
from cmf_core.openlineage.convert import ExecutionLineage, facet_to_dict, to_run_events
from cmf_core.openlineage.facets import ArtifactDatasetFacet
from cmf_core.openlineage.ingest import unversioned_digest
from cmf_core.openlineage.transport import CMF_TRANSPORT
from cmf_core.openlineage.transport.cmf import CmfConfig, CmfTransport, OnFailure
from cmf_core.store import Store, open_store

ROOT = Path(__file__).resolve().parents[4]


def test_loaded_from_openlineage_yml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     make_lineage: Any) -> None:
    db = tmp_path / "cmf.db"
    config = tmp_path / "openlineage.yml"
    config.write_text(f"transport:\n  type: {CMF_TRANSPORT}\n  store_url: sqlite:///{db}\n"
                      "  site: hpc-a\n")
    monkeypatch.setenv("OPENLINEAGE_CONFIG", str(config))
    client = OpenLineageClient()
    assert isinstance(client.transport, CmfTransport)
    lineage = make_lineage()
    for event in to_run_events(lineage):
        client.emit(event)
    assert client.close()
    with open_store(f"sqlite:///{db}", site="x") as store:
        got = ExecutionLineage.from_store(store, lineage.execution.id)
    assert got.execution.status is ExecutionStatus.COMPLETED
    assert (got.inputs, got.outputs, got.metrics, got.energy) == (
        lineage.inputs, lineage.outputs, lineage.metrics, lineage.energy)


def test_loaded_from_environment_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           make_airflow_events: Any) -> None:
    db = tmp_path / "env.db"
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__TYPE", CMF_TRANSPORT)
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__STORE_URL", f"sqlite:///{db}")
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__ON_FAILURE", "raise")
    client = OpenLineageClient()
    transport = client.transport
    assert isinstance(transport, CmfTransport)
    assert transport.config.on_failure is OnFailure.RAISE
    for event in make_airflow_events():
        assert transport.emit(event) is True  # dicts straight to the transport
    assert transport.store.count_executions() == 1
    assert transport.close()


def test_cmf_settings_fill_what_the_config_leaves_out(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CMF_STORE_URL", f"sqlite:///{tmp_path / 'from-env.db'}")
    monkeypatch.setenv("CMF_SITE", "edge-7")
    transport = CmfTransport(CmfConfig.from_dict({"type": CMF_TRANSPORT}))
    assert transport.settings.site == "edge-7"
    assert transport.store.url.endswith("from-env.db")
    assert "edge-7" in str(transport)
    transport.close()


def test_invalid_event_raises_and_stores_nothing(tmp_path: Path,
                                                 make_airflow_events: Any) -> None:
    transport = CmfTransport(CmfConfig(store_url=f"sqlite:///{tmp_path / 'c.db'}",
                                       site="a"))
    event = make_airflow_events()[0]
    event["run"]["runId"] = "run-1"
    with pytest.raises(InvalidEventError, match=r"run\.runId: 'run-1' is not a UUID"):
        transport.emit(event)
    assert not transport.store.lineage_events()
    assert not transport.spooled()
    transport.close()


def test_unwritable_store_spools_or_raises(tmp_path: Path, make_airflow_events: Any) -> None:
    folder = tmp_path / "a-folder"
    folder.mkdir()
    event = make_airflow_events()[0]
    spooling = CmfTransport(CmfConfig(store_url=f"sqlite:///{folder}", site="a"))
    assert spooling.emit(event) is False
    (spooled,) = spooling.spooled()
    assert json.loads(spooled.read_text())["run"]["runId"] == event["run"]["runId"]
    raising = CmfTransport(CmfConfig(store_url=f"sqlite:///{folder}", site="a",
                                     on_failure=OnFailure.RAISE))
    with pytest.raises(StoreError, match="is a directory"):
        raising.emit(event)


def test_spooled_events_are_recorded_on_retry(tmp_path: Path, make_airflow_events: Any,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CMF_SPOOL_DIR", str(tmp_path / "spool"))
    folder = tmp_path / "later.db"
    folder.mkdir()  # the store cannot be opened yet
    events = make_airflow_events()
    first = CmfTransport(CmfConfig(store_url=f"sqlite:///{folder}", site="a"))
    assert [first.emit(e) for e in events] == [False, False, False]
    folder.rmdir()  # now it can
    second = CmfTransport(CmfConfig(store_url=f"sqlite:///{folder}", site="a"))
    assert second.retry_spool() == (3, 0)
    assert second.store.get_execution(events[0]["run"]["runId"]).status is \
        ExecutionStatus.COMPLETED
    second.close()


def test_spooled_events_are_replayed_by_the_next_transport_that_records(
        tmp_path: Path, make_airflow_events: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """What one producer run spooled (its store could not be opened) is recorded by the next
    run's transport once that records an event, as every other route's emitter replays the
    spool, not only by `cmf spool retry`."""
    monkeypatch.setenv("CMF_SPOOL_DIR", str(tmp_path / "spool"))
    folder = tmp_path / "later.db"
    folder.mkdir()  # the store cannot be opened yet
    events = make_airflow_events()
    first = CmfTransport(CmfConfig(store_url=f"sqlite:///{folder}", site="a"))
    assert [first.emit(e) for e in events[:2]] == [False, False]
    folder.rmdir()  # now it can
    second = CmfTransport(CmfConfig(store_url=f"sqlite:///{folder}", site="a"))
    assert second.emit(events[2]) is True
    assert second.spooled() == []
    assert second.store.get_execution(events[0]["run"]["runId"]).status is \
        ExecutionStatus.COMPLETED
    second.close()


@pytest.mark.parametrize(("params", "text"), [
    ({"storeUrl": "x"}, r"unknown CmfTransport setting\(s\) storeUrl; known settings are: "
                        r"digest_max_mb, home, on_failure, site, store_url"),
    ({"on_failure": "ignore"}, "on_failure 'ignore' must be one of: spool, raise"),
    ({"digest_max_mb": "lots"}, "digest_max_mb 'lots' must be a number >= 0"),
    ({"digest_max_mb": -1}, "digest_max_mb -1 must be a number >= 0"),
])
def test_bad_config_is_named(params: dict[str, Any], text: str) -> None:
    with pytest.raises(ConfigError, match=text):
        CmfConfig.from_dict({"type": CMF_TRANSPORT, **params})


def recorded_artifacts(store: Store, run_id: str) -> set[str]:
    return {e.artifact_id for e in store.events(execution_ids=[run_id])}


def test_local_files_get_the_airflow_listeners_artifact_ids(tmp_path: Path,
                                                           make_airflow_events: Any) -> None:
    """A local file or folder named by a foreign producer is the artifact the Airflow
    listener records for it: its content digest (or, over digest_max_mb, the listener's stat
    digest); a path that does not exist stays identified by its URI."""
    listener = pytest.importorskip("cmf_airflow.datasets")  # plain Python, imports no Airflow
    data = tmp_path / "train.csv"
    data.write_text("a,b\n1,2\n")
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"\0" * 64)
    missing = tmp_path / "later.csv"
    start, _, complete = make_airflow_events()
    complete["inputs"] = [{"namespace": "file", "name": str(data)}]
    complete["outputs"] = [{"namespace": "file", "name": str(model)},
                           {"namespace": "file", "name": str(missing)}]
    start["inputs"] = copy.deepcopy(complete["inputs"])
    sent = copy.deepcopy(complete)
    run_id = complete["run"]["runId"]
    refs = [listener.ref_from_uri(str(p)) for p in (data, model)]
    by_listener = {listener.identify(r, listener.digests(refs, 2**30))[0] for r in refs}
    assert all(i.startswith("sha256:") for i in by_listener)

    transport = CmfTransport(CmfConfig(store_url=f"sqlite:///{tmp_path / 'c.db'}", site="a",
                                       on_failure=OnFailure.RAISE))
    for event in (start, complete):
        assert transport.emit(event) is True
    assert complete == sent  # the caller's event is left as it was
    ids = recorded_artifacts(transport.store, run_id)
    assert ids == by_listener | {unversioned_digest(str(missing))}
    content = transport.store.get_artifact(listener.local_digest(str(data), 2**30)[0])
    assert content is not None and content.properties["digest_method"] == "sha256"
    assert content.uri == str(data)
    transport.close()

    by_stat = CmfTransport(CmfConfig.from_dict({
        "store_url": f"sqlite:///{tmp_path / 'd.db'}", "site": "a", "on_failure": "raise",
        "digest_max_mb": 0}))
    assert by_stat.emit(complete) is True
    assert listener.local_digest(str(data), 0)[0] in recorded_artifacts(by_stat.store, run_id)
    by_stat.close()


def test_a_producers_own_digest_is_kept(tmp_path: Path, make_airflow_events: Any) -> None:
    data = tmp_path / "x.csv"
    data.write_text("x\n")
    start = make_airflow_events()[0]
    own = "sha256:" + "ab" * 32
    start["inputs"] = [{"namespace": "file", "name": str(data), "facets": {
        "cmf_artifact": facet_to_dict(ArtifactDatasetFacet(digest=own, type="Model"))}}]
    transport = CmfTransport(CmfConfig(store_url=f"sqlite:///{tmp_path / 'c.db'}", site="a",
                                       on_failure=OnFailure.RAISE))
    transport.emit(start)
    assert recorded_artifacts(transport.store, start["run"]["runId"]) == {own}
    transport.close()


@pytest.mark.slow
def test_airflow_openlineage_provider_loads_it_from_its_config(tmp_path: Path) -> None:
    """Airflow's own provider: ``[openlineage] transport`` names CmfTransport, nothing else."""
    db = tmp_path / "airflow.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CMF_", "AIRFLOW"))}
    env.update(AIRFLOW_HOME=str(tmp_path / "airflow-home"), PYTHONPATH=str(ROOT),
               CMF_HOME=str(tmp_path / "cmf-home"),
               AIRFLOW__OPENLINEAGE__TRANSPORT=json.dumps(
                   {"type": CMF_TRANSPORT, "store_url": f"sqlite:///{db}", "site": "af"}))
    code = (
        "from airflow.providers.openlineage.plugins.adapter import OpenLineageAdapter\n"
        "from tests.core.openlineage.conftest import airflow_events\n"
        "client = OpenLineageAdapter().get_or_create_openlineage_client()\n"
        "print(type(client.transport).__name__)\n"
        "for e in airflow_events(): client.transport.emit(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "CmfTransport"
    with open_store(f"sqlite:///{db}", site="x") as store:
        (ex,) = store.list_executions()
    assert (ex.pipeline, ex.stage, ex.site) == ("etl", "extract", "af")


def test_digest_max_mb_falls_back_to_cmf_digest_max_mb(tmp_path: Path, make_airflow_events: Any,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset (or empty, as an empty ``OPENLINEAGE__TRANSPORT__DIGEST_MAX_MB``), the limit is
    CMF's ``digest_max_mb`` (``CMF_DIGEST_MAX_MB``), the one every other route uses; the
    transport's own key wins."""
    from cmf_core.openlineage.local import local_stat_identity

    monkeypatch.setenv("CMF_DIGEST_MAX_MB", str(1 / 1024))  # 1 KiB
    data = tmp_path / "part.csv"
    data.write_bytes(b"x" * 4096)
    complete = make_airflow_events()[2]
    complete["inputs"] = [{"namespace": "file", "name": str(data)}]
    run_id = complete["run"]["runId"]
    for n, (given, expected) in enumerate([
            ({}, local_stat_identity(str(data))[0]),
            ({"digest_max_mb": ""}, local_stat_identity(str(data))[0]),
            ({"digest_max_mb": 1}, file_digest(data))]):
        transport = CmfTransport(CmfConfig.from_dict({
            "type": CMF_TRANSPORT, "store_url": f"sqlite:///{tmp_path / f'{n}.db'}",
            "site": "a", "on_failure": "raise", **given}))
        assert transport.emit(complete) is True
        assert recorded_artifacts(transport.store, run_id) >= {expected}, given
        transport.close()
