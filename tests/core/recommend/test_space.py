"""The default search space: grids, Optuna round trips, estimators."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

from cmf_core.errors import InvalidInputError
from cmf_core.recommend.space import (
    anomaly_scores,
    build_estimator,
    check_config,
    config_key,
    from_optuna_params,
    grid,
    sample_config,
    suggest_config,
    to_optuna_params,
)


def test_grid_is_finite_unique_and_checked() -> None:
    for category in ("classification", "regression", "anomaly_detection"):
        configs = grid(category)
        keys = {config_key(c) for c in configs}
        assert len(keys) == len(configs) > 50
        for c in configs[:: max(1, len(configs) // 10)]:
            assert check_config(c, category) == c
    with pytest.raises(InvalidInputError, match="no default search space for category 'text'"):
        grid("text")


def test_optuna_names_round_trip() -> None:
    cfg = {"model": "hgb", "learning_rate": 0.1, "max_leaf_nodes": 16, "min_samples_leaf": 5}
    params = to_optuna_params(cfg)
    assert params == {"model": "hgb", "hgb.learning_rate": 0.1, "hgb.max_leaf_nodes": 16,
                      "hgb.min_samples_leaf": 5}
    assert from_optuna_params(params) == cfg


def test_enqueued_configs_are_proposed_exactly() -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    seeds = grid("classification")[::17][:4]
    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=0))
    for cfg in seeds:
        study.enqueue_trial(to_optuna_params(cfg))
    seen = []

    def objective(trial: optuna.Trial) -> float:
        cfg = suggest_config(trial, "classification")
        seen.append(cfg)
        return 0.0

    study.optimize(objective, n_trials=8)
    assert seen[:4] == seeds
    grid_keys = {config_key(c) for c in grid("classification")}
    assert all(config_key(c) in grid_keys for c in seen)  # snapped onto the grid


def test_sample_config_stays_on_grid() -> None:
    rng = np.random.default_rng(0)
    keys = {config_key(c) for c in grid("anomaly_detection")}
    draws = [sample_config(rng, "anomaly_detection") for _ in range(300)]
    assert all(config_key(c) in keys for c in draws)
    assert len({c["model"] for c in draws}) == 3


def test_check_config_names_the_problem() -> None:
    with pytest.raises(InvalidInputError, match="model 'xgb' is not a classification family"):
        check_config({"model": "xgb"}, "classification")
    with pytest.raises(InvalidInputError, match=r"knn\.n_neighbors=4 is not on the grid"):
        check_config({"model": "knn", "n_neighbors": 4, "weights": "uniform"}, "classification")


def test_estimators_fit() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    for cfg in grid("classification")[::23]:
        assert build_estimator(cfg, "classification").fit(X, y).score(X, y) > 0.5
    series = np.sin(np.arange(400) / 4.0)
    series[200] += 5
    cfg = {"model": "lof", "window": 8, "repr": "raw", "n_neighbors": 20}
    scores = anomaly_scores(cfg, series)
    assert scores.shape == series.shape
    assert int(np.argmax(scores)) in range(200, 208)
