"""Similarity and the knowledge graph."""

from __future__ import annotations

import itertools

import pytest

from cmf_core.errors import InvalidInputError
from cmf_core.recommend.graph import KnowledgeGraph, SimilarityMetric
from cmf_core.recommend.knowledge import KnowledgeBase
from tests.core.recommend.conftest import make_task


def test_similarity_properties() -> None:
    m = SimilarityMetric("uniform", {"n_rows": 1, "n_features": 1, "class_balance": 1})
    a = make_task("a", (0.2, 0.2, 0.2))
    assert m(a, a) == pytest.approx(1.0)
    b = make_task("b", (0.5, 0.2, 0.2))
    assert m(a, b) == pytest.approx(1 - (0.09 / 3) ** 0.5)
    assert m(a, b) == pytest.approx(m(b, a))
    reg = make_task("r", (0.2, 0.2, 0.2), category="regression")
    assert m(a, reg) == 0.0
    img = make_task("i", (0.2, 0.2, 0.2), modality="image")
    assert m(a, img) == pytest.approx(0.5)
    with pytest.raises(InvalidInputError, match="weights must be"):
        SimilarityMetric("bad", {"n_rows": -1})


def test_edge_iff_similarity_at_least_threshold(toy_kb: KnowledgeBase) -> None:
    metric = SimilarityMetric("uniform", {"n_rows": 1, "n_features": 1, "class_balance": 1})
    tasks = list(toy_kb.tasks.values())
    kg = KnowledgeGraph(tasks, metric, threshold=0.9)
    assert len(kg) == 6
    for a, b in itertools.combinations(tasks, 2):
        assert kg.graph.has_edge(a.id, b.id) == (metric(a, b) >= 0.9)
    assert [len(c) for c in kg.components()] == [3, 3]
    query = make_task("new", (0.21, 0.2, 0.9))
    assert {t for t, _ in kg.neighbours(query)} == {"toy/a0", "toy/a1", "toy/a2"}
    assert kg.neighbours(kg.task("toy/b0"))[0][0] in {"toy/b1", "toy/b2"}
    with pytest.raises(InvalidInputError, match=r"threshold 1\.5"):
        KnowledgeGraph(tasks, metric, threshold=1.5)


def test_knowledge_graph_uses_calibration(toy_kb: KnowledgeBase) -> None:
    from cmf_core.recommend import knowledge_graph

    kg = knowledge_graph(toy_kb)
    assert kg.threshold == 0.9 and kg.metric.name == "uniform"
    assert kg.graph.number_of_edges() == 6  # two triangles, no edge between the families
