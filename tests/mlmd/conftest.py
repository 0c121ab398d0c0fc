"""Fixtures of the MLMD interop tests: MLMD stores written by the real ml-metadata library."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cmf_core import Cmf
from tests.mlmd.mlmd_builders import build_cmflib_store, build_kfp_store, sqlite_config


@pytest.fixture
def cmflib_mlmd(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """An MLMD SQLite file in cmflib's layout (prepare -> featurize -> train)."""
    path = tmp_path / "mlmd"
    built = build_cmflib_store(path)
    del built["store"]  # closes ml-metadata's connection
    return path, built


@pytest.fixture
def kfp_mlmd(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """An MLMD SQLite file in Kubeflow Pipelines v2's layout (one run)."""
    path = tmp_path / "kfp.sqlite"
    built = build_kfp_store(sqlite_config(path))
    del built["store"], built["writer"]
    return path, built


@pytest.fixture
def cmf_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A CMF store written by cmf_core's own logger: prepare -> train, with metrics."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    (work / "raw.csv").write_text("x\n1\n")
    url = f"sqlite:///{tmp_path / 'source.db'}"
    with Cmf(pipeline_name="churn", store=url, site="hpc", measure_energy=False) as cmf:
        with cmf.create_execution("prepare", params={"split": 0.2, "cols": ["a", "b"]},
                                  custom_properties={"owner": "ana", "gpu": False}):
            cmf.log_dataset("raw.csv", "input", custom_properties={"source": "kaggle"})
            (work / "train.csv").write_text("x\n1\n2\n")
            cmf.log_dataset("train.csv", "output")
        with cmf.create_execution("train", params={"lr": 0.1, "epochs": 3}):
            cmf.log_dataset("train.csv", "input")
            (work / "model.pkl").write_bytes(b"m")
            cmf.log_model("model.pkl", "output", model_framework="sklearn")
            for step, loss in enumerate((0.9, 0.5, 0.3)):
                cmf.log_metrics("train", {"loss": loss}, step=step)
            cmf.log_execution_metrics("eval", {"auc": 0.9})
        with cmf.create_execution("evaluate") as ex:
            cmf.log_model("model.pkl", "input")
            cmf.finalize("failed", error="OOM", execution=ex)
    with (Cmf(pipeline_name="other", store=url, site="hpc", measure_energy=False) as cmf,
          cmf.create_execution("only")):
        cmf.log_dataset("raw.csv", "input")
    return url
