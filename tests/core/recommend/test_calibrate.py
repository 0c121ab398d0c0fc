"""Choosing and validating the similarity metric and threshold."""

from __future__ import annotations

import numpy as np
import pytest

from cmf_core.recommend.calibrate import (
    REFINE_AFTERS,
    calibrate,
    cold_trials,
    inner_quality,
    rank_agreement,
    similarity_matrix,
    transfer,
)
from cmf_core.recommend.graph import SimilarityMetric
from cmf_core.recommend.knowledge import KnowledgeBase


def test_rank_agreement_separates_families(toy_kb: KnowledgeBase) -> None:
    table = toy_kb.table("classification")
    agree = rank_agreement(table)
    assert np.allclose(agree, agree.T)
    a = [table.row(f"toy/a{i}") for i in range(3)]
    b = [table.row(f"toy/b{i}") for i in range(3)]
    assert agree[a[0], a[1]] > 0.9
    assert agree[a[0], b[0]] < agree[a[0], a[1]]


def test_similarity_matrix_matches_metric(toy_kb: KnowledgeBase) -> None:
    metric = SimilarityMetric("uniform", {"n_rows": 1, "n_features": 1, "class_balance": 1})
    tasks = list(toy_kb.tasks.values())
    sim = similarity_matrix(tasks, metric)
    for i, a in enumerate(tasks):
        for j, b in enumerate(tasks):
            assert sim[i, j] == pytest.approx(metric(a, b))


def test_calibrate_beats_portfolio_when_similarity_matters(toy_kb: KnowledgeBase) -> None:
    cal = calibrate(toy_kb)
    v = cal["validation"]
    assert 0.5 <= cal["threshold"] <= 0.98
    assert v["chosen"]["objective"] > v["portfolio"]["objective"]
    assert v["chosen"]["coverage"] == 1.0
    assert v["spearman_similarity_vs_agreement"] > 0.5
    assert v["agreement_on_edges"] > v["agreement_off_edges"]
    assert set(v["candidates"]) >= {"uniform^1@sum", "uniform+landmark^4@0.95",
                                    "learned-transfer^16@0.8"}
    assert cal["power"] in (1.0, 4.0, 16.0, 64.0) and cal["level"] in (None, 0.95, 0.8)
    assert v["chosen"]["log_speedup"] > v["portfolio"]["log_speedup"]
    # with k = 1, seeds from neighbours hit every task's best; the portfolio cannot
    table = toy_kb.table("classification")
    tasks = [toy_kb.tasks[t] for t in table.task_ids]
    metric = SimilarityMetric.from_dict(cal["metric"])
    sim = similarity_matrix(tasks, metric)
    assert inner_quality(table, tasks, sim, cal["threshold"], ks=(1,))["hit_rate"] == 1.0
    assert inner_quality(table, tasks, sim, 1.01, ks=(1,))["hit_rate"] < 0.5


def test_transfer_is_high_within_a_family(toy_kb: KnowledgeBase) -> None:
    table = toy_kb.table("classification")
    tr = transfer(table)
    a0, a1, b0 = (table.row(f"toy/{n}") for n in ("a0", "a1", "b0"))
    assert tr[a0, a1] == pytest.approx(1.0, abs=0.05)
    assert tr[a0, b0] < 0.1 and np.allclose(tr, tr.T)


def test_cold_trials_is_the_random_searchers_expectation() -> None:
    assert cold_trials(np.array([1.0, 0.96, 0.5, 0.0])) == pytest.approx(2.0)
    assert cold_trials(np.array([0.5, np.nan, 0.0])) == 51.0  # nothing hits: budget + 1


def test_calibration_chooses_when_local_steps_start(toy_kb: KnowledgeBase) -> None:
    cal = calibrate(toy_kb)
    chosen = cal["adaptive"]
    assert chosen["refine_after"] in REFINE_AFTERS
    curve = cal["validation"]["adaptive"]
    rule = (f"beta={chosen['beta']:g},covered={chosen['covered_weight']:g},"
            f"sigma={chosen['sigma']:g}")
    local = {0: curve[rule], **{m: curve[f"{rule},refine_after={m}"]
                                for m in REFINE_AFTERS if m}}
    assert local[chosen["refine_after"]] == max(local.values())  # the best, the first on ties
    assert chosen["refine_after"] == min(m for m, v in local.items() if v == max(local.values()))
