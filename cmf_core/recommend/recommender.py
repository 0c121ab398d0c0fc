"""Recommend seed configurations for a new task from its most similar past tasks.

How (see docs/recommender.md):

1. The knowledge graph holds the knowledge base's tasks; the new task's neighbours are the
   tasks of the same category whose similarity is at least the threshold.
2. Each neighbour's runs are normalised (1 = its best run, 0 = its median run). Seeds are
   chosen greedily: each next configuration is the one that most raises the weighted sum,
   over neighbours, of the best normalised score reached so far, so the ``k`` seeds cover the
   neighbours' different winners instead of repeating one. A neighbour's weight is its
   similarity to the power ``power`` (calibrated with the threshold; 1 when not calibrated).
3. No neighbour: the same greedy choice over every task of the category with equal weights
   (a global portfolio), and the recommendation says so. No task of the category: no seeds
   (the search starts cold), and it says so.

Use the seeds with Optuna (:meth:`Recommendation.enqueue`, configurations proposed exactly by
:func:`cmf_core.recommend.space.suggest_config`) or as plain dicts
(:meth:`Recommendation.configs`) with any other searcher.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cmf_core.errors import CmfError, InvalidInputError
from cmf_core.recommend.graph import DEFAULT_THRESHOLD, KnowledgeGraph, SimilarityMetric
from cmf_core.recommend.knowledge import KnowledgeBase, ScoreTable, from_store, shipped
from cmf_core.recommend.space import SPACES, check_config, config_key, to_optuna_params
from cmf_core.recommend.task import TaskDescription


class Strategy(enum.StrEnum):
    SIMILAR_TASKS = "similar_tasks"
    PORTFOLIO = "portfolio"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class Evidence:
    """A past run behind a seed: the task it ran on, how similar that task is, and how the
    configuration did there (``rank`` 1 = that task's best run)."""

    task_id: str
    task_name: str
    similarity: float
    score: float
    rank: int
    n_runs: int
    run_id: str | None


@dataclass(frozen=True, slots=True)
class Seed:
    """One recommended configuration. ``expected`` is its weighted mean normalised score on
    the neighbours (1 = as good as their best runs, 0 = their median run)."""

    config: Mapping[str, Any]
    expected: float
    evidence: tuple[Evidence, ...]

    @property
    def optuna_params(self) -> dict[str, Any]:
        """Parameters for ``Study.enqueue_trial``: ``family.param`` names for configurations
        of the default space, the recorded names otherwise."""
        return optuna_params(self.config)


@dataclass(frozen=True, slots=True)
class Neighbour:
    task_id: str
    name: str
    similarity: float
    alike: tuple[str, ...]
    differ: tuple[str, ...]


@dataclass(frozen=True)
class Recommendation:
    """Seeds for a task, with what they rest on. ``message`` says in one line how they were
    chosen (or why there are none)."""

    task: TaskDescription
    seeds: tuple[Seed, ...]
    strategy: Strategy
    message: str
    neighbours: tuple[Neighbour, ...] = ()
    threshold: float = DEFAULT_THRESHOLD
    metric: str = "uniform"
    knowledge_tasks: int = 0
    elapsed_s: float = 0.0
    error: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.seeds)

    @property
    def fallback(self) -> bool:
        """True when the seeds do not come from similar tasks (portfolio or none)."""
        return self.strategy is not Strategy.SIMILAR_TASKS

    def configs(self) -> list[dict[str, Any]]:
        """Plain configuration dicts (``{"model": ..., param: value}``), best first."""
        return [dict(s.config) for s in self.seeds]

    def optuna_params(self) -> list[dict[str, Any]]:
        """Parameter dicts for ``optuna.Study.enqueue_trial``, best first."""
        return [s.optuna_params for s in self.seeds]

    def enqueue(self, study: Any) -> int:
        """Enqueue every seed into an Optuna study; returns how many were enqueued."""
        for params in self.optuna_params():
            study.enqueue_trial(params, skip_if_exists=True)
        return len(self.seeds)

    def explain(self) -> str:
        """A human-readable account: strategy, similar tasks, and the runs behind each seed."""
        lines = [self.message]
        if self.neighbours:
            lines.append(f"Similar tasks (similarity >= {self.threshold:.2f}, metric "
                         f"{self.metric}):")
            for n in self.neighbours[:8]:
                lines.append(f"  {n.name}: {n.similarity:.3f} (alike in {', '.join(n.alike)}; "
                             f"differs most in {', '.join(n.differ)})")
            if len(self.neighbours) > 8:
                lines.append(f"  ... and {len(self.neighbours) - 8} more")
        for i, s in enumerate(self.seeds, 1):
            params = ", ".join(f"{k}={v}" for k, v in s.config.items() if k != "model")
            lines.append(f"{i}. {s.config.get('model')}({params}) expected {s.expected:.2f}")
            for e in s.evidence[:3]:
                rid = f", run {e.run_id}" if e.run_id else ""
                lines.append(f"     {e.task_name} (similarity {e.similarity:.2f}): score "
                             f"{e.score:.4g}, rank {e.rank}/{e.n_runs}{rid}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (e.g. for the CLI's ``--json`` or an execution's properties)."""
        return {
            "task": self.task.to_dict(),
            "strategy": self.strategy.value,
            "message": self.message,
            "error": self.error,
            "threshold": self.threshold,
            "metric": self.metric,
            "knowledge_tasks": self.knowledge_tasks,
            "elapsed_s": round(self.elapsed_s, 6),
            "neighbours": [{"task_id": n.task_id, "name": n.name,
                            "similarity": round(n.similarity, 4), "alike": list(n.alike),
                            "differ": list(n.differ)} for n in self.neighbours],
            "seeds": [{"config": dict(s.config), "optuna_params": s.optuna_params,
                       "expected": round(s.expected, 4),
                       "evidence": [{"task_id": e.task_id, "task": e.task_name,
                                     "similarity": round(e.similarity, 4), "score": e.score,
                                     "rank": e.rank, "n_runs": e.n_runs, "run_id": e.run_id}
                                    for e in s.evidence]} for s in self.seeds],
        }


def optuna_params(config: Mapping[str, Any]) -> dict[str, Any]:
    """``family.param`` names for a configuration of the default space, else as recorded."""
    for category in SPACES:
        try:
            check_config(config, category)
        except InvalidInputError:
            continue
        return to_optuna_params(config)
    return dict(config)


# the core choice, on matrices -------------------------------------------------------------------
def greedy_portfolio(normalised: np.ndarray, weights: Sequence[float] | np.ndarray, k: int,
                     floor: float = 0.0) -> list[int]:
    """Columns (configurations) chosen greedily to maximise ``sum_t w_t * max(floor,
    best normalised score of the chosen set on task t)``; ties go to the higher weighted mean.

    ``normalised`` is tasks x configurations with NaN for configurations a task did not run.
    """
    U = np.asarray(normalised, dtype=float)
    w = np.asarray(weights, dtype=float)
    if U.ndim != 2 or U.shape[0] != len(w):
        raise InvalidInputError(f"weights ({len(w)}) must match the table's rows {U.shape}")
    n_configs = U.shape[1]
    if n_configs == 0 or len(w) == 0 or w.sum() <= 0:
        return []
    V = np.where(np.isfinite(U), U, floor)
    mean = (w[:, None] * np.where(np.isfinite(U), U, 0.0)).sum(0) / w.sum()
    current = np.full(len(w), floor)
    chosen: list[int] = []
    for _ in range(min(k, n_configs)):
        gain = (w[:, None] * np.maximum(current[:, None], V)).sum(0) + 1e-6 * mean
        gain[chosen] = -np.inf
        j = int(np.argmax(gain))
        chosen.append(j)
        current = np.maximum(current, V[:, j])
    return chosen


def seed_columns(table: ScoreTable, rows: Sequence[int], weights: Sequence[float],
                 k: int) -> list[int]:
    """Greedy seeds from a subset of a score table's rows."""
    return greedy_portfolio(table.normalised[list(rows)], weights, k)


def knowledge_graph(kb: KnowledgeBase | None = None) -> KnowledgeGraph:
    """The knowledge graph of a knowledge base (default: the shipped one), with its calibrated
    metric and threshold."""
    kb = kb if kb is not None else shipped()
    cal = kb.calibration
    metric = SimilarityMetric.from_dict(cal["metric"]) if cal.get("metric") else None
    return KnowledgeGraph(kb.tasks.values(), metric,
                          float(cal.get("threshold", DEFAULT_THRESHOLD)))


# the API --------------------------------------------------------------------------------------
def recommend(task: TaskDescription | Mapping[str, Any], k: int = 5, store: Any = None, *,
              knowledge: KnowledgeBase | None = None, include_shipped: bool = True,
              threshold: float | None = None, metric: SimilarityMetric | None = None,
              strict: bool = True) -> Recommendation:
    """Top-``k`` seed configurations for ``task``, from the most similar past tasks.

    The knowledge base is ``knowledge`` if given, else the shipped one (unless
    ``include_shipped`` is false), merged with the runs recorded in ``store`` when one is given.
    ``threshold`` and ``metric`` default to the knowledge base's calibration.

    ``strict=False`` is for pipeline steps: instead of raising a :class:`CmfError` (unknown
    category, bad description, unreadable store), it returns a recommendation with no seeds
    whose ``error`` and ``message`` say what went wrong, so the search starts cold.
    """
    started = time.perf_counter()
    try:
        return _recommend(task, k, store, knowledge, include_shipped, threshold, metric,
                          started)
    except CmfError as e:
        if strict:
            raise
        desc = task if isinstance(task, TaskDescription) else None
        placeholder = desc or TaskDescription(name="unknown", category="classification")
        return Recommendation(
            task=placeholder, seeds=(), strategy=Strategy.NONE, error=str(e),
            message=f"no seeds, the search starts cold: {e}",
            elapsed_s=time.perf_counter() - started)


def _recommend(task: TaskDescription | Mapping[str, Any], k: int, store: Any,
               knowledge: KnowledgeBase | None, include_shipped: bool,
               threshold: float | None, metric: SimilarityMetric | None,
               started: float) -> Recommendation:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InvalidInputError(f"k={k!r} must be a whole number >= 1")
    desc = TaskDescription.from_dict(task)
    kb = knowledge if knowledge is not None else (shipped() if include_shipped
                                                   else KnowledgeBase())
    if store is not None:
        kb = from_store(store).merge(kb)
    cal = kb.calibration
    metric = metric or (SimilarityMetric.from_dict(cal["metric"]) if cal.get("metric")
                        else SimilarityMetric())
    if threshold is None:
        threshold = float(cal.get("threshold", DEFAULT_THRESHOLD))
    power = float(cal.get("power", 1.0))
    category = desc.category.value
    same = [t for t in kb.tasks.values() if t.category == desc.category and kb.runs.get(t.id)]
    common = {"task": desc, "threshold": threshold, "metric": metric.name,
              "knowledge_tasks": len(kb)}
    if not same:
        return Recommendation(
            seeds=(), strategy=Strategy.NONE,
            message=f"no seeds: the knowledge base ({len(kb)} tasks) has no {category} task "
                    "with recorded runs; the search starts cold",
            elapsed_s=time.perf_counter() - started, **common)
    # the query's would-be edges in the knowledge graph (KnowledgeGraph.neighbours), computed
    # directly: one similarity per known task, no all-pairs graph build per call
    sims = sorted(((t.id, 1.0 if t.id == desc.id else metric(desc, t)) for t in same),
                  key=lambda kv: (-kv[1], kv[0]))
    neighbours = [(t, s) for t, s in sims if s >= threshold]
    table = kb.table(category)
    if neighbours:
        rows = [table.row(t) for t, _ in neighbours]
        weights = [max(s, 1e-9) ** power for _, s in neighbours]
        strategy = Strategy.SIMILAR_TASKS
        names = ", ".join(kb.tasks[t].name for t, _ in neighbours[:3])
        more = f" and {len(neighbours) - 3} more" if len(neighbours) > 3 else ""
        message = (f"{min(k, table.normalised.shape[1])} seed(s) from {len(neighbours)} similar "
                   f"{category} task(s): {names}{more}")
    else:
        rows = [table.row(t.id) for t in same]
        weights = [1.0] * len(rows)
        strategy = Strategy.PORTFOLIO
        best_t, best_s = sims[0] if sims else ("", 0.0)
        closest = f" (closest: {kb.tasks[best_t].name} at {best_s:.2f})" if best_t else ""
        message = (f"no task in the knowledge base is similar enough{closest}, below threshold "
                   f"{threshold:.2f}; seeds are a portfolio of configurations that do well "
                   f"across all {len(rows)} {category} tasks")
    cols = seed_columns(table, rows, weights, k)
    sim_of = dict(neighbours) if neighbours else {t.id: s for t, s in
                                                  ((kb.tasks[i], s) for i, s in sims)}
    seeds = tuple(_seed(kb, table, j, rows, weights, sim_of) for j in cols)
    return Recommendation(
        seeds=seeds, strategy=strategy, message=message,
        neighbours=tuple(_neighbour(kb, desc, metric, t, s) for t, s in neighbours),
        elapsed_s=time.perf_counter() - started, **common)


def _seed(kb: KnowledgeBase, table: ScoreTable, col: int, rows: Sequence[int],
          weights: Sequence[float], sim_of: Mapping[str, float]) -> Seed:
    config = table.configs[col]
    key = config_key(config)
    U = table.normalised[list(rows), col]
    w = np.asarray(weights, float)
    ok = np.isfinite(U)
    expected = float((w[ok] * U[ok]).sum() / w.sum()) if ok.any() else 0.0
    evidence = []
    for r in rows:
        tid = table.task_ids[r]
        score = table.scores[r, col]
        if not np.isfinite(score):
            continue
        row = table.scores[r]
        finite = row[np.isfinite(row)]
        run = kb.run_lookup(tid).get(key)
        evidence.append(Evidence(
            task_id=tid, task_name=kb.tasks[tid].name, similarity=float(sim_of.get(tid, 0.0)),
            score=round(float(score), 6), rank=int((finite > score).sum()) + 1,
            n_runs=len(finite), run_id=run.run_id if run else None))
    evidence.sort(key=lambda e: (e.rank > 3, -e.similarity, e.rank))
    return Seed(config=dict(config), expected=expected, evidence=tuple(evidence[:5]))


def _neighbour(kb: KnowledgeBase, query: TaskDescription, metric: SimilarityMetric,
               task_id: str, sim: float) -> Neighbour:
    other = kb.tasks[task_id]
    diffs = metric.differences(query, other)
    return Neighbour(task_id=task_id, name=other.name, similarity=sim,
                     alike=tuple(k for k, _ in diffs[::-1][:3]),
                     differ=tuple(k for k, _ in diffs[:3]))
