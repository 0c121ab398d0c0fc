"""recommend_seed and federated_sync in a real tracked kfp.local pipeline, with a real peer.

The peer is a real CMF server (``cmf serve``'s code: ``create_app`` under uvicorn) in its own
process on a loopback port, with its own SQLite store and a write token.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from cmf_kubeflow import track
from cmf_kubeflow.components import use_cmf_secret
from cmf_kubeflow.steps import run_federated_sync, run_recommend_seed
from kfp import compiler, components

from cmf_core.errors import AuthError, ConfigError, InvalidInputError
from cmf_core.model import ExecutionStatus
from cmf_core.recommend import AdaptiveSeeder, TaskDescription, recommend, record_trial
from cmf_core.store import open_store
from tests.integrations.kubeflow import pipelines
from tests.integrations.kubeflow.conftest import SITE, LocalRun, run_local
from tests.support.postgres import free_port
from tests.support.seeding import adaptive_seeds

PEER_TOKEN = "peer-secret"
TASK = TaskDescription(name="past-churn", category="classification",
                       meta_features={"n_rows": 0.4, "n_features": 0.2, "class_balance": 0.8,
                                      "frac_missing": 0.0, "frac_categorical": 0.1},
                       task_id="task-past-churn")
TRIALS = [({"model": "hgb", "learning_rate": 0.1, "max_leaf_nodes": 16, "min_samples_leaf": 5},
           0.91),
          ({"model": "rf", "max_features": 0.5, "min_samples_leaf": 3}, 0.88),
          ({"model": "logreg", "C": 1.0, "class_weight": "none"}, 0.80),
          ({"model": "knn", "n_neighbors": 9, "weights": "distance"}, 0.71)]

SERVE = textwrap.dedent("""
    from cmf_core.cli.serve_cmds import serve
    serve(host="127.0.0.1", port=int(__import__("sys").argv[1]), store=None, insecure=False,
          protect_reads=False, access_log=False, log_level="warning")
""")


@dataclass
class Peer:
    url: str
    store_url: str


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peer]:
    folder = tmp_path_factory.mktemp("peer")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMF_")}
    store_url = f"sqlite:///{folder / 'peer.db'}"
    env.update(CMF_STORE_URL=store_url, CMF_SITE="peer-site", CMF_TOKEN=PEER_TOKEN,
               CMF_HOME=str(folder / "home"), CMF_ENERGY="false")
    log = (folder / "serve.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-c", SERVE, str(port)], env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    try:
        while True:
            assert proc.poll() is None, (folder / "serve.log").read_text()[-2000:]
            try:
                if httpx.get(url + "/api/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the peer CMF server did not start"
            time.sleep(0.2)
        yield Peer(url, store_url)
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.fixture(scope="module")
def seeded_run(tmp_path_factory: pytest.TempPathFactory, peer: Peer) -> LocalRun:
    tmp = tmp_path_factory.mktemp("seeded")
    site_store = open_store(f"sqlite:///{tmp / 'cmf.db'}", SITE)
    for config, score in TRIALS:  # what earlier tuning runs on a similar task recorded
        record_trial(site_store, TASK, config, score)
    site_store.close()
    return run_local(tmp, track(pipelines.seeded_search), env={"CMF_SERVER_TOKEN": PEER_TOKEN},
                     task=TASK.to_dict(), peer_url=peer.url)


def test_the_cmf_components_run_tracked(seeded_run: LocalRun) -> None:
    executions = {e.stage: e for e in seeded_run.store().list_executions()
                  if e.pipeline == "seeded-search"}
    assert sorted(executions) == ["evaluate-model", "federated-sync", "make-data",
                                  "recommend-seed", "train-model", "tune"]
    assert all(e.status is ExecutionStatus.COMPLETED for e in executions.values())
    assert dict(executions["recommend-seed"].params)["k"] == 3


def test_recommend_seed_outputs_the_best_past_configurations(seeded_run: LocalRun) -> None:
    store = seeded_run.store()
    executions = {e.stage: e for e in store.list_executions() if e.pipeline == "seeded-search"}
    configs = executions["recommend-seed"].properties["kfp.output_parameters"]["configs"]
    # exactly what the recommender answers for this task and this site's store, in which the
    # best earlier run on the same task is a seed
    expected = recommend(TASK.to_dict(), k=3, store=store, strict=False).configs()
    assert configs == expected and len(configs) == 3
    assert TRIALS[0][0] in configs
    seeds_file = seeded_run.run_dir / "recommend-seed" / "seeds"
    body = json.loads(seeds_file.read_text())
    assert [s["config"] for s in body["seeds"]] == configs
    assert body["strategy"] == "similar_tasks"
    assert all(set(s["optuna_params"]) for s in body["seeds"])
    # the downstream tuning step received both and chose the first seed
    assert executions["tune"].properties["kfp.output_parameters"] == {
        "Output": configs[0]["model"]}
    best = json.loads((seeded_run.run_dir / "tune" / "best").read_text())
    assert best["first"] == configs[0]
    # and rebuilt the adaptive seeder from the artifact: the seeds it gave are those the
    # in-process seeder gives for the same scores
    local = recommend(TASK.to_dict(), k=3, store=store, strict=False).seeder()
    assert best["adaptive"] == adaptive_seeds(local) and len(local.given) == 3


def test_federated_sync_pushes_to_the_peer(seeded_run: LocalRun, peer: Peer) -> None:
    summary = {e.stage: e for e in seeded_run.store().list_executions()}[
        "federated-sync"].properties["kfp.output_parameters"]["summary"]
    assert summary["peer"] == peer.url and summary["direction"] == "push"
    assert summary["result"]["peer_site"] == "peer-site"
    assert summary["result"]["pushed"]["records"] > 0
    peer_store = open_store(peer.store_url, "peer-site")
    pushed = {e.stage for e in peer_store.list_executions() if e.pipeline == "seeded-search"}
    # everything that had finished before the sync step started
    assert {"make-data", "train-model", "evaluate-model", "recommend-seed", "tune"} <= pushed
    assert any(e.pipeline == "hpo-past-churn" for e in peer_store.list_executions())


def test_federated_sync_names_where_a_refused_token_came_from(
        tmp_path: Path, peer: Peer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CMF_STORE_URL", f"sqlite:///{tmp_path / 'site.db'}")
    monkeypatch.delenv("CMF_SERVER_TOKEN", raising=False)
    summary = run_federated_sync(peer.url, strict=False)
    assert "refused GET /info" in summary["error"]
    assert "this step's token: none; $CMF_SERVER_TOKEN is not set" in summary["error"]
    monkeypatch.setenv("PEER_TOKEN", "stale-token")
    with pytest.raises(AuthError, match=r"this step's token: \$PEER_TOKEN\)"):
        run_federated_sync(peer.url, token_env="PEER_TOKEN")


def test_federated_sync_in_a_pod_needs_the_sites_store(
        tmp_path: Path, peer: Peer, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a cluster (simulated: KFP_POD_NAME, as the KFP backend sets it on every executor pod;
    no cluster here) a component without CMF_STORE_URL synced the pod's own new, empty store
    and said it succeeded."""
    monkeypatch.setenv("CMF_HOME", str(tmp_path / "pod-home"))
    monkeypatch.delenv("CMF_STORE_URL", raising=False)
    monkeypatch.setenv("KFP_POD_NAME", "sync-only-abc12-federated-sync")
    summary = run_federated_sync(peer.url, strict=False)
    assert "without CMF_STORE_URL: it would sync the pod's own empty store" in summary["error"]
    assert "result" not in summary
    with pytest.raises(ConfigError, match="set CMF_STORE_URL to this site's store"):
        run_federated_sync(peer.url)
    monkeypatch.setenv("KFP_POD_NAME", "{{$.pod_name}}")  # not a pod: the placeholder as written
    monkeypatch.setenv("CMF_SERVER_TOKEN", PEER_TOKEN)
    assert run_federated_sync(peer.url, direction="pull", strict=False).get("result")


def test_components_compile_with_a_secret(tmp_path: Path) -> None:
    path = tmp_path / "sync.yaml"
    compiler.Compiler().compile(track(pipelines.sync_only), str(path))
    spec, platform = (d for d in yaml.safe_load_all(path.read_text()) if d)
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert k8s["exec-federated-sync"]["secretAsEnv"] == [{"secretName": "cmf-peer", "keyToEnv": [
        {"secretKey": "token", "envVar": "CMF_SERVER_TOKEN"}]}]
    assert "secretAsEnv" not in k8s["exec-recommend-seed"]
    assert "peer-secret" not in path.read_text() and PEER_TOKEN not in path.read_text()
    loaded = components.load_component_from_file(str(path))
    assert loaded.name == "sync-only"
    assert spec["root"]["dag"]["tasks"]["federated-sync"]["inputs"]["parameters"][
        "direction"]["runtimeValue"]["constant"] == "both"


def test_component_functions_check_their_inputs(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InvalidInputError, match="direction 'sideways'"):
        run_federated_sync("http://x", direction="sideways")
    monkeypatch.delenv("CMF_SERVER_URL", raising=False)
    with pytest.raises(ConfigError, match="no peer to sync with"):
        run_federated_sync("")
    down = f"http://127.0.0.1:{free_port()}"
    summary = run_federated_sync(down, strict=False)
    assert summary["peer"] == down and "Error" in summary["error"]
    summary = run_federated_sync(down.replace("://", "://ops:hunter2@"), strict=False)
    assert "hunter2" not in json.dumps(summary) and summary["peer"].startswith("http://ops:***@")
    with pytest.raises(ConfigError, match="CMF_\\* names are reserved"):
        use_cmf_secret(object(), "s", {"token": "CMF_PEER_TOKEN"})
    monkeypatch.setenv("CMF_STORE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    configs, body = run_recommend_seed({"category": "no-such-category"}, k=2,
                                       path=str(tmp_path / "out" / "seeds.json"))
    assert configs == [] and body["error"] and "starts cold" in body["message"]
    assert json.loads((tmp_path / "out" / "seeds.json").read_text()) == body
    # the search downstream still runs: its seeder gives nothing, the search starts cold
    assert body["seeder"] is None and AdaptiveSeeder.from_dict(body).next_config({}) is None
    # bad k, a store URL that is no URL: the step still succeeds, unless strict
    configs, body = run_recommend_seed({"category": "classification"}, k=0)
    assert configs == [] and "k=0 must be a whole number >= 1" in body["error"]
    with pytest.raises(InvalidInputError, match="k=0"):
        run_recommend_seed({"category": "classification"}, k=0, strict=True)
    task = {"name": "t", "category": "classification", "meta_features": {"n_rows": 0.4}}
    configs, body = run_recommend_seed(task, k=2, store_url="garbage")
    assert len(configs) == 2 and body["error"] is None
    with pytest.raises(ConfigError, match="garbage"):
        run_recommend_seed(task, k=2, store_url="garbage", strict=True)


def test_recommend_seed_keeps_the_seeds_in_the_searchs_models(tmp_path: Path) -> None:
    """The component's ``models`` list: seeds of those families only; models with no runs or
    an empty list give no seeds, say why in the artifact, and the run still succeeds."""
    run = run_local(tmp_path, pipelines.seed_models, task=TASK.to_dict())

    def output(step: str) -> tuple[list, dict]:
        folder = run.run_dir / step
        written = json.loads((folder / "executor_output.json").read_text())
        return written["parameterValues"]["configs"], json.loads((folder / "seeds").read_text())

    configs, body = output("recommend-seed")
    assert configs and {c["model"] for c in configs} <= {"rf", "hgb"}
    assert body["error"] is None and "only hgb, rf as asked" in body["message"]
    # what the recommender answers in-process, with and without the models
    assert configs == run_recommend_seed(TASK.to_dict(), k=3, store_url="none",
                                         models=["rf", "hgb"])[0]
    assert output("recommend-seed-4")[0] == run_recommend_seed(TASK.to_dict(), k=3,
                                                               store_url="none")[0]
    configs, body = output("recommend-seed-2")
    assert configs == [] and body["seeds"] == [] and body["seeder"] is None
    assert body["error"].startswith("none of the models xgboost has runs")
    assert "the families there are: hgb, knn, logreg, rf, svm" in body["message"]
    configs, body = output("recommend-seed-3")
    assert configs == [] and body["error"].startswith("models=[] must be a non-empty list")
