"""``cmf kubeflow ...`` commands, invoked through a typer app as the ``cmf`` script does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
import yaml
from cmf_kubeflow import adapter
from cmf_kubeflow.cli import register
from cmf_kubeflow.tracking import BEGIN_MARK
from kfp import compiler
from typer.testing import CliRunner

from cmf_core.errors import InvalidInputError
from cmf_core.store import open_store
from tests.integrations.kubeflow import pipelines
from tests.integrations.kubeflow.conftest import SITE, run_local
from tests.integrations.kubeflow.kfp_api import RUN_ID, TOKEN, serve_recorded_api


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """cmf"""

    register(app)
    return app


def test_track_command(cli: typer.Typer, tmp_path: Path) -> None:
    plain, tracked = tmp_path / "plain.yaml", tmp_path / "tracked.yaml"
    compiler.Compiler().compile(pipelines.mixed, str(plain))
    result = CliRunner().invoke(cli, ["kubeflow", "track", str(plain), str(tracked),
                                      "--site", "hpc-a", "--set", "pue=1.3"])
    assert result.exit_code == 0, result.output
    assert "tracked 1 executor(s)" in result.output
    assert "not tracked: exec-shell-step" in result.output
    spec = next(yaml.safe_load_all(tracked.read_text()))
    container = spec["deploymentSpec"]["executors"]["exec-make-data"]["container"]
    assert BEGIN_MARK in container["command"][-2]
    assert {"name": "CMF_PUE", "value": "1.3"} in container["env"]
    bad = CliRunner().invoke(cli, ["kubeflow", "track", str(plain), str(tracked), "--set", "x"])
    assert isinstance(bad.exception, InvalidInputError)


def test_track_a_file_that_is_not_yaml(cli: typer.Typer, tmp_path: Path) -> None:
    bad, out = tmp_path / "bad.yaml", tmp_path / "tracked.yaml"
    bad.write_text("pipelineInfo:\n  name: x\n root: [\n")
    result = CliRunner().invoke(cli, ["kubeflow", "track", str(bad), str(out)])
    assert isinstance(result.exception, InvalidInputError)
    assert str(result.exception) == (
        f"pipeline file {bad} is not valid YAML: expected <block end>, but found "
        "'<block mapping start>' (line 3, column 2)")
    bad.write_bytes(b"\xff\xfe")
    result = CliRunner().invoke(cli, ["kubeflow", "track", str(bad), str(out)])
    assert isinstance(result.exception, InvalidInputError)
    assert str(result.exception).startswith(f"pipeline file {bad} is not a YAML text file: ")
    assert not out.exists()


def test_import_commands(cli: typer.Typer, tmp_path: Path, cmf_env: str) -> None:
    run = run_local(tmp_path / "run", pipelines.three_step, rows=12)
    spec = tmp_path / "three.yaml"
    compiler.Compiler().compile(pipelines.three_step, str(spec))
    local = CliRunner().invoke(cli, ["kubeflow", "import-local", str(run.run_dir),
                                     "--pipeline", str(spec), "--arg", "rows=12"])
    assert local.exit_code == 0, local.output
    body = json.loads(local.output)
    assert body["executions"]["make-data"] == adapter.execution_id(run.run_dir.name, "make-data")
    assert body["events_sent"] == 6 and body["notes"] == []
    with serve_recorded_api(pipelines.three_step) as api:
        remote = CliRunner().invoke(cli, ["kubeflow", "import-run", RUN_ID, "--host", api.url,
                                          "--token-env", "KFP_TEST_TOKEN"],
                                    env={"KFP_TEST_TOKEN": TOKEN})
    assert remote.exit_code == 0, remote.output
    assert json.loads(remote.output)["run"] == RUN_ID
    assert json.loads(remote.output)["run_execution"] == adapter.run_uuid(RUN_ID)
    store = open_store(cmf_env, SITE)
    params = {e.stage: dict(e.params) for e in store.list_executions()
              if e.properties.get("kfp.run") == run.run_dir.name}
    assert params["make-data"] == {"rows": 12, "seed": 7}
    assert store.get_execution(adapter.execution_id(RUN_ID, "evaluate-model")) is not None
    # --store, as every cmf command that records takes it
    other = f"sqlite:///{tmp_path / 'other.db'}"
    again = CliRunner().invoke(cli, ["kubeflow", "import-local", str(run.run_dir), "--pipeline",
                                     str(spec), "--arg", "rows=12", "--store", other])
    assert again.exit_code == 0, again.output
    with open_store(other, SITE) as s:
        assert {e.stage for e in s.list_executions()} >= {"make-data", "evaluate-model"}
