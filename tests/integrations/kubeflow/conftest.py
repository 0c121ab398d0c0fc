"""Real ``kfp.local`` runs (SubprocessRunner, no venv) into a real SQLite CMF store."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cmf_kubeflow.importer import list_local_runs
from kfp import local

from cmf_core.store import Store, open_store

SITE = "kfp-site"


@dataclass
class LocalRun:
    """A finished kfp.local run: its folder, its store and what the pipeline returned."""

    root: Path
    run_dir: Path
    store_url: str
    outputs: Any

    def store(self) -> Store:
        return open_store(self.store_url, SITE)


def init_local(root: Path, raise_on_error: bool = True) -> None:
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root),
               raise_on_error=raise_on_error)


def run_local(tmp: Path, pipeline: Any, env: dict[str, str] | None = None,
              raise_on_error: bool = True, **arguments: Any) -> LocalRun:
    """Run ``pipeline`` with kfp.local; the executors inherit ``env`` (CMF_* settings)."""
    tmp.mkdir(parents=True, exist_ok=True)
    root = tmp / "pipeline-root"
    store_url = f"sqlite:///{tmp / 'cmf.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp)
        mp.setenv("CMF_HOME", str(tmp / "cmf-home"))
        mp.setenv("CMF_STORE_URL", store_url)
        mp.setenv("CMF_SITE", SITE)
        # what is recorded is under test here, not the hook's time budget: on a loaded machine
        # two loop iterations writing a new store at once overran the 5 s default and spooled
        # (the product's way, replayed at the next start), which a comparison then missed
        mp.setenv("CMF_HOOK_TIMEOUT_S", "60")
        for key, value in (env or {}).items():
            mp.setenv(key, value)
        init_local(root, raise_on_error)
        outputs = pipeline(**arguments)
    return LocalRun(root=root, run_dir=list_local_runs(root)[-1], store_url=store_url,
                    outputs=outputs)


@pytest.fixture
def cmf_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """CMF settings of this test process: a store of its own, site ``kfp-site``."""
    url = f"sqlite:///{tmp_path / 'import.db'}"
    monkeypatch.setenv("CMF_STORE_URL", url)
    monkeypatch.setenv("CMF_SITE", SITE)
    yield url
