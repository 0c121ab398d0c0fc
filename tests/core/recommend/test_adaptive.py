"""Adaptive seeding: seeds chosen after the new task's scores on the previous ones."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
import optuna
import pytest

from cmf_core.errors import CmfError
from cmf_core.recommend.adaptive import (
    AdaptiveSeeder,
    next_column,
    posterior_weights,
    score_loglik,
)
from cmf_core.recommend.knowledge import KnowledgeBase, shipped
from cmf_core.recommend.recommender import (
    Recommendation,
    Scenarios,
    greedy_portfolio,
    recommend,
)
from cmf_core.recommend.space import config_key, grid_neighbours, suggest_config
from cmf_core.recommend.task import TaskDescription

TARGET = "friedman1"


@pytest.fixture(scope="module")
def kb() -> KnowledgeBase:
    return shipped()


@pytest.fixture(scope="module")
def case(kb: KnowledgeBase) -> tuple[Recommendation, dict[str, float], str]:
    """The recommendation for a task of the shipped knowledge base with its group left out,
    and the task's real scores (config key -> score)."""
    task = next(t for t in kb.tasks.values() if t.name == TARGET)
    rest = kb.without(task_ids=[task.id], groups=[task.group] if task.group else [])
    rec = recommend(task, k=5, knowledge=rest)
    scores = {k: r.score for k, r in kb.run_lookup(task.id).items()}
    return rec, scores, task.category.value


def test_order_likelihood_favours_scenarios_that_explain_the_scores() -> None:
    U = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5]])
    prior = np.array([0.5, 0.5])
    assert posterior_weights(U, prior, [0], [0.7], beta=10).tolist() == [0.5, 0.5]  # no pair
    w = posterior_weights(U, prior, [0, 1], [0.6, 0.9], beta=10)  # column 1 scored better
    assert w[1] > 0.99 and w.sum() == pytest.approx(1.0)
    assert posterior_weights(U, prior, [0, 1], [0.6, 0.9], beta=0).tolist() == [0.5, 0.5]
    # a scenario that never ran a configuration is neutral on its pairs (factor 1/2)
    w = posterior_weights(np.array([[np.nan, 1.0], [1.0, 0.0]]), prior, [0, 1], [0.9, 0.6], 10)
    agree = 1 / (1 + math.exp(-10))
    assert w[0] == pytest.approx(0.5 / (0.5 + agree))


def test_score_likelihood_favours_the_past_task_that_scored_alike() -> None:
    U = np.zeros((3, 2))
    prior = np.array([0.5, 0.3, 0.2])
    recorded = np.array([[0.90, 0.6], [0.70, 0.8], [np.nan, np.nan]])  # row 2: a tree
    w = posterior_weights(U, prior, [0], [0.88], beta=0.0, recorded=recorded, sigma=0.03)
    assert w[1] < 1e-3 and w[0] > w[2] and w.sum() == pytest.approx(1.0)
    # sigma 0: the scores are not compared; without recorded scores neither
    assert posterior_weights(U, prior, [0], [0.88], 0.0, recorded, 0.0).tolist() == \
        pytest.approx(prior.tolist())
    assert posterior_weights(U, prior, [0], [0.88], 0.0, None, 0.1).tolist() == \
        pytest.approx(prior.tolist())
    # a scenario with no comparable score gets the prior-weighted mean likelihood of the others
    ll = score_loglik(recorded, prior, [0], [0.88], 0.1)
    lik = np.exp(-0.5 * ((recorded[:2, 0] - 0.88) / 0.1) ** 2)
    assert math.exp(ll[2]) == pytest.approx(float((prior[:2] * lik).sum() / prior[:2].sum()))
    assert ll[0] == pytest.approx(math.log(lik[0]))
    # no finite observation: no information
    assert score_loglik(recorded, prior, [0], [math.nan], 0.1).tolist() == [0.0, 0.0, 0.0]


def test_a_zero_weight_scenario_that_fits_far_better_leaves_the_weights_finite() -> None:
    # a neighbour with weight 0 (the calibrated neighbour share gives the trees all of it)
    # matches the scores; the weighted ones miss by far more than exp() can span
    U = np.zeros((3, 3))
    prior = np.array([0.0, 0.5, 0.5])
    recorded = np.array([[0.25, 0.18, -0.06], [0.95, 0.95, 0.95], [0.97, 0.96, 0.99]])
    w = posterior_weights(U, prior, [0, 1, 2], [0.25, 0.18, -0.06], beta=0.0,
                          recorded=recorded, sigma=0.01)
    assert np.isfinite(w).all() and w[0] == 0.0 and w.sum() == pytest.approx(1.0)
    assert w[1] > w[2]  # the nearer of the two weighted scenarios
    # the same through the order likelihood: a zero-weight scenario ranks ten configurations
    # as the scores do, the weighted ones the other way round, sharply (beta 30: 45 pairs)
    ranks = np.linspace(1.0, -1.0, 10)
    U = np.vstack([ranks, -ranks, -ranks])
    w = posterior_weights(U, prior, list(range(10)), list(ranks), beta=30.0)
    assert np.isfinite(w).all() and w[0] == 0.0 and w[1:].tolist() == [0.5, 0.5]


def test_one_score_moves_the_second_seed_when_scores_are_comparable() -> None:
    # column 0 is everyone's first seed; task A's other winner is column 1, task B's column 2;
    # A scored 0.9 on column 0, B 0.7
    U = np.array([[1.0, 0.97, 0.0], [1.0, 0.0, 0.99]])
    recorded = np.array([[0.9, 0.88, 0.5], [0.7, 0.4, 0.69]])
    configs = ({"model": "a"}, {"model": "b"}, {"model": "c"})
    scen = Scenarios(U, np.array([0.5, 0.5]), np.full(2, 1.01), configs, prefix=(0,),
                     scores=recorded)  # level above 1: no scenario is hit, the soft rule decides
    for y, expected in ((0.91, "b"), (0.71, "c")):
        seeder = AdaptiveSeeder(scen, 2, beta=0.0, sigma=0.05)
        first = seeder.next_config({})
        assert first == {"model": "a"}
        assert seeder.next_config({config_key(first): y}) == {"model": expected}
    static = [AdaptiveSeeder(scen, 2, beta=0.0, sigma=0.0) for _ in range(2)]
    got = []
    for seeder, y in zip(static, (0.91, 0.71), strict=True):
        first = seeder.next_config({})
        got.append(seeder.next_config({config_key(first): y}))
    assert got[0] == got[1]  # without comparing scores, one score changes nothing


def test_scenarios_hold_the_scores_of_past_tasks_with_the_same_metric(
        kb: KnowledgeBase) -> None:
    task = next(t for t in kb.tasks.values() if t.name == "clf-easy")
    rest = kb.without(task_ids=[task.id], groups=[task.group] if task.group else [])
    rec = recommend(task, k=3, knowledge=rest)
    scen = rec.scenarios
    assert scen is not None and scen.scores is not None
    table = rest.table(task.category.value)
    # rows: the neighbours' runs in order (or every task for a portfolio), then meta-model trees
    ids = [n.task_id for n in rec.neighbours] or table.task_ids
    same = [rest.tasks[t].metric == task.metric for t in ids]
    assert any(same) and not all(same)  # the category mixes roc_auc and balanced_accuracy
    for i, t in enumerate(ids):
        expected = table.scores[table.row(t)] if same[i] else np.full(len(table.configs), np.nan)
        assert np.array_equal(scen.scores[i], expected, equal_nan=True)
    assert np.isnan(scen.scores[len(ids):]).all()
    # a description without a metric compares nothing
    anonymous = TaskDescription.from_dict({**task.to_dict(), "metric": None})
    assert recommend(anonymous, k=3, knowledge=rest).scenarios.scores is None  # type: ignore


def test_next_column_continues_the_static_cover_and_skips_tried() -> None:
    U = np.array([[0.97, 0.0, 0.9, 0.0], [0.0, 0.96, 0.9, 0.0], [0.0, 0.0, 0.2, 0.99]])
    w = np.array([0.5, 0.3, 0.2])
    levels = np.full(3, 0.95)
    static = greedy_portfolio(U, w, 4, level=0.95)
    tried: list[int] = []
    for _ in range(4):
        col = next_column(U, w, levels, tried)
        assert col is not None and col not in tried
        tried.append(col)
    assert tried == static
    assert next_column(U, w, levels, tried) is None


def test_beta_zero_gives_the_static_seeds(case: tuple[Recommendation, dict[str, float], str]
                                          ) -> None:
    rec, scores, _ = case
    seeder = rec.seeder(beta=0.0, sigma=0.0, refine_after=0)
    obs: dict[str, float | None] = {}
    got = []
    while (cfg := seeder.next_config(obs)) is not None:
        got.append(cfg)
        obs[config_key(cfg)] = scores[config_key(cfg)]
    assert got == rec.configs()


def test_first_seed_is_static_and_evidence_changes_the_next(
        case: tuple[Recommendation, dict[str, float], str]) -> None:
    rec, _, _ = case
    first = rec.seeder().next_config({})
    assert first == rec.configs()[0]
    k1 = config_key(first)
    # without comparing scores with past tasks (sigma 0), one score alone says nothing (only
    # the order counts): the second seed is the static one
    s = rec.seeder(sigma=0.0)
    s.next_config({})
    assert s.next_config({k1: 0.5}) == rec.configs()[1]
    # with a second observed configuration (a baseline the user ran), the first seed losing
    # or winning against it changes which scenarios are believed, and the next seed with them
    changed = []
    for cfg in rec.scenarios.configs:  # type: ignore[union-attr]
        base = config_key(cfg)
        if base == k1:
            continue
        nxt = {}
        for first_score in (0.1, 0.9):  # the baseline scored 0.5
            s = rec.seeder(beta=30.0, sigma=0.0)
            s.next_config({base: 0.5})
            nxt[first_score] = s.next_config({base: 0.5, k1: first_score})
        if nxt[0.1] != nxt[0.9]:
            changed.append(base)
    assert changed, "no baseline's outcome changed the second seed"


def test_never_repeats_and_stops_after_k(case: tuple[Recommendation, dict[str, float], str]
                                        ) -> None:
    rec, scores, _ = case
    seeder = rec.seeder(k=7)
    obs: dict[str, float | None] = {}
    keys = []
    for _ in range(10):
        cfg = seeder.next_config(obs)
        if cfg is None:
            break
        keys.append(config_key(cfg))
        obs[keys[-1]] = scores[keys[-1]]
    assert len(keys) == 7 and len(set(keys)) == 7 and seeder.done
    assert seeder.next_config(obs) is None
    # a seed given but not yet observed (still running) is not given again
    s = rec.seeder(k=3)
    a, b = s.next_config({}), s.next_config({})
    assert a is not None and b is not None and a != b


def _study(direction: str, category: str, scores: dict[str, float], seeder: AdaptiveSeeder,
           n_trials: int, fail_first: str | None = None) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(direction=direction,
                                sampler=optuna.samplers.TPESampler(seed=0))
    worst = min(scores.values())
    sign = 1.0 if direction == "maximize" else -1.0

    def objective(trial: optuna.Trial) -> float:
        cfg = suggest_config(trial, category)
        if fail_first and trial.number == 0:
            if fail_first == "fail":
                raise RuntimeError("the first configuration failed to fit")
            raise optuna.TrialPruned()
        return sign * scores.get(config_key(cfg), worst)

    seeder.enqueue_first(study)
    study.optimize(objective, n_trials=n_trials, callbacks=[seeder.optuna_callback()],
                   catch=(RuntimeError,))
    return study


def _configs(study: optuna.Study) -> list[dict[str, Any]]:
    from cmf_core.recommend.space import from_optuna_params

    return [from_optuna_params(t.params) for t in study.trials]


def test_optuna_seeds_come_first_and_direction_is_respected(
        case: tuple[Recommendation, dict[str, float], str]) -> None:
    rec, scores, category = case
    runs = {}
    for direction in ("maximize", "minimize"):
        seeder = rec.seeder(k=5, beta=30.0)
        study = _study(direction, category, scores, seeder, n_trials=8)
        trials = _configs(study)
        assert trials[:5] == seeder.given  # the seeds are the first trials, in order
        assert len({config_key(c) for c in seeder.given}) == 5
        runs[direction] = seeder.given
    # minimising -score is the same search as maximising score: the same adaptive seeds
    assert runs["maximize"] == runs["minimize"]
    # and they adapted: scores reversed (a loss treated as a score) give other seeds
    flipped = {k: -v for k, v in scores.items()}
    seeder = rec.seeder(k=5, beta=30.0)
    _study("maximize", category, flipped, seeder, n_trials=6)
    assert seeder.given[0] == runs["maximize"][0] and seeder.given != runs["maximize"]


@pytest.mark.parametrize("how", ["fail", "prune"])
def test_failed_or_pruned_seed_counts_as_tried(
        case: tuple[Recommendation, dict[str, float], str], how: str) -> None:
    rec, scores, category = case
    seeder = rec.seeder(k=4)
    study = _study("maximize", category, scores, seeder, n_trials=6, fail_first=how)
    state = optuna.trial.TrialState.FAIL if how == "fail" else optuna.trial.TrialState.PRUNED
    assert study.trials[0].state is state
    assert _configs(study)[:4] == seeder.given
    assert len({config_key(c) for c in seeder.given}) == 4


@pytest.mark.parametrize(("observations", "match"), [
    ([("a", 1.0)], "must map config_key"),
    ({1: 0.5}, "observation key 1 must be config_key"),
    ({"k": "high"}, "score 'high' for k must be a number"),
    ({"k": True}, "score True for k must be a number"),
    ({"k": math.inf}, "score inf for k is infinite"),
])
def test_garbage_observations_raise_a_clear_error(
        case: tuple[Recommendation, dict[str, float], str], observations: Any,
        match: str) -> None:
    rec, _, _ = case
    seeder = rec.seeder()
    with pytest.raises(CmfError, match=match):
        seeder.next_config(observations)
    with pytest.raises(CmfError, match="beta=-1"):
        rec.seeder(beta=-1.0)
    with pytest.raises(CmfError, match=r"sigma=-0\.1"):
        rec.seeder(sigma=-0.1)


def test_no_seeds_gives_a_seeder_that_gives_none(kb: KnowledgeBase) -> None:
    rec = recommend({"name": "x", "category": "classification"}, knowledge=KnowledgeBase())
    assert rec.seeds == () and rec.seeder().next_config({}) is None


# the seeder as JSON (recommend-seed steps hand it to a search task in another process) -------
def test_json_state_gives_the_same_seeds_in_another_process(
        case: tuple[Recommendation, dict[str, float], str]) -> None:
    import json

    rec, scores, category = case
    body = json.loads(json.dumps(rec.to_dict(seeder=True), allow_nan=False))  # strict JSON
    assert "seeder" not in rec.to_dict()  # the CLI's --json stays small
    # the real scores, and the same scores reversed: the seeds adapt, and do so alike
    for table in (scores, {k: -v for k, v in scores.items()}):
        here, there = rec.seeder(), AdaptiveSeeder.from_dict(body)
        assert there.k == here.k == 5 and there.sigma == here.sigma
        observations: dict[str, float] = {}
        while (config := here.next_config(observations)) is not None:
            assert there.next_config(observations) == config
            observations[config_key(config)] = table[config_key(config)]
        assert there.done and here.given == there.given
    # half-way state: the rebuilt seeder remembers what it gave and goes on
    seeder = rec.seeder()
    observations = {}
    for _ in range(2):
        config = seeder.next_config(observations)
        observations[config_key(config)] = scores[config_key(config)]
    resumed = AdaptiveSeeder.from_dict(json.loads(json.dumps(seeder.to_dict())))
    assert resumed.given == seeder.given
    assert resumed.next_config(observations) == seeder.next_config(observations)
    # with Optuna, as a search task uses it: the same first trials as the in-process seeder
    rebuilt, local = AdaptiveSeeder.from_dict(body), rec.seeder()
    study = _study("maximize", category, scores, rebuilt, n_trials=7)
    _study("maximize", category, scores, local, n_trials=7)
    assert _configs(study)[:5] == rebuilt.given == local.given


def test_a_knob_that_is_not_a_number_is_named(
        case: tuple[Recommendation, dict[str, float], str]) -> None:
    for knob in ("beta", "covered_weight", "sigma"):
        with pytest.raises(CmfError, match=f"{knob}='x' must be a number"):
            case[0].seeder(**{knob: "x"})


def test_a_step_without_seeds_gives_a_seeder_that_gives_none(kb: KnowledgeBase) -> None:
    rec = recommend({"name": "x", "category": "astrology"}, strict=False)
    body = rec.to_dict(seeder=True)
    assert body["seeder"] is None
    seeder = AdaptiveSeeder.from_dict(body)
    assert seeder.done and seeder.next_config({}) is None


@pytest.mark.parametrize(("edit", "match"), [
    (lambda d: "not a dict", "must be a dict"),
    (lambda d: {**d, "format": "v0"}, "format is 'v0'"),
    (lambda d: {**d, "format": "cmf-adaptive-seeder/2"},
     "format 'cmf-adaptive-seeder/2' is from another cmf-foundation version"),
    (lambda d: {k: v for k, v in d.items() if k != "normalised"}, "lacks normalised"),
    (lambda d: {**d, "normalised": [r[:-1] for r in d["normalised"]]},
     "normalised must be a non-empty list of rows of"),
    (lambda d: {**d, "normalised": [["x"] * len(r) for r in d["normalised"]]},
     "normalised holds a non-number"),
    (lambda d: {**d, "weights": d["weights"][:-1]}, "weights must be a list of"),
    (lambda d: {**d, "weights": [0.0] * len(d["weights"])}, "weights must be finite and > 0"),
    (lambda d: {**d, "prefix": [10_000]}, "prefix=10000 is not a column"),
    (lambda d: {**{k: v for k, v in d.items() if k != "prefix"}, "first": 10_000},
     "first=10000 is not a column"),
    (lambda d: {**d, "k": -1}, "k=-1 must be a whole number"),
    (lambda d: {**d, "given": [{"model": "nope"}]}, "given seed .* is not one of"),
    (lambda d: {**d, "given": ["hgb"]}, "given seed 'hgb' is not one of"),
    (lambda d: {**d, "sigma": "wide"}, "sigma='wide' is not a number"),
    (lambda d: {**d, "beta": -2.0}, "beta=-2.0 must be a finite number"),
])
def test_a_broken_state_raises_a_clear_error(
        case: tuple[Recommendation, dict[str, float], str], edit: Any, match: str) -> None:
    state = case[0].seeder().to_dict()
    with pytest.raises(CmfError, match=match):
        AdaptiveSeeder.from_dict(edit(state))


def test_each_adaptive_seed_says_why_and_the_reasons_travel_with_the_state() -> None:
    # two past tasks, A and B, and two meta-model trees; column 0 hits A, column 1 hits B,
    # column 2 hits both trees. A scored 0.9 on column 2, B 0.5: a 0.9 there points to A.
    U = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    recorded = np.array([[0.95, 0.3, 0.9], [0.3, 0.95, 0.5], [np.nan] * 3, [np.nan] * 3])
    configs = ({"model": "a"}, {"model": "b"}, {"model": "c"})
    scen = Scenarios(U, np.array([0.2, 0.2, 0.3, 0.3]), np.full(4, 0.95), configs,
                     scores=recorded, names=("A", "B", "meta-model tree 1",
                                             "meta-model tree 2"))
    seeder = AdaptiveSeeder(scen, 3, beta=0.0, sigma=0.05)
    first = seeder.next_config({})
    assert first == {"model": "c"}  # the trees' 60% beats A's or B's 20%
    assert seeder.reasons[0] == ("before any score: a hit on 60% of the scenario weight not "
                                 "yet ruled out; the weight not yet ruled out is on meta-model "
                                 "trees 60% (90% of it on 2 of 2), A 20%, B 20%")
    second = seeder.next_config({config_key(first): 0.9})
    assert second == {"model": "a"}
    # the trees are ruled out (c was tried and missed the level); A explains the 0.9
    assert seeder.reasons[1].startswith("after 1 score: a hit on ")
    assert seeder.reasons[1].endswith("the weight not yet ruled out is on A 100%")
    text = seeder.explain()
    assert text.splitlines() == [f"1. c(): {seeder.reasons[0]}", f"2. a(): {seeder.reasons[1]}"]
    again = AdaptiveSeeder.from_dict(seeder.to_dict())
    assert again.reasons == seeder.reasons and again.scenarios.names == scen.names
    assert again.next_config({config_key(first): 0.9, config_key(second): 0.2}) == \
        seeder.next_config({config_key(first): 0.9, config_key(second): 0.2})
    assert again.reasons == seeder.reasons
    bad = seeder.to_dict()
    bad["names"] = ["A"]
    with pytest.raises(CmfError, match="names must be a list of 4 strings"):
        AdaptiveSeeder.from_dict(bad)
    bad = seeder.to_dict()
    bad["reasons"] = ["x"]
    with pytest.raises(CmfError, match="reasons must be a list of 3 strings"):
        AdaptiveSeeder.from_dict(bad)


def test_grid_neighbours_are_one_step_on_one_parameter() -> None:
    configs = [{"model": "svm", "C": c, "gamma": g} for c in (1.0, 10.0, 100.0)
               for g in (0.01, 0.1)] + [{"model": "lr", "C": 1.0, "w": "none"},
                                        {"model": "lr", "C": 1.0, "w": "balanced"}]
    adj = grid_neighbours(configs)
    label = [config_key(c) for c in configs]

    def of(i: int) -> set[str]:
        return {label[j] for j in adj[i]}

    # svm(C=10, gamma=0.01): C one step down and up, gamma one step up; never another family
    assert of(2) == {label[0], label[4], label[3]}
    assert of(0) == {label[2], label[1]}  # an edge of the grid has fewer neighbours
    assert of(6) == {label[7]} and of(7) == {label[6]}  # categorical: any other value
    # a configuration missing from the set is skipped, not jumped over
    assert grid_neighbours([configs[0], configs[4]]) == ((1,), (0,))
    # values a store may hold (lists, dicts, None among numbers) are categorical choices
    odd = [{"model": "mlp", "layers": [64, 64], "drop": None},
           {"model": "mlp", "layers": [32], "drop": None},
           {"model": "mlp", "layers": [32], "drop": 0.1},
           {"model": "mlp", "layers": {"n": 2}, "drop": 0.1}]
    assert grid_neighbours(odd) == ((1,), (0, 2), (3, 1), (2,))


def _local_case() -> tuple[Scenarios, dict[str, float]]:
    """Past tasks A, B, C hit svm(C=1, gamma=0.1), svm(C=100, gamma=1) and svm(C=1, gamma=1);
    the new task's needle sits one C step from A's, at svm(C=10, gamma=0.1), which no
    scenario hits."""
    configs = tuple({"model": "svm", "C": c, "gamma": g} for c in (1.0, 10.0, 100.0)
                    for g in (0.01, 0.1, 1.0))
    U = np.array([[0.2, 1.0, 0.1, 0.3, 0.6, 0.2, 0.1, 0.0, 0.0],
                  [0.0, 0.1, 0.0, 0.0, 0.2, 0.1, 0.0, 0.0, 1.0],
                  [0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    scen = Scenarios(U, np.array([0.6, 0.4, 0.3]), np.full(3, 0.95), configs)
    new = dict(zip((config_key(c) for c in configs),
                   (0.60, 0.80, 0.55, 0.62, 0.95, 0.70, 0.50, 0.40, 0.45), strict=True))
    return scen, new


def _run(seeder: AdaptiveSeeder, scores: dict[str, float]) -> list[dict[str, Any]]:
    obs: dict[str, float | None] = {}
    while (config := seeder.next_config(obs)) is not None:
        obs[config_key(config)] = scores[config_key(config)]
    return seeder.given


def test_local_steps_refine_around_the_best_configuration_so_far() -> None:
    scen, scores = _local_case()
    best = {"model": "svm", "C": 10.0, "gamma": 0.1}
    cover = _run(AdaptiveSeeder(scen, 3, beta=0.0, sigma=0.0, refine_after=0), scores)
    assert cover[2] == dict(scen.configs[2])  # the set cover aims at C's hit next
    local = AdaptiveSeeder(scen, 3, beta=0.0, sigma=0.0, refine_after=2)
    got = _run(local, scores)
    assert got[:2] == cover[:2]  # the first refine_after seeds are the scenarios' choices
    assert got[2] == best  # one C step from svm(C=1, gamma=0.1), the best so far (0.80)
    assert local.reasons[2].startswith("after 2 scores: a local step, one grid step from the "
                                       "best so far, svm(C=1.0, gamma=0.1) (score 0.8)")
    # the state keeps the knob; a state written before it has no local steps
    state = local.to_dict()
    assert state["refine_after"] == 2
    assert _run(AdaptiveSeeder.from_dict({**state, "given": [], "reasons": []}), scores) == got
    old = {k: v for k, v in state.items() if k != "refine_after"}
    assert _run(AdaptiveSeeder.from_dict({**old, "given": [], "reasons": []}), scores) == cover


def test_local_steps_wait_for_the_same_tasks_best_runs_and_a_score() -> None:
    scen, scores = _local_case()
    prefixed = replace(scen, prefix=(8, 7))  # "the same task" ran before: its runs go first
    got = _run(AdaptiveSeeder(prefixed, 3, beta=0.0, sigma=0.0, refine_after=1), scores)
    assert got[:2] == [dict(scen.configs[8]), dict(scen.configs[7])]
    assert got[2] == dict(scen.configs[5])  # then one step from the better of the two (0.45)
    # nothing scored yet (failed runs): no local step, the scenarios decide
    seeder = AdaptiveSeeder(scen, 2, beta=0.0, sigma=0.0, refine_after=1)
    first = seeder.next_config({})
    assert seeder.next_config({config_key(first): None}) is not None
    assert "local step" not in seeder.reasons[1]


def test_a_seeder_over_configurations_with_list_values_takes_local_steps() -> None:
    configs = ({"model": "mlp", "layers": [64]}, {"model": "mlp", "layers": [64, 64]},
               {"model": "mlp", "layers": [128]})
    scen = Scenarios(np.array([[1.0, 0.0, 0.5]]), np.ones(1), np.full(1, 0.95), configs)
    seeder = AdaptiveSeeder(scen, 3, beta=0.0, sigma=0.0, refine_after=1)  # raised TypeError
    got = _run(seeder, {config_key(c): s for c, s in zip(configs, (0.5, 0.7, 0.9),
                                                              strict=True)})
    assert got[0] == configs[0] and "local step" in seeder.reasons[1]
    assert sorted(map(config_key, got)) == sorted(map(config_key, configs))


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3"])
def test_refine_after_must_be_a_whole_number(bad: Any) -> None:
    scen, _ = _local_case()
    with pytest.raises(CmfError, match=r"refine_after=.* must be a whole number >= 0"):
        AdaptiveSeeder(scen, 3, refine_after=bad)
    state = AdaptiveSeeder(scen, 3).to_dict()
    with pytest.raises(CmfError, match=r"refine_after=.* is not a whole number >= 0"):
        AdaptiveSeeder.from_dict({**state, "refine_after": bad})


def test_refine_after_may_be_a_numpy_integer() -> None:
    """A number computed with NumPy is a whole number (k already took one; refine_after
    refused it)."""
    scen, _ = _local_case()
    assert AdaptiveSeeder(scen, np.int64(3), refine_after=np.int64(2)).refine_after == 2
