"""`cmf import --mlmd` and `cmf export --mlmd` on real stores (CliRunner)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cmflib.cmfquery import CmfQuery
from typer.testing import CliRunner

from cmf_core.cli import app

runner = CliRunner()


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def test_import_json_then_summary(cmflib_mlmd: tuple[Path, dict[str, Any]],
                                  kfp_mlmd: tuple[Path, dict[str, Any]],
                                  tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cmf.db'}"
    data = json.loads(invoke("import", "--mlmd", str(cmflib_mlmd[0]), "--store", url,
                             "--json"))
    assert data["shape"] == "cmflib" and data["pipelines"] == ["churn"]
    assert data["counts"]["executions"] == 3 and data["new"]["executions"] == 3
    text = invoke("import", "--mlmd", str(kfp_mlmd[0]), "--store", url)
    assert "Imported MLMD store" in text and "(kfp, schema 10)" in text
    assert "executions" in text
    again = json.loads(invoke("import", "--mlmd", str(kfp_mlmd[0]), "--store", url, "--json"))
    assert again["new"] == {"executions": 0, "artifacts": 0}
    assert again["skipped"] == {"KFP root DAG execution (the run itself)": 1}
    pipelines = json.loads(invoke("pipelines", "--store", url, "--json"))
    assert sorted(p["name"] for p in pipelines) == ["churn", "churn-kfp"]


def test_export_then_cmfquery(cmflib_mlmd: tuple[Path, dict[str, Any]],
                              tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cmf.db'}"
    invoke("import", "--mlmd", str(cmflib_mlmd[0]), "--store", url, "--pipeline", "churn")
    out = tmp_path / "exported"
    text = invoke("export", "--mlmd", str(out), "--pipeline", "churn", "--store", url)
    assert f"Exported 1 pipeline(s) (churn) to MLMD file {out}: 3 stages, 3 executions" in text
    assert CmfQuery(str(out)).get_pipeline_stages("churn") == [
        "churn/prepare", "churn/featurize", "churn/train"]
    refused = runner.invoke(app, ["export", "--mlmd", str(out), "--store", url])
    assert refused.exit_code != 0 and "already exists" in str(refused.exception)
    data = json.loads(invoke("export", "--mlmd", str(out), "--force", "--store", url,
                             "--json"))
    assert data["counts"]["executions"] == 3 and data["pipelines"] == ["churn"]
