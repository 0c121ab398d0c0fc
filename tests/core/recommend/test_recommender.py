"""The recommend API on a hand-made knowledge base and on the shipped one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest

from cmf_core.errors import InvalidInputError
from cmf_core.recommend import knowledge
from cmf_core.recommend.knowledge import KnowledgeBase
from cmf_core.recommend.recommender import Strategy, greedy_portfolio, recommend
from cmf_core.recommend.space import config_key, suggest_config
from cmf_core.recommend.task import describe_csv
from tests.core.recommend.conftest import A_BEST, B_BEST, CONFIGS, make_task

ROOT = Path(__file__).resolve().parents[3]
TELCO = ROOT / "examples" / "data" / "telco-churn" / "Telco-Customer-Churn.csv"


def test_seeds_come_from_similar_tasks(toy_kb: KnowledgeBase) -> None:
    rec = recommend(make_task("new", (0.2, 0.21, 0.9)), k=3, knowledge=toy_kb)
    assert rec.strategy is Strategy.SIMILAR_TASKS and not rec.fallback
    assert rec.configs()[0] == CONFIGS[A_BEST]
    assert {n.name for n in rec.neighbours} == {"a0", "a1", "a2"}
    top = rec.seeds[0]
    assert top.expected == pytest.approx(1.0, abs=0.02)
    assert {e.task_name for e in top.evidence} == {"a0", "a1", "a2"}
    assert all(e.rank == 1 and e.run_id for e in top.evidence)
    text = rec.explain()
    assert "3 similar classification task(s)" in text and "a0" in text
    assert str(top.evidence[0].run_id) in text
    assert rec.to_dict()["seeds"][0]["config"] == CONFIGS[A_BEST]


def test_dict_description_is_accepted(toy_kb: KnowledgeBase) -> None:
    rec = recommend(make_task("new", (0.8, 0.7, 0.2)).to_dict(), k=1, knowledge=toy_kb)
    assert rec.configs() == [CONFIGS[B_BEST]]


def test_no_similar_task_falls_back_to_portfolio_and_says_so(toy_kb: KnowledgeBase) -> None:
    rec = recommend(make_task("odd", (0.5, 0.95, 0.55)), k=2, knowledge=toy_kb)
    assert rec.strategy is Strategy.PORTFOLIO and rec.fallback
    assert "no task in the knowledge base is similar enough" in rec.message
    assert rec.neighbours == ()
    # a portfolio of 2 covers both families' winners
    assert {config_key(c) for c in rec.configs()} == {config_key(CONFIGS[A_BEST]),
                                                     config_key(CONFIGS[B_BEST])}


def test_unknown_category_in_kb_gives_no_seeds(toy_kb: KnowledgeBase) -> None:
    rec = recommend(make_task("r", (0.2, 0.2, 0.9), category="regression"), knowledge=toy_kb)
    assert rec.strategy is Strategy.NONE and rec.seeds == ()
    assert "has no regression task" in rec.message


def test_bad_input_raises_or_reports(toy_kb: KnowledgeBase) -> None:
    bad = {"name": "t", "category": "segmentation"}
    with pytest.raises(InvalidInputError, match="unknown task category 'segmentation'"):
        recommend(bad, knowledge=toy_kb)
    rec = recommend(bad, knowledge=toy_kb, strict=False)  # what a pipeline step uses
    assert rec.seeds == () and rec.error and "segmentation" in rec.message
    with pytest.raises(InvalidInputError, match="k=0"):
        recommend(make_task("n", (0.2, 0.2, 0.9)), k=0, knowledge=toy_kb)


def test_greedy_portfolio_covers_different_winners() -> None:
    U = np.array([[1.0, 0.0, 0.6], [0.0, 1.0, 0.6], [0.0, 1.0, 0.6]])
    assert greedy_portfolio(U, [1, 1, 1], 1) == [1]  # best on two of three tasks
    assert greedy_portfolio(U, [1, 1, 1], 2) == [1, 0]  # then the one that covers the rest
    assert greedy_portfolio(U, [5, 1, 1], 1) == [0]
    assert greedy_portfolio(np.array([[np.nan, 0.5]]), [1], 1) == [1]


def test_enqueue_puts_seeds_first(toy_kb: KnowledgeBase) -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    rec = recommend(make_task("new", (0.2, 0.2, 0.9)), k=3, knowledge=toy_kb)
    study = optuna.create_study(direction="maximize")
    assert rec.enqueue(study) == 3
    seen = []
    study.optimize(lambda t: seen.append(suggest_config(t, "classification")) or 0.0,
                   n_trials=4)
    assert seen[:3] == rec.configs()


@pytest.mark.skipif(not knowledge.shipped().tasks, reason="shipped knowledge base not built")
def test_shipped_knowledge_base_recommends_for_telco() -> None:
    task = describe_csv(TELCO, category="classification", target="Churn")
    rec = recommend(task, k=5)
    assert len(rec.seeds) == 5
    assert rec.knowledge_tasks >= 20
    assert rec.strategy in (Strategy.SIMILAR_TASKS, Strategy.PORTFOLIO)
    assert all(s.config["model"] in {"logreg", "knn", "svm", "rf", "hgb"} for s in rec.seeds)
    assert rec.elapsed_s < 5
