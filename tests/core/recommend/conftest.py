"""A small, hand-made knowledge base: two families of tasks whose best configurations differ."""

from __future__ import annotations

import numpy as np
import pytest

from cmf_core.recommend.graph import SimilarityMetric
from cmf_core.recommend.knowledge import KnowledgeBase, Run, run_id
from cmf_core.recommend.space import grid
from cmf_core.recommend.task import TaskDescription

CONFIGS = grid("classification")[:20]
A_BEST, B_BEST = 2, 15


def make_task(name: str, features: tuple[float, float, float], group: str | None = None,
              category: str = "classification", modality: str = "tabular") -> TaskDescription:
    mf = dict(zip(("n_rows", "n_features", "class_balance"), features, strict=True))
    return TaskDescription(name=name, category=category, modality=modality, meta_features=mf,
                           group=group or name, task_id=f"toy/{name}")


def runs_peaking_at(task: TaskDescription, best: int, seed: int) -> list[Run]:
    rng = np.random.default_rng(seed)
    return [Run(c, 0.8 - 0.01 * abs(j - best) + rng.normal(0, 1e-4), run_id(task.id, c), 0.1)
            for j, c in enumerate(CONFIGS)]


@pytest.fixture
def toy_kb() -> KnowledgeBase:
    tasks, runs = [], {}
    for i, f in enumerate([(0.20, 0.20, 0.90), (0.22, 0.18, 0.88), (0.18, 0.22, 0.92)]):
        t = make_task(f"a{i}", f)
        tasks.append(t)
        runs[t.id] = runs_peaking_at(t, A_BEST, i)
    for i, f in enumerate([(0.80, 0.70, 0.20), (0.82, 0.68, 0.22), (0.78, 0.72, 0.18)]):
        t = make_task(f"b{i}", f)
        tasks.append(t)
        runs[t.id] = runs_peaking_at(t, B_BEST, 10 + i)
    metric = SimilarityMetric("uniform", {"n_rows": 1, "n_features": 1, "class_balance": 1})
    return KnowledgeBase(tasks, runs, calibration={"metric": metric.to_dict(), "threshold": 0.9})
