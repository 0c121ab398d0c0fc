"""examples/prefect/edge_finetune.py runs, unmodified, and its lineage reaches the HPC site."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from cmf_core.identity import file_digest

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "prefect" / "edge_finetune.py"


def _load_example() -> Any:
    spec = importlib.util.spec_from_file_location("edge_finetune_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_edge_fine_tuning_example(auto_route: Any, cmf_settings: Any, cmf_store: Any,
                                  peer: tuple[str, Any], tmp_path: Path,
                                  monkeypatch: Any) -> None:
    url, hpc = peer
    # federated_sync reads the local store from the CMF configuration, as a site's would
    monkeypatch.setenv("CMF_STORE_URL", cmf_settings.store_url)
    monkeypatch.setenv("CMF_SITE", "edge")
    example = _load_example()
    metrics = example.edge_fine_tune(workdir=str(tmp_path / "run"), epochs=30, hpc_url=url,
                                     hpc_token="hpc-secret")
    assert 0.6 < metrics["accuracy"] <= 1.0

    runs = {e.stage: e for e in cmf_store.list_executions()}
    assert set(runs) == {"edge-fine-tune", "load_model", "prepare_local_data", "fine_tune",
                         "evaluate", "federated-sync"}
    assert all(e.status.value == "completed" for e in runs.values())
    tuned = tmp_path / "run" / "model-edge.pkl"
    outputs = {cmf_store.get_artifact(e.artifact_id).uri: cmf_store.get_artifact(e.artifact_id)
               for e in cmf_store.events([runs["fine_tune"].id]) if e.type.value == "OUTPUT"}
    assert outputs[str(tuned)].id == file_digest(tuned)
    assert outputs[str(tuned)].type == "Model"
    assert {m.name for m in cmf_store.metrics([runs["evaluate"].id])} == {"accuracy",
                                                                          "log_loss"}
    assert runs["fine_tune"].params["epochs"] == 30
    edges = set(cmf_store.stage_edges("edge-fine-tune"))
    assert {("load_model", "fine_tune"), ("prepare_local_data", "fine_tune"),
            ("fine_tune", "evaluate"), ("evaluate", "federated-sync")} <= edges
    # the HPC site now holds the edge's lineage, energy included
    for stage in ("fine_tune", "evaluate"):
        copied = hpc.get_execution(runs[stage].id)
        assert copied is not None and copied.site == "edge"
    assert hpc.energy([runs["fine_tune"].id])
