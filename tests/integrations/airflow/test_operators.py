"""The recommend-seed and federated-sync operators inside a real DAG, against a real peer."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cmf_core.identity import file_digest
from cmf_core.model import ExecutionStatus
from tests.integrations.airflow.helpers import by_stage
from tests.support.asgi import served
from tests.support.seeding import adaptive_seeds

OPS = '''
from airflow.sdk import dag, task

from cmf_airflow.operators import CmfFederatedSyncOperator, CmfRecommendSeedOperator


@dag(dag_id="{dag_id}", schedule=None)
def ops():
    seeds = CmfRecommendSeedOperator(task_id="recommend", category="classification",
                                     dataset_path="{data}/train.csv", target="label", k=3)

    @task
    def search(configs: list, ti=None) -> dict:
        import zlib

        import optuna

        from cmf_core.recommend import AdaptiveSeeder, suggest_config
        from cmf_core.recommend.space import config_key

        task = ti.xcom_pull(task_ids="recommend", key="task")
        # adaptive seeds: the seeder travels in the step's recommendation
        seeder = AdaptiveSeeder.from_dict(ti.xcom_pull(task_ids="recommend",
                                                       key="recommendation"))
        study = optuna.create_study(direction="maximize")

        def objective(trial):  # a deterministic stand-in for fit-and-score
            return zlib.crc32(config_key(suggest_config(trial, "classification")).encode()) / 2**32

        seeder.enqueue_first(study)
        study.optimize(objective, n_trials=4, callbacks=[seeder.optuna_callback()])
        return {"n_seeds": len(configs), "category": task["category"],
                "adaptive": [config_key(c) for c in seeder.given]}

    share = CmfFederatedSyncOperator(task_id="share", cmf_conn_id="cmf_peer",
                                     direction="push", pipeline="{dag_id}")
    search(seeds.output) >> share


ops()
'''

MISSING = '''
from airflow.sdk import dag

from cmf_airflow.operators import CmfFederatedSyncOperator


@dag(dag_id="{dag_id}", schedule=None)
def missing():
    CmfFederatedSyncOperator(task_id="optional", cmf_conn_id="no_such_peer",
                             missing_peer="skip")
    CmfFederatedSyncOperator(task_id="required", cmf_conn_id="no_such_peer")


missing()
'''

WRONG_TOKEN = '''
from airflow.sdk import dag

from cmf_airflow.operators import CmfFederatedSyncOperator


@dag(dag_id="{dag_id}", schedule=None)
def wrong_token():
    CmfFederatedSyncOperator(task_id="share", cmf_conn_id="cmf_peer")


wrong_token()
'''

BAD_DATA = '''
from airflow.sdk import dag

from cmf_airflow.operators import CmfRecommendSeedOperator


@dag(dag_id="{dag_id}", schedule=None)
def bad_data():
    CmfRecommendSeedOperator(task_id="lenient", category="classification",
                             dataset_path="{data}/flat.csv", target="label")
    CmfRecommendSeedOperator(task_id="strict", category="classification",
                             dataset_path="{data}/flat.csv", target="label", strict=True)


bad_data()
'''


@pytest.fixture
def peer(tmp_path: Path) -> Iterator[tuple[str, Any]]:
    """A peer site: ``cmf serve``'s app over its own SQLite store, on a loopback port."""
    from cmf_core.config import load_settings
    from cmf_core.server.app import create_app
    from cmf_core.store import open_store

    url = f"sqlite:///{tmp_path / 'peer.db'}"
    settings = load_settings(site="peer-site", store_url=url, token="peer-token")
    store = open_store(url, site="peer-site")
    try:
        with served(create_app(store, settings), "peer-site") as base:
            yield base, store
    finally:
        store.close()


def test_operators_in_a_dag(run_dag, cmf_store, peer, tmp_path: Path, monkeypatch) -> None:
    from cmf_core.recommend import describe_csv, recommend

    url, peer_store = peer
    host, port = url.removeprefix("http://").split(":")
    monkeypatch.setenv("AIRFLOW_CONN_CMF_PEER", json.dumps(
        {"conn_type": "cmf", "host": host, "port": int(port), "schema": "http",
         "password": "peer-token"}))
    data = tmp_path / "data"
    data.mkdir()
    rng = random.Random(0)
    rows = [f"{rng.random():.4f},{rng.gauss(0, 1):.4f},{int(rng.random() > 0.6)}"
            for _ in range(80)]
    (data / "train.csv").write_text("f1,f2,label\n" + "\n".join(rows))

    dr = run_dag(OPS, "with_operators", data=data)
    assert dr.state == "success", {ti.task_id: ti.state for ti in dr.get_task_instances()}
    store = cmf_store()
    runs = by_stage(store, "with_operators")
    assert {runs[s].status for s in ("recommend", "search", "share")} == {
        ExecutionStatus.COMPLETED}

    # the seeds pushed to XCom are the recommender's, for the same task description
    expected = recommend(describe_csv(data / "train.csv", category="classification",
                                      target="label", name="with_operators.recommend"),
                         k=3, store=store)
    assert runs["recommend"].properties["airflow.xcom_return"]["len"] == len(expected.seeds)
    # the data file the step described is its input, by content digest
    (used,) = [e.artifact_id for e in store.events(execution_ids=[runs["recommend"].id])
               if e.type.value == "INPUT"]
    assert used == file_digest(data / "train.csv")
    assert runs["search"].params["configs"] == expected.configs()
    # the search task rebuilt the adaptive seeder from XCom: the seeds it gave are those the
    # in-process seeder gives for the same scores (the first is the static list's first)
    local = expected.seeder()
    assert runs["search"].properties["airflow.xcom_return"]["value"] == {
        "n_seeds": len(expected.seeds), "category": "classification",
        "adaptive": adaptive_seeds(local)}
    assert local.given[0] == expected.configs()[0] and len(local.given) == 3

    # the peer now has this pipeline's runs, pushed with the token of the connection
    pushed = by_stage(peer_store, "with_operators")
    assert {"recommend", "search"} <= set(pushed)
    assert pushed["search"].id == runs["search"].id
    sync_report = runs["share"].properties["airflow.xcom_return"]["value"]
    assert sync_report["direction"] == "push" and sync_report["peer_site"] == "peer-site"
    assert sync_report["pushed"]["records"] > 0


def test_sync_without_a_peer_connection(run_dag, cmf_store) -> None:
    dr = run_dag(MISSING, "missing_peer")
    states = {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}
    assert states == {"optional": "skipped", "required": "failed"}
    runs = by_stage(cmf_store(), "missing_peer")
    assert runs["required"].status is ExecutionStatus.FAILED
    assert "no_such_peer" in runs["required"].error
    assert runs["optional"].status is ExecutionStatus.SKIPPED


def test_sync_with_a_token_the_peer_refuses(run_dag, cmf_store, peer, monkeypatch,
                                            capfd) -> None:
    """The task fails saying the peer refused the token and where the token came from (the
    connection's password), and the token is in neither the task's log nor its record."""
    url, _ = peer
    host, port = url.removeprefix("http://").split(":")
    monkeypatch.setenv("AIRFLOW_CONN_CMF_PEER", json.dumps(
        {"conn_type": "cmf", "host": host, "port": int(port), "schema": "http",
         "password": "stale-token-3f9a"}))
    dr = run_dag(WRONG_TOKEN, "wrong_token")
    assert dr.state == "failed"
    run = by_stage(cmf_store(), "wrong_token")["share"]
    assert run.status is ExecutionStatus.FAILED
    assert "refused GET /info" in run.error
    assert "this step's token: the password of connection 'cmf_peer'" in run.error
    logged = capfd.readouterr()
    assert "stale-token-3f9a" not in logged.out + logged.err + run.error


def test_recommend_seed_on_data_it_cannot_describe(run_dag, cmf_store, tmp_path: Path) -> None:
    """Every input column constant: by default the step succeeds with no seeds and says why
    (the search starts cold); with strict=True the task fails, naming the problem."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "flat.csv").write_text("f1,f2,label\n" + "".join(f"1,2,{i % 2}\n" for i in range(40)))
    dr = run_dag(BAD_DATA, "bad_data", data=data)
    states = {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}
    assert states == {"lenient": "success", "strict": "failed"}
    runs = by_stage(cmf_store(), "bad_data")
    assert runs["lenient"].properties["airflow.xcom_return"]["len"] == 0
    assert "every input column of 'bad_data.strict' is constant" in runs["strict"].error


MODELS = '''
from airflow.sdk import dag, task

from cmf_airflow.operators import CmfRecommendSeedOperator

CASES = {"listed": ["rf", "{{ params.second }}"], "rendered": "{{ params.models }}",
         "comma": "knn, svm", "no_runs": ["xgboost"], "empty": [], "blank": ""}


@dag(dag_id="{dag_id}", schedule=None, params={"models": ["rf", "hgb"], "second": "hgb"})
def models():
    steps = [CmfRecommendSeedOperator(task_id=name, category="classification",
                                      dataset_path="{data}/train.csv", target="label", k=3,
                                      models=models)
             for name, models in CASES.items()]

    @task
    def report(ti=None) -> dict:
        recs = {name: ti.xcom_pull(task_ids=name, key="recommendation") for name in CASES}
        return {name: {"models": sorted({s["config"]["model"] for s in rec["seeds"]}),
                       "error": rec["error"]} for name, rec in recs.items()}

    steps >> report()


models()
'''


def test_recommend_seed_keeps_the_seeds_in_the_searchs_models(run_dag, cmf_store,
                                                              tmp_path: Path) -> None:
    """``models`` (templated): seeds of those families alone, however the list arrives (a
    list, a Jinja-rendered list parameter, comma-separated); models with no runs, an empty list
    or an empty string give no seeds and say why, and never fail the DAG."""
    data = tmp_path / "data"
    data.mkdir()
    rng = random.Random(1)
    rows = [f"{rng.random():.4f},{rng.gauss(0, 1):.4f},{int(rng.random() > 0.6)}"
            for _ in range(80)]
    (data / "train.csv").write_text("f1,f2,label\n" + "\n".join(rows))
    dr = run_dag(MODELS, "seed_models", data=data)
    states = {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}
    assert set(states.values()) == {"success"}, states
    report = by_stage(cmf_store(), "seed_models")["report"].properties[
        "airflow.xcom_return"]["value"]
    assert report["listed"] == report["rendered"]
    assert report["listed"]["error"] is None and report["comma"]["error"] is None
    assert report["listed"]["models"] and set(report["listed"]["models"]) <= {"hgb", "rf"}
    assert report["comma"]["models"] and set(report["comma"]["models"]) <= {"knn", "svm"}
    assert report["no_runs"]["models"] == [] and report["no_runs"]["error"].startswith(
        "none of the models xgboost has runs")
    assert "the families there are: hgb, knn, logreg, rf, svm" in report["no_runs"]["error"]
    assert report["empty"]["models"] == [] and report["empty"]["error"].startswith(
        "models=[] must be a non-empty list of model family names")
    assert report["blank"]["models"] == [] and report["blank"]["error"].startswith(
        "models='' must be a non-empty list of model family names")
