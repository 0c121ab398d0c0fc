"""A meta-model of the knowledge base: how well each configuration does on a task, predicted
from the task's meta-features.

Why: the similarity of meta-features alone predicts weakly whether one task's best
configuration is good on another (over the shipped knowledge base, Spearman 0.16 between
similarity and that transfer), because a single distance weighs every meta-feature alike for
every configuration. A model over (meta-features, configuration) pairs learns which
meta-features matter for which configurations (e.g. the linear landmark for linear models).

The model is an extremely randomised forest (scikit-learn's ``ExtraTreesRegressor``) fitted to
the normalised scores of every task of a category (1 = the task's best run, 0 = its median run).
Each tree's prediction for the new task is one *scenario* of what the task may be like; the
recommender chooses seeds that hit (normalised score >= the hit level) as many scenarios as
possible, in the order that makes the first hit come early (see
:func:`cmf_core.recommend.recommender.greedy_portfolio`).

Fitted lazily, once per knowledge base and category (cached on the knowledge base object); the
fit happens inside :func:`~cmf_core.recommend.recommend` and so counts in its ``elapsed_s``.
Needs scikit-learn (the ``recommend`` extra); without it the recommender uses the neighbours'
runs only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from cmf_core.recommend.knowledge import KnowledgeBase, ScoreTable
from cmf_core.recommend.task import META_FEATURES, TaskDescription

FEATURES = [m.name for m in META_FEATURES]
N_TREES = 64
MISSING = -1.0  # meta-features are in [0, 1]; a task lacking one gets this value
MIN_TASKS = 4  # fewer tasks of a category: no model


def encode_configs(configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """Configurations as numbers: the family's index, then one column per (family, parameter)
    seen, log of positive numeric values, index of categorical ones, :data:`MISSING` where a
    configuration lacks the parameter."""
    families = sorted({str(c.get("model")) for c in configs})
    columns = sorted({(str(c.get("model")), k) for c in configs for k in c if k != "model"})
    levels: dict[tuple[str, str], list[Any]] = {}
    X = np.full((len(configs), 1 + len(columns)), MISSING)
    for i, c in enumerate(configs):
        fam = str(c.get("model"))
        X[i, 0] = families.index(fam)
        for j, (f, p) in enumerate(columns):
            if f != fam or p not in c:
                continue
            v = c[p]
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                X[i, 1 + j] = math.log(v) if v > 0 else float(v)
            else:
                seen = levels.setdefault((f, p), [])
                if v not in seen:
                    seen.append(v)
                X[i, 1 + j] = seen.index(v)
    return X


def task_vector(task: TaskDescription) -> np.ndarray:
    return np.array([float(task.meta_features.get(f, MISSING)) for f in FEATURES])


class MetaModel:
    """Per-tree predictions of normalised scores for one category's configurations."""

    def __init__(self, table: ScoreTable, tasks: Sequence[TaskDescription],
                 n_trees: int = N_TREES, seed: int = 0,
                 rows_used: Sequence[int] | None = None) -> None:
        """Fit on ``table``'s rows (``tasks`` in row order), or only on ``rows_used``."""
        from sklearn.ensemble import ExtraTreesRegressor

        self.table = table
        self.C = encode_configs(table.configs)
        F = np.array([task_vector(t) for t in tasks])
        self.used = (F != MISSING).any(axis=0)
        rows, y = [], []
        U = np.clip(table.normalised, -1.0, 1.0)
        for i in (range(len(tasks)) if rows_used is None else rows_used):
            ok = np.isfinite(U[i])
            rows.append(np.hstack([np.tile(F[i, self.used], (int(ok.sum()), 1)), self.C[ok]]))
            y.append(U[i, ok])
        self.model = ExtraTreesRegressor(n_estimators=n_trees, min_samples_leaf=3,
                                         max_features=0.5, random_state=seed, n_jobs=1)
        self.model.fit(np.vstack(rows), np.concatenate(y))

    def scenarios(self, task: TaskDescription) -> np.ndarray:
        """Trees x configurations: each tree's predicted normalised score on ``task``."""
        X = np.hstack([np.tile(task_vector(task)[self.used], (len(self.C), 1)), self.C])
        return np.array([t.predict(X) for t in self.model.estimators_])


def sklearn_missing() -> bool:
    """True when scikit-learn (the ``recommend`` extra), which the meta-model needs, is not
    installed."""
    try:
        import sklearn.ensemble  # noqa: F401
    except ImportError:
        return True
    return False


def meta_model(kb: KnowledgeBase, category: str) -> MetaModel | None:
    """The knowledge base's meta-model for ``category`` (fitted on first use, then cached on
    ``kb``); None without scikit-learn or with fewer than :data:`MIN_TASKS` tasks."""
    cache: dict[str, MetaModel | None] = kb.__dict__.setdefault("_meta_models", {})
    if category in cache:
        return cache[category]
    table = kb.table(category)
    model = None
    if len(table.task_ids) >= MIN_TASKS:
        try:
            model = MetaModel(table, [kb.tasks[t] for t in table.task_ids])
        except ImportError:
            model = None
    cache[category] = model
    return model
