"""The meta-model: normalised scores predicted from meta-features and the configuration."""

from __future__ import annotations

import numpy as np

from cmf_core.recommend.knowledge import KnowledgeBase
from cmf_core.recommend.recommender import recommend
from cmf_core.recommend.surrogate import N_TREES, encode_configs, meta_model
from tests.core.recommend.conftest import A_BEST, B_BEST, CONFIGS, make_task


def test_encode_configs_tells_configurations_apart() -> None:
    X = encode_configs(CONFIGS)
    assert X.shape[0] == len(CONFIGS)
    assert len({tuple(r) for r in X}) == len(CONFIGS)
    families = sorted({c["model"] for c in CONFIGS})
    assert [families[int(v)] for v in X[:, 0]] == [c["model"] for c in CONFIGS]


def test_meta_model_learns_which_configuration_wins_where(toy_kb: KnowledgeBase) -> None:
    model = meta_model(toy_kb, "classification")
    assert model is not None
    assert meta_model(toy_kb, "classification") is model  # fitted once per knowledge base
    a_like = model.scenarios(make_task("new-a", (0.21, 0.2, 0.9)))
    b_like = model.scenarios(make_task("new-b", (0.8, 0.7, 0.21)))
    assert a_like.shape == (N_TREES, len(CONFIGS))
    assert int(np.argmax(a_like.mean(0))) == A_BEST
    assert int(np.argmax(b_like.mean(0))) == B_BEST


def test_no_meta_model_for_a_tiny_category(toy_kb: KnowledgeBase) -> None:
    small = toy_kb.without(task_ids=[f"toy/{n}" for n in ("a1", "a2", "b1", "b2")])
    assert meta_model(small, "classification") is None
    rec = recommend(make_task("new", (0.2, 0.21, 0.9)), k=2, knowledge=small)
    assert rec.configs()[0] == CONFIGS[A_BEST]  # neighbours' runs only
    assert "meta-model" not in rec.message


def test_recommendation_says_it_used_the_meta_model(toy_kb: KnowledgeBase) -> None:
    rec = recommend(make_task("new", (0.2, 0.21, 0.9)), k=3, knowledge=toy_kb)
    assert "meta-model of 6 classification tasks" in rec.message
    assert rec.extra["seed_rule"].endswith("meta-model@0.9")
    assert rec.seeds[0].predicted is not None and rec.seeds[0].predicted > 0.5
    assert "meta-model" in rec.explain() and rec.to_dict()["seeds"][0]["predicted"] > 0.5
    plain = recommend(make_task("new", (0.2, 0.21, 0.9)), k=3, knowledge=toy_kb,
                      use_meta_model=False)
    assert "meta-model" not in plain.message and plain.configs()[0] == CONFIGS[A_BEST]
    assert plain.seeds[0].predicted is None


def test_neighbour_share_one_skips_the_meta_model(toy_kb: KnowledgeBase) -> None:
    toy_kb.calibration = {**toy_kb.calibration, "neighbour_share": 1.0, "level": 0.95}
    rec = recommend(make_task("new", (0.2, 0.21, 0.9)), k=3, knowledge=toy_kb)
    assert "meta-model" not in rec.message and rec.extra["seed_rule"] == "cover@0.95"
    assert "_meta_models" not in toy_kb.__dict__  # not even fitted
    assert rec.configs()[0] == CONFIGS[A_BEST]
