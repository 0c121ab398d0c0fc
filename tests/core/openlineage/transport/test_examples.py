"""The example configurations in examples/openlineage/ load as written."""

from __future__ import annotations

import configparser
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from openlineage.client import OpenLineageClient
from openlineage.client.transport.http import HttpTransport

from cmf_core.openlineage.convert import to_run_events
from cmf_core.openlineage.transport import CMF_TRANSPORT
from cmf_core.openlineage.transport.cmf import CmfConfig, CmfTransport
from cmf_core.store import open_store

EXAMPLES = Path(__file__).resolve().parents[4] / "examples" / "openlineage"


@pytest.mark.parametrize("name", ["openlineage.yml", "dbt/openlineage.yml"])
def test_python_producer_configs_record_into_cmf(name: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 make_lineage: Any) -> None:
    monkeypatch.setenv("OPENLINEAGE_CONFIG", str(EXAMPLES / name))
    monkeypatch.setenv("CMF_STORE_URL", f"sqlite:///{tmp_path / 'cmf.db'}")
    client = OpenLineageClient()
    assert isinstance(client.transport, CmfTransport)
    lineage = make_lineage()
    for event in to_run_events(lineage):
        client.emit(event)
    client.close()
    with open_store(f"sqlite:///{tmp_path / 'cmf.db'}", site="x") as store:
        assert store.get_execution(lineage.execution.id) is not None


def test_http_config_points_at_cmf_serve(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENLINEAGE_CONFIG", str(EXAMPLES / "openlineage-http.yml"))
    transport = OpenLineageClient().transport
    assert isinstance(transport, HttpTransport)
    assert transport.url == "http://localhost:8080" and transport.endpoint == "api/v1/lineage"
    assert transport.config.auth.get_bearer() == "Bearer change-me"


def test_airflow_config_names_the_transport() -> None:
    cfg = configparser.ConfigParser()
    cfg.read(EXAMPLES / "airflow" / "airflow.cfg")
    transport = json.loads(cfg["openlineage"]["transport"])
    assert transport["type"] == CMF_TRANSPORT
    CmfConfig.from_dict(dict(transport))  # every key is one CmfTransport knows


def test_java_producers_post_to_the_lineage_endpoint() -> None:
    spark = dict(line.split(None, 1) for line in
                 (EXAMPLES / "spark" / "spark-defaults.conf").read_text().splitlines()
                 if line.strip() and not line.startswith("#"))
    assert spark["spark.openlineage.transport.type"] == "http"
    assert spark["spark.openlineage.transport.endpoint"] == "/api/v1/lineage"
    flink = yaml.safe_load((EXAMPLES / "flink" / "config.yaml").read_text())
    assert flink["openlineage.transport.endpoint"] == "/api/v1/lineage"
    java = yaml.safe_load((EXAMPLES / "flink" / "openlineage.yml").read_text())
    assert java["transport"]["endpoint"] == "/api/v1/lineage"
    assert java["transport"]["auth"]["type"] == "api_key"


def test_every_example_folder_has_a_readme() -> None:
    for folder in [EXAMPLES, *(p for p in EXAMPLES.iterdir() if p.is_dir())]:
        assert (folder / "README.md").is_file(), folder
