"""Seeded versus cold model search with Optuna, shared by the AIOps and Telco scenarios.

Both searches use the recommender's search space (:func:`cmf_core.recommend.suggest_config`) and
the same TPE sampler seed and budget; the seeded one starts with the recommender's adaptive seeds
(:meth:`Recommendation.seeder`: the first recommended configuration, then each next one chosen
after the scores of the previous ones; the method the recommender benchmark measures best).
Scores of a configuration are cached (they are deterministic).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

Objective = Callable[[Mapping[str, Any]], float]


@dataclass
class SearchResult:
    """Scores per trial, in order, and the best configuration found."""

    name: str
    scores: list[float] = field(default_factory=list)
    configs: list[dict[str, Any]] = field(default_factory=list)
    best_config: dict[str, Any] = field(default_factory=dict)
    seeds: list[dict[str, Any]] = field(default_factory=list)  # the seeds it was given
    seed_reasons: list[str] = field(default_factory=list)  # why each (AdaptiveSeeder.reasons)

    @property
    def best(self) -> float:
        return max(self.scores) if self.scores else float("nan")

    def best_after(self, n: int) -> float:
        return max(self.scores[:n]) if self.scores[:n] else float("nan")


def cached(objective: Objective) -> Objective:
    from cmf_core.recommend.space import config_key

    memo: dict[str, float] = {}

    def run(config: Mapping[str, Any]) -> float:
        key = config_key(config)
        if key not in memo:
            memo[key] = float(objective(config))
        return memo[key]

    return run


def search(objective: Objective, category: str, n_trials: int, *, seeds: Any = None,
           sampler_seed: int = 0, name: str = "search") -> SearchResult:
    """An Optuna TPE search of ``n_trials``; ``seeds`` (a Recommendation) gives its first
    trials through its adaptive seeder. The configurations kept are those the objective saw
    (numeric values snapped to the grid)."""
    import optuna

    from cmf_core.recommend import suggest_config

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=sampler_seed))
    seeder = seeds.seeder() if seeds is not None else None
    callbacks = []
    if seeder is not None:
        seeder.enqueue_first(study)
        callbacks.append(seeder.optuna_callback())
    configs: dict[int, dict[str, Any]] = {}

    def trial_objective(trial: Any) -> float:
        config = suggest_config(trial, category)
        configs[trial.number] = dict(config)
        return objective(config)

    study.optimize(trial_objective, n_trials=n_trials, callbacks=callbacks)
    done = [t for t in study.trials if t.value is not None]
    return SearchResult(name, [float(t.value) for t in done], [configs[t.number] for t in done],
                        configs[study.best_trial.number],
                        list(seeder.given) if seeder is not None else [],
                        list(seeder.reasons) if seeder is not None else [])


def compare(objective: Objective, category: str, rec: Any, n_trials: int,
            repeats: int = 1) -> dict[str, list[SearchResult]]:
    """Seeded and cold searches with the same budget, over ``repeats`` sampler seeds."""
    objective = cached(objective)
    out: dict[str, list[SearchResult]] = {"seeded": [], "cold": []}
    for r in range(repeats):
        out["seeded"].append(search(objective, category, n_trials, seeds=rec, sampler_seed=r,
                                    name="seeded"))
        out["cold"].append(search(objective, category, n_trials, sampler_seed=r, name="cold"))
    return out


def summary(results: dict[str, list[SearchResult]], checkpoints: tuple[int, ...]) -> list[
        tuple[str, list[float]]]:
    """Mean best score after each checkpoint number of trials, per search kind."""
    rows = []
    for kind, runs in results.items():
        rows.append((kind, [sum(r.best_after(n) for r in runs) / len(runs)
                            for n in checkpoints]))
    return rows
