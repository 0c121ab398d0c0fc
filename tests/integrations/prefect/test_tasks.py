"""recommend_seed and federated_sync inside real flows, with the CMF connection blocks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cmf_prefect.blocks import CmfConnection, CmfPeer
from cmf_prefect.tasks import federated_sync, recommend_seed
from prefect import flow, task

from cmf_core.errors import InvalidInputError
from cmf_core.identity import file_digest
from cmf_core.recommend import AdaptiveSeeder
from cmf_core.recommend.space import config_key
from tests.support.seeding import adaptive_seeds

CHURN = Path(__file__).resolve().parents[3] / "examples/data/telco-churn/Telco-Customer-Churn.csv"


PAST_RUNS = [({"model": "random_forest", "n_estimators": 200, "max_depth": 8}, 0.81),
             ({"model": "logistic_regression", "C": 1.0}, 0.79),
             ({"model": "gradient_boosting", "learning_rate": 0.1, "n_estimators": 100}, 0.83)]


def test_recommend_seed_in_a_flow(auto_route: Any, cmf_settings: Any, cmf_store: Any,
                                  tmp_path: Path) -> None:
    from cmf_core.recommend import describe_csv, record_trial

    # last year's churn study at this site: three scored configurations in the store
    past = tmp_path / "churn-2024.csv"
    past.write_text("".join(CHURN.read_text().splitlines(keepends=True)[:3001]))
    described = describe_csv(past, category="classification", target="Churn")
    for config, score in PAST_RUNS:
        record_trial(cmf_store, described, config, score)

    @task
    def search(seeds: dict[str, Any]) -> list[str]:
        # adaptive seeds from the step's result (a searcher of its own: the past runs use a
        # family outside the default space, gradient_boosting)
        return adaptive_seeds(AdaptiveSeeder.from_dict(seeds))

    @flow
    def tune(data: str) -> tuple[dict[str, Any], list[str]]:
        rec = recommend_seed(data=data, category="classification", target="Churn", k=3,
                             connection=CmfConnection(store_url=cmf_settings.store_url))
        return rec, search(rec)

    rec, adaptive = tune(str(CHURN))
    assert rec["error"] is None and rec["strategy"] == "similar_tasks", rec["message"]
    assert len(rec["seeds"]) == 3
    # the search task rebuilt the seeder from the result: the seeds it gave are those the
    # in-process seeder gives for the same scores
    local = AdaptiveSeeder.from_dict(json.loads(json.dumps(rec["seeder"])))
    assert adaptive == adaptive_seeds(local) and len(adaptive) == 3
    assert adaptive[0] == config_key(rec["configs"][0])
    assert rec["configs"] == [s["config"] for s in rec["seeds"]]
    assert rec["configs"][0]["model"] == "gradient_boosting"  # the best past run first
    # the step is recorded like any task: its data file is an input, its seeds feed `search`
    runs = {e.stage: e for e in cmf_store.list_executions()}
    assert runs["recommend-seed"].status.value == "completed"
    read = [cmf_store.get_artifact(e.artifact_id) for e in cmf_store.events([
        runs["recommend-seed"].id]) if e.type.value.lower() == "input"]
    assert file_digest(CHURN) in {a.id for a in read}
    assert ("recommend-seed", "search") in cmf_store.stage_edges("tune")


def test_recommend_seed_starts_cold_on_a_bad_description(prefect_api: str,
                                                         cmf_settings: Any) -> None:
    @flow
    def cold() -> dict[str, Any]:
        return recommend_seed({"name": "x", "category": "astrology"},
                              connection=CmfConnection(store_url=cmf_settings.store_url))

    rec = cold()
    assert rec["seeds"] == [] and "astrology" in rec["error"]


def test_recommend_seed_never_fails_the_flow_unless_strict(prefect_api: str, tmp_path: Path,
                                                           cmf_settings: Any) -> None:
    """An empty CSV, data with every input column constant, a store URL that is no URL: the
    task succeeds and says why; ``strict=True`` fails it."""
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    flat = tmp_path / "flat.csv"
    flat.write_text("a,b,label\n" + "".join(f"1,2,{i % 2}\n" for i in range(40)))

    @flow
    def tune(data: str, store_url: str, target: str = "label", strict: bool = False
             ) -> dict[str, Any]:
        return recommend_seed(data=data, category="classification", target=target, k=3,
                              connection=CmfConnection(store_url=store_url), strict=strict)

    ok = cmf_settings.store_url
    rec = tune(str(empty), ok)
    assert rec["seeds"] == [] and "could not describe the task" in rec["error"]
    rec = tune(str(flat), ok)
    assert rec["seeds"] == [] and "every input column" in rec["error"]
    rec = tune(str(CHURN), "garbage", target="Churn")
    assert len(rec["configs"]) == 3 and rec["error"] is None
    with pytest.raises(InvalidInputError, match="every input column"):
        tune(str(flat), ok, strict=True)


def test_federated_sync_pushes_the_flow_lineage_to_the_hpc_site(
        auto_route: Any, cmf_settings: Any, cmf_store: Any, peer: tuple[str, Any]) -> None:
    url, hpc = peer
    CmfPeer(url=url, token="hpc-secret").save("hpc-site", overwrite=True)
    CmfConnection(store_url=cmf_settings.store_url, site="edge").save("edge", overwrite=True)

    @task
    def fine_tune(epochs: int) -> dict[str, float]:
        return {"accuracy": 0.5 + 0.1 * epochs}

    @flow
    def edge_round(epochs: int = 2) -> dict[str, Any]:
        metrics = fine_tune(epochs)
        summary = federated_sync(CmfPeer.load("hpc-site"), direction="push",
                                 connection=CmfConnection.load("edge"), wait_for=[metrics])
        # the URL-and-token form: the token is a task parameter, recorded redacted
        federated_sync(url, token="hpc-secret", direction="push",
                       connection=CmfConnection.load("edge"), wait_for=[summary])
        return summary

    summary = edge_round()
    assert summary["direction"] == "push" and summary["peer_site"] == "hpc"
    assert summary["pushed"]["records"] > 0 and summary["conflicts"] == 0
    tuned = [e for e in cmf_store.list_executions() if e.stage == "fine_tune"]
    assert len(tuned) == 1
    copied = hpc.get_execution(tuned[0].id)
    assert copied is not None and copied.site == "edge"
    assert copied.status.value == "completed"
    syncs = [e for e in cmf_store.list_executions() if e.stage == "federated-sync"]
    assert len(syncs) == 2 and any(e.params.get("token") == "***" for e in syncs)
    for store in (cmf_store, hpc):  # not in this site's store, nor in what was pushed
        assert "hpc-secret" not in json.dumps([dict(e.params) for e in store.list_executions()])


def test_federated_sync_names_where_a_refused_token_came_from(
        auto_route: Any, cmf_settings: Any, cmf_store: Any, peer: tuple[str, Any]) -> None:
    from cmf_core.errors import AuthError

    url, _ = peer
    CmfPeer(url=url, token="stale-token").save("hpc-stale", overwrite=True)
    connection = CmfConnection(store_url=cmf_settings.store_url, site="edge")

    @flow
    def with_block() -> dict[str, Any]:
        return federated_sync(CmfPeer.load("hpc-stale"), connection=connection)

    @flow
    def without_token() -> dict[str, Any]:
        return federated_sync(url, connection=connection)

    with pytest.raises(AuthError, match="this task's token: the token of the CmfPeer block"):
        with_block()
    with pytest.raises(AuthError, match="this task's token: none; give the CmfPeer block a"):
        without_token()
    failed = [e for e in cmf_store.list_executions() if e.stage == "federated-sync"]
    assert len(failed) == 2 and all("refused GET /info" in e.error for e in failed)


def test_federated_sync_rejects_a_bad_direction(prefect_api: str) -> None:
    with pytest.raises(InvalidInputError, match="sideways"):
        federated_sync.fn("http://127.0.0.1:9", direction="sideways")


def test_recommend_seed_keeps_the_seeds_in_the_searchs_models(prefect_api: str,
                                                               cmf_settings: Any) -> None:
    """``models``: seeds of the search space's families only; a space with none of the known
    families gives no seeds and says why, without failing the flow."""
    @flow
    def tune(models: list[str]) -> dict[str, Any]:
        return recommend_seed(data=str(CHURN), category="classification", target="Churn", k=3,
                              models=models, use_store=False)

    rec = tune(["knn", "svm"])
    assert len(rec["configs"]) == 3 and {c["model"] for c in rec["configs"]} <= {"knn", "svm"}
    rec = tune(["xgboost"])
    assert rec["seeds"] == [] and "none of the models xgboost" in rec["error"]
