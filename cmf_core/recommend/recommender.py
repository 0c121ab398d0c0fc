"""Recommend seed configurations for a new task from its most similar past tasks.

How (see docs/recommender.md):

1. The knowledge graph holds the knowledge base's tasks; the new task's neighbours are the
   tasks of the same category whose similarity is at least the threshold.
2. Each neighbour's runs are normalised (1 = its best run, 0 = its median run). Every
   neighbour is a *scenario* of what the new task may be like, weighted by its similarity to
   the power ``power``; with a meta-model (:mod:`cmf_core.recommend.surrogate`), each of its
   trees' predictions for the new task is a scenario too (the calibrated
   ``neighbour_share`` splits the weight). Seeds are chosen greedily: with the calibrated seed
   rule ``level`` (the default), each next configuration is the one that "hits" (normalised
   score >= level) the largest weight of scenarios not hit yet (greedy min-sum set cover,
   which keeps the expected position of the first hit small); without it, the one that most
   raises the weighted sum of the best normalised score reached so far.
3. No neighbour: the same greedy choice over every task of the category with equal weights
   (a global portfolio, no meta-model), and the recommendation says so. No task of the
   category: no seeds (the search starts cold), and it says so.

Use the seeds with Optuna (:meth:`Recommendation.enqueue`, configurations proposed exactly by
:func:`cmf_core.recommend.space.suggest_config`) or as plain dicts
(:meth:`Recommendation.configs`) with any other searcher.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from cmf_core.errors import CmfError, InvalidInputError
from cmf_core.model._base import whole_number
from cmf_core.recommend.graph import DEFAULT_THRESHOLD, KnowledgeGraph, SimilarityMetric
from cmf_core.recommend.knowledge import KnowledgeBase, ScoreTable, from_store, shipped
from cmf_core.recommend.space import (
    SPACES,
    config_key,
    config_label,
    to_optuna_params,
)
from cmf_core.recommend.surrogate import meta_model, sklearn_missing
from cmf_core.recommend.task import UNDESCRIBED, TaskDescription

if TYPE_CHECKING:
    from cmf_core.recommend.adaptive import AdaptiveSeeder


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
    the neighbours (1 = as good as their best runs, 0 = their median run); ``predicted`` the
    meta-model's mean predicted normalised score on the new task (None without it);
    ``reason`` why the seed rule chose it after the seeds before it (e.g. which scenarios it
    is a hit on that they miss: a seed with a low mean can be a hedge)."""

    config: Mapping[str, Any]
    expected: float
    evidence: tuple[Evidence, ...]
    predicted: float | None = None
    reason: str = ""

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
    #: what the seeds were chosen from (None when there are no seeds); used by :meth:`seeder`
    scenarios: Scenarios | None = field(default=None, repr=False, compare=False)

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

    def seeder(self, k: int | None = None, beta: float | None = None,
               covered_weight: float | None = None, sigma: float | None = None,
               refine_after: int | None = None) -> AdaptiveSeeder:
        """Adaptive seeds (:mod:`cmf_core.recommend.adaptive`): up to ``k`` (default: as many
        as :attr:`seeds`), each chosen after the scores of the previous ones; the first is
        ``seeds[0]``. ``beta``, ``covered_weight``, ``sigma`` and ``refine_after`` default to
        the knowledge base's calibration. With no seeds, a seeder that gives none."""
        from cmf_core.recommend.adaptive import (
            BETA,
            COVERED_WEIGHT,
            REFINE_AFTER,
            SIGMA,
            AdaptiveSeeder,
        )

        cal = self.extra.get("adaptive") or {}
        beta = float(cal.get("beta", BETA)) if beta is None else beta
        cw = float(cal.get("covered_weight", COVERED_WEIGHT)) if covered_weight is None \
            else covered_weight
        sigma = float(cal.get("sigma", SIGMA)) if sigma is None else sigma
        if refine_after is None:
            refine_after = int(cal.get("refine_after", REFINE_AFTER))
        k = len(self.seeds) if k is None else k
        scen = self.scenarios
        if scen is None or not self.seeds:
            scen = Scenarios.empty()
        return AdaptiveSeeder(scen, k, beta=beta, covered_weight=cw, sigma=sigma,
                              refine_after=refine_after)

    def seeder_state(self) -> dict[str, Any] | None:
        """The JSON state of :meth:`seeder` (``AdaptiveSeeder.from_dict`` rebuilds it), None
        without seeds."""
        return self.seeder().to_dict() if self.seeds else None

    def explain(self) -> str:
        """A human-readable account: strategy, similar tasks, and the runs behind each seed."""
        lines = [self.message]
        if self.neighbours:
            lines.append(f"Similar tasks (similarity >= {self.threshold:.2f}, metric "
                         f"{self.metric}):")
            for n in self.neighbours[:8]:
                differ = (f"differs most in {', '.join(n.differ)}" if n.differ else
                          "no meta-feature differs")
                lines.append(f"  {n.name}: {n.similarity:.3f} (alike in {', '.join(n.alike)}; "
                             f"{differ})")
            if len(self.neighbours) > 8:
                lines.append(f"  ... and {len(self.neighbours) - 8} more")
        if self.seeds:
            lines.append(f"Seeds, each scored {SCORE_SCALE} (past tasks: the configuration's "
                         "weighted mean on the past tasks behind it; meta-model: "
                         "predicted for this task):")
        for i, s in enumerate(self.seeds, 1):
            pred = ("" if s.predicted is None
                    else f", meta-model {s.predicted:+.2f} {standing(s.predicted)}")
            lines.append(f"{i}. {config_label(s.config)}: past tasks {s.expected:+.2f} "
                         f"{standing(s.expected)}{pred}")
            if s.reason:
                lines.append(f"     why: {s.reason}")
            for e in s.evidence[:3]:
                rid = f", run {e.run_id}" if e.run_id else ""
                lines.append(f"     {e.task_name} (similarity {e.similarity:.2f}): score "
                             f"{e.score:.4g}, rank {e.rank}/{e.n_runs}{rid}")
        return "\n".join(lines)

    def to_dict(self, seeder: bool = False) -> dict[str, Any]:
        """JSON-ready form (e.g. for the CLI's ``--json`` or an execution's properties). With
        ``seeder``, also the :meth:`seeder`'s state under ``seeder`` (None without seeds), for
        a search in another process: ``AdaptiveSeeder.from_dict(this)``."""
        out = {
            "task": self.task.to_dict(),
            "strategy": self.strategy.value,
            "message": self.message,
            "error": self.error,
            "threshold": self.threshold,
            "metric": self.metric,
            "knowledge_tasks": self.knowledge_tasks,
            "elapsed_s": round(self.elapsed_s, 6),
            "score_scale": SCORE_SCALE,
            "neighbours": [{"task_id": n.task_id, "name": n.name,
                            "similarity": round(n.similarity, 4), "alike": list(n.alike),
                            "differ": list(n.differ)} for n in self.neighbours],
            "seeds": [{"config": dict(s.config), "optuna_params": s.optuna_params,
                       "expected": round(s.expected, 4),
                       "predicted": None if s.predicted is None else round(s.predicted, 4),
                       "reason": s.reason,
                       "evidence": [{"task_id": e.task_id, "task": e.task_name,
                                     "similarity": round(e.similarity, 4), "score": e.score,
                                     "rank": e.rank, "n_runs": e.n_runs, "run_id": e.run_id}
                                    for e in s.evidence]} for s in self.seeds],
        }
        if seeder:
            out["seeder"] = self.seeder_state()
        return out


#: what a seed's ``expected`` and ``predicted`` scores mean (said by ``explain`` and ``--json``)
SCORE_SCALE = ("against past runs: +1 = as good as a task's best run, 0 = its median run, "
               "below 0 = worse than its median run")


def standing(score: float) -> str:
    """Where a normalised score stands, in words: ``(best)``, ``(above median)``, ``(median)``
    or ``(below median)`` (a negative score puzzles without it)."""
    if score >= 0.995:
        return "(best)"
    if score >= 0.005:
        return "(above median)"
    return "(median)" if score > -0.005 else "(below median)"


def optuna_params(config: Mapping[str, Any]) -> dict[str, Any]:
    """``family.param`` names for a configuration of a family of the default space (its values
    on the grid or not: :func:`~cmf_core.recommend.space.suggest_config` snaps them), else as
    recorded."""
    family, names = config.get("model"), set(config) - {"model"}
    for families in SPACES.values():
        params = families.get(family) if isinstance(family, str) else None
        if params is not None and names == set(params):
            return to_optuna_params(config)
    return dict(config)


# the core choice, on matrices -------------------------------------------------------------------
#: A configuration "hits" a task when its normalised score is at least this (95% of the way
#: from the task's median run to its best run): the benchmark's target.
HIT_LEVEL = 0.95
_SOFT_TIE = 1e-3
#: hit level for the meta-model's scenarios (tree predictions average several runs, so they
#: rarely reach the level of single runs)
MODEL_LEVEL = 0.9
#: weight of the neighbours' runs among the scenarios (the meta-model's trees get the rest)
NEIGHBOUR_SHARE = 0.5
#: a neighbour this similar, over the meta-features that do not depend on the data's size,
#: is taken for (a sample of) the same data: its best runs are the first seeds (no two tasks of
#: different groups of the shipped knowledge base are more than 0.96 similar so; the full
#: Telco CSV against its 1,500-row sample in the knowledge base: 0.986)
SAME_TASK_SIMILARITY = 0.97
#: the same task's runs that go first, best first: those at least this good on its own
#: normalised scale (a fresh sample of the same data ranks the new task's best
#: configurations early: benchmarks/RESULTS.md, "Retraining")
SAME_TASK_LEVEL = 0.95
#: how explanations name a meta-model scenario (``meta-model tree 7``)
TREE_NAME = "meta-model tree"
#: meta-features that change when the same data is subsampled (left out of the same-task test)
SIZE_FEATURES = frozenset({"n_rows", "dimensionality", "length", "vocabulary"})


def greedy_portfolio(normalised: np.ndarray, weights: Sequence[float] | np.ndarray, k: int,
                     floor: float = 0.0,
                     level: float | Sequence[float] | np.ndarray | None = None,
                     start: Sequence[int] = ()) -> list[int]:
    """Columns (configurations) chosen greedily; ties go to the higher weighted mean.
    ``start``: columns taken as already chosen, in order (the result begins with them).

    ``level=None``: maximise ``sum_t w_t * max(floor, best normalised score of the chosen set
    on task t)``. ``level=x`` (or one level per row): weighted greedy set cover of the "hits"
    (normalised score >= the level); each next configuration hits the largest weight of rows
    not hit yet, and the soft objective breaks ties (and decides once every row that can be
    hit is). With each row a scenario of what the new task may be like, weighted by how
    likely it is, this is the greedy rule for min-sum set cover: it keeps the expected position
    of the first seed that hits small, which is what trials-to-target measures.

    ``normalised`` is tasks x configurations with NaN for configurations a task did not run.
    """
    U = np.asarray(normalised, dtype=float)
    w = np.asarray(weights, dtype=float)
    if U.ndim != 2 or U.shape[0] != len(w):
        raise InvalidInputError(f"weights ({len(w)}) must match the table's rows {U.shape}")
    n_configs = U.shape[1]
    if n_configs == 0 or len(w) == 0 or w.sum() <= 0:
        return []
    w = w / w.sum()
    V = np.where(np.isfinite(U), U, floor)
    mean = (w[:, None] * np.where(np.isfinite(U), U, 0.0)).sum(0)
    hits = None
    if level is not None:
        lv = np.asarray(level, dtype=float)
        hits = np.greater_equal(V, lv[:, None] if lv.ndim == 1 else lv)
    chosen = [int(c) for c in start][:k]
    current = np.maximum(V[:, chosen].max(axis=1), floor) if chosen else np.full(len(w), floor)
    covered = hits[:, chosen].any(axis=1) if hits is not None and chosen else \
        np.zeros(len(w), dtype=bool)
    for _ in range(min(k, n_configs) - len(chosen)):
        gain = (w[:, None] * np.maximum(current[:, None], V)).sum(0) + 1e-6 * mean
        if hits is not None:
            gain = (w[:, None] * (hits & ~covered[:, None])).sum(0) + _SOFT_TIE * gain
        gain[chosen] = -np.inf
        j = int(np.argmax(gain))
        chosen.append(j)
        current = np.maximum(current, V[:, j])
        if hits is not None:
            covered |= hits[:, j]
    return chosen


@dataclass(frozen=True, eq=False)
class Scenarios:
    """What seeds are chosen from: ``normalised`` (scenarios x the category's configurations,
    NaN = not run), the scenarios' ``weights``, their hit ``levels`` (None: the sum-of-best
    rule), the table's ``configs`` (column order) and ``prefix``, columns that go first, in
    order, whatever the rule says (the best runs of the same task, run before). ``scores``: the
    scenarios' recorded scores where they are on the new task's scale (a past task scored
    with the same metric), else NaN (meta-model trees, other metrics); None: none is. Only
    the adaptive seeder uses it (:mod:`cmf_core.recommend.adaptive`). ``names``: one per
    scenario (a past task's name, ``meta-model tree N``) for explanations, or None.
    ``prefix_reasons``: why each of ``prefix`` goes first, in words (static and adaptive seeds
    say the same)."""

    normalised: np.ndarray
    weights: np.ndarray
    levels: np.ndarray | None
    configs: tuple[Mapping[str, Any], ...]
    prefix: tuple[int, ...] = ()
    scores: np.ndarray | None = None
    names: tuple[str, ...] | None = None
    prefix_reasons: tuple[str, ...] = ()

    @classmethod
    def empty(cls) -> Scenarios:
        """No configurations to choose from (a recommendation without seeds)."""
        return cls(np.zeros((1, 0)), np.ones(1), None, ())

    def only(self, cols: Sequence[int]) -> Scenarios:
        """The same scenarios over the configurations ``cols`` alone, in that order (columns
        renumbered); ``prefix`` columns outside ``cols`` are dropped."""
        cols = [int(c) for c in cols]
        pos = {c: i for i, c in enumerate(cols)}
        reasons = self.prefix_reasons or ("",) * len(self.prefix)
        kept = [(pos[c], r) for c, r in zip(self.prefix, reasons, strict=True) if c in pos]
        return replace(self, normalised=np.asarray(self.normalised, float)[:, cols],
                       configs=tuple(self.configs[c] for c in cols),
                       scores=None if self.scores is None else self.scores[:, cols],
                       prefix=tuple(c for c, _ in kept),
                       prefix_reasons=tuple(r for _, r in kept) if self.prefix_reasons else ())

    def order(self, k: int) -> list[int]:
        """The static seed columns: the ``prefix``, then the greedy rule's columns after it
        (as if the prefix had been chosen by the rule), ``k`` in all."""
        return greedy_portfolio(self.normalised, self.weights, k, level=self.levels,
                                start=self.prefix)

    def hits(self) -> np.ndarray:
        """Scenarios x configurations: True where the configuration reaches the scenario's
        hit level (a configuration a scenario has no score for never does). Needs levels."""
        U = np.asarray(self.normalised, dtype=float)
        return np.greater_equal(np.where(np.isfinite(U), U, -np.inf),
                                np.asarray(self.levels, dtype=float)[:, None])

    def trees(self) -> np.ndarray:
        """Per scenario: True for a meta-model tree (named :data:`TREE_NAME` ``N``)."""
        if self.names is None:
            return np.zeros(len(self.weights), dtype=bool)
        return np.array([n.startswith(TREE_NAME) for n in self.names], dtype=bool)


def comparable_scores(scores: np.ndarray, metrics: Sequence[str | None],
                      metric: str | None) -> np.ndarray | None:
    """``scores`` (rows: past tasks scored with ``metrics``) where a row's metric is the new
    task's ``metric``, NaN elsewhere; None when no row is comparable (or ``metric`` is None)."""
    same = np.array([metric is not None and m == metric for m in metrics], dtype=bool)
    if not same.any():
        return None
    return np.where(same[:, None], np.asarray(scores, dtype=float), np.nan)


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
              strict: bool = True, use_meta_model: bool = True,
              models: Collection[str] | str | None = None) -> Recommendation:
    """Top-``k`` seed configurations for ``task``, from the most similar past tasks.

    ``models``: the model families (``model`` values) your search space has, e.g.
    ``["rf", "hgb"]``; seeds are then configurations of those families only (a seed of a
    family the objective does not know fails its trial). A name with no recorded runs is
    said in ``message``; when none of them has any, :class:`InvalidInputError` lists the
    families there are.

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
                          started, use_meta_model, models)
    except CmfError as e:
        if strict:
            raise
        return no_seeds(task, str(e), started)


def no_seeds(task: Any, error: str, started: float | None = None) -> Recommendation:
    """The recommendation of a step that could not recommend: no seeds, ``error`` says why."""
    desc = task if isinstance(task, TaskDescription) else None
    placeholder = desc or TaskDescription(name=UNDESCRIBED, category="classification")
    return Recommendation(
        task=placeholder, seeds=(), strategy=Strategy.NONE, error=error,
        message=f"no seeds, the search starts cold: {error}",
        elapsed_s=0.0 if started is None else time.perf_counter() - started)


def _recommend(task: TaskDescription | Mapping[str, Any], k: int, store: Any,
               knowledge: KnowledgeBase | None, include_shipped: bool,
               threshold: float | None, metric: SimilarityMetric | None,
               started: float, use_meta_model: bool = True,
               models: Collection[str] | str | None = None) -> Recommendation:
    k = whole_number(k, "k", 1)
    wanted = _models(models)
    if threshold is not None and not (isinstance(threshold, (int, float))
                                      and not isinstance(threshold, bool)
                                      and 0.0 <= threshold <= 1.0):  # NaN fails this too
        raise InvalidInputError(f"threshold={threshold!r} must be a similarity from 0 to 1")
    desc = TaskDescription.from_dict(task)
    if knowledge is not None and not isinstance(knowledge, KnowledgeBase):
        raise InvalidInputError(
            f"knowledge={knowledge!r} is not a KnowledgeBase (read a file with "
            "cmf_core.recommend.knowledge.load(path))")
    if metric is not None and not isinstance(metric, SimilarityMetric):
        raise InvalidInputError(f"metric={metric!r} is not a SimilarityMetric")
    kb = knowledge if knowledge is not None else (shipped() if include_shipped
                                                   else KnowledgeBase())
    if store is not None and not callable(getattr(store, "list_executions", None)):
        raise InvalidInputError(
            f"store={store!r} is not a CMF store (open one with cmf_core.store.open_store)")
    if store is not None:
        kb = from_store(store).merge(kb)
    cal = kb.calibration
    metric = metric or (SimilarityMetric.from_dict(cal["metric"]) if cal.get("metric")
                        else SimilarityMetric())
    if threshold is None:
        threshold = float(cal.get("threshold", DEFAULT_THRESHOLD))
    power = float(cal.get("power", 1.0))
    level = cal.get("level")
    level = None if level is None else float(level)
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
    keep, only = _keep_models(table.configs, wanted, category)
    if neighbours:
        rows = [table.row(t) for t, _ in neighbours]
        weights = [max(s, 1e-9) ** power for _, s in neighbours]
        strategy = Strategy.SIMILAR_TASKS
        names = ", ".join(kb.tasks[t].name for t, _ in neighbours[:3])
        more = f" and {len(neighbours) - 3} more" if len(neighbours) > 3 else ""
        message = (f"{min(k, len(keep))} seed(s) from {len(neighbours)} similar "
                   f"{category} task(s): {names}{more}")
    else:
        rows = [table.row(t.id) for t in same]
        weights = [1.0] * len(rows)
        strategy = Strategy.PORTFOLIO
        best_t, best_s = sims[0] if sims else ("", 0.0)
        # as many decimals as it takes to show the closest below the threshold (not "1.00, below
        # threshold 1.00")
        places = next((p for p in range(2, 7) if round(best_s, p) < round(threshold, p)), 6)
        closest = (f" (closest: {kb.tasks[best_t].name} at {best_s:.{places}f})" if best_t
                   else "")
        why = (f"no task in the knowledge base is similar enough{closest}, below threshold "
               f"{threshold:.{places}f}" if desc.meta_features else
               "the task has no meta-features (describe its data to find similar tasks)")
        if not any(t.modality == desc.modality for t in same):  # say why nothing is close
            kinds = sorted({t.modality.value for t in same})
            why += (f" (the knowledge base has no {desc.modality.value} {category} task, only "
                    f"{', '.join(kinds)} ones)")
        message = (f"{why}; seeds are a portfolio of configurations that do well "
                   f"across all {len(rows)} {category} tasks")
    share = float(cal.get("neighbour_share", NEIGHBOUR_SHARE))
    if neighbours and share >= 1.0 and level is None:
        level = HIT_LEVEL  # the set-cover rule, as when the trees are mixed in with weight 0
    extra: dict[str, Any] = {"seed_rule": "sum" if level is None else f"cover@{level:g}"}
    adaptive = cal.get("adaptive")
    wants_model = bool(neighbours) and use_meta_model and share < 1.0
    model = meta_model(kb, category) if wants_model else None
    configs = tuple(table.configs)
    names_of_rows = tuple(kb.tasks[table.task_ids[r]].name for r in rows)
    raw = comparable_scores(table.scores[rows], [kb.tasks[table.task_ids[r]].metric
                                                 for r in rows], desc.metric)
    if model is None:
        w = np.asarray(weights, float)
        scen = Scenarios(table.normalised[rows], w / w.sum(),
                         None if level is None else np.full(len(rows), level), configs,
                         scores=raw, names=names_of_rows)
        if wants_model and sklearn_missing():
            message += ("; not ranked with a meta-model, which needs scikit-learn "
                        "(pip install 'cmf-foundation[recommend]')")
    else:
        # scenarios: the neighbours' runs (weight share ``neighbour_share``, by similarity)
        # and the meta-model's trees (the rest, equal); set cover of their hits
        P = model.scenarios(desc)
        w_nb = np.asarray(weights, float) / float(np.sum(weights)) * share
        w_all = np.concatenate([w_nb, np.full(len(P), (1.0 - share) / len(P))])
        levels = [HIT_LEVEL if level is None else level] * len(rows) + [MODEL_LEVEL] * len(P)
        scen = Scenarios(np.vstack([table.normalised[rows], P]), w_all, np.asarray(levels),
                         configs, scores=None if raw is None else
                         np.vstack([raw, np.full(P.shape, np.nan)]),
                         names=(*names_of_rows, *(f"{TREE_NAME} {i + 1}"
                                                  for i in range(len(P)))))
        message += f"; ranked with a meta-model of {len(table.task_ids)} {category} tasks"
        extra = {"seed_rule": f"cover@{levels[0]:g}+meta-model@{MODEL_LEVEL:g}",
                 "neighbour_share": share}
    if adaptive:
        extra["adaptive"] = dict(adaptive)
    if wanted is not None:  # the families of the user's search space alone
        scen = scen.only(keep)
        message += only
    same = _same_task(desc, [kb.tasks[t] for t, _ in neighbours], metric)
    same_task, same_why = same if same is not None else (None, "")
    row = rows[same_task] if same_task is not None else None
    if row is not None and np.isfinite(table.scores[row][keep]).any():
        # this task (or a sample of it) was run before: its best runs go first, whatever the
        # cover of the other scenarios prefers
        prefix = same_task_prefix(table.normalised[row][keep], table.scores[row][keep])
        name = kb.tasks[neighbours[same_task][0]].name
        among = "" if wanted is None else " of those models"
        same_why = f"the best run{among} of {name} ({same_why})"
        message += f"; first {same_why}"
        if min(len(prefix), k) > 1:
            more = min(len(prefix), k) - 1
            message += (", then its next best run" if more == 1 else
                        f", then its next {more} best runs")
        scen = replace(scen, prefix=prefix, prefix_reasons=(
            same_why, *(f"the {ordinal(i)} best run{among} of {name}, the same task"
                        for i in range(2, len(prefix) + 1))))
    cols = [keep[c] for c in scen.order(k)]  # columns of the table
    sim_of = dict(neighbours) if neighbours else {t.id: s for t, s in
                                                  ((kb.tasks[i], s) for i, s in sims)}
    seeds = tuple(_seed(kb, table, j, rows, weights, sim_of) for j in cols)
    if model is not None:
        mean = P.mean(axis=0)
        seeds = tuple(replace(sd, predicted=float(mean[j])) for sd, j in zip(seeds, cols,
                                                                              strict=True))
    why = seed_reasons(scen, [keep.index(c) for c in cols])
    seeds = tuple(replace(sd, reason=r) for sd, r in zip(seeds, why, strict=True))
    return Recommendation(
        seeds=seeds, strategy=strategy, message=message,
        neighbours=tuple(_neighbour(kb, desc, metric, t, s) for t, s in neighbours),
        elapsed_s=time.perf_counter() - started, extra=extra, scenarios=scen, **common)


def _models(models: Collection[str] | str | None) -> frozenset[str] | None:
    """``models`` as a set of family names (one name alone is one family); None: all."""
    if models is None:
        return None
    names = (models,) if isinstance(models, str) else models
    try:
        names = tuple(names)
    except TypeError:
        raise InvalidInputError(f"models={models!r} must be a list of model family names "
                                "(e.g. ['rf', 'hgb'])") from None
    if not names or not all(isinstance(m, str) and m for m in names):
        raise InvalidInputError(f"models={models!r} must be a non-empty list of model family "
                                "names (e.g. ['rf', 'hgb'])")
    return frozenset(names)


def _keep_models(configs: Sequence[Mapping[str, Any]], wanted: frozenset[str] | None,
                 category: str) -> tuple[list[int], str]:
    """The table's columns of the ``wanted`` families (all without), and what the message
    says about them."""
    if wanted is None:
        return list(range(len(configs))), ""
    keep = [j for j, c in enumerate(configs) if c.get("model") in wanted]
    there = sorted({str(c.get("model")) for c in configs})
    if not keep:
        raise InvalidInputError(
            f"none of the models {', '.join(sorted(wanted))} has runs in the knowledge base's "
            f"{category} tasks, so no seed would fit your search space; the families there "
            f"are: {', '.join(there)}")
    unknown = sorted(wanted - set(there))
    note = (f" ({', '.join(unknown)}: no recorded runs, so no seeds)" if unknown else "")
    return keep, f"; only {', '.join(sorted(wanted & set(there)))} as asked{note}"


def _same_task(desc: TaskDescription, candidates: Sequence[TaskDescription],
               metric: SimilarityMetric) -> tuple[int, str] | None:
    """Index of the candidate that is ``desc`` itself or (a sample of) the same data, the most
    similar over the size-free meta-features if at least :data:`SAME_TASK_SIMILARITY`, and
    how it is the same, in words."""
    if not candidates:
        return None
    size_free = metric.without(SIZE_FEATURES)
    sims = [(1.0, True) if t.id == desc.id else (size_free(desc, t), False)
            for t in candidates]
    i = max(range(len(sims)), key=lambda j: sims[j])  # ties: the task itself, then the first
    sim, itself = sims[i]
    if sim < SAME_TASK_SIMILARITY:
        return None
    return i, ("this task, run before" if itself else
               f"taken for the same data: {sim:.3f} similar over the size-free meta-features")


def same_task_prefix(normalised: np.ndarray, scores: np.ndarray,
                     level: float = SAME_TASK_LEVEL) -> tuple[int, ...]:
    """The columns of the same task's runs that go first: its best, then every other at least
    ``level`` on its normalised scale, best score first."""
    best = int(np.nanargmax(scores))  # it has runs (``_same_task``)
    good = [int(c) for c in np.flatnonzero(np.where(np.isfinite(normalised), normalised,
                                                    -np.inf) >= level) if c != best]
    return (best, *sorted(good, key=lambda c: (-float(scores[c]), c)))


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def prefix_reason(scen: Scenarios, i: int) -> str:
    """Why ``scen.prefix[i]`` goes first: ``scen.prefix_reasons[i]``, or a generic line."""
    if i < len(scen.prefix_reasons):
        return scen.prefix_reasons[i]
    return ("the best run of the same task, run before" if i == 0 else
            f"the {ordinal(i + 1)} best run of the same task, run before")


def seed_reasons(scen: Scenarios, cols: Sequence[int]) -> list[str]:
    """Why each of ``cols`` (the static seed order) was chosen: the scenarios (past tasks by
    name, meta-model trees by count; ``scen.names``) it is a hit on that no earlier seed
    hits, and their share of the scenario weight; or, under the sum rule, its gain in the
    best normalised score. The ``scen.prefix`` columns: :func:`prefix_reason`."""
    n = len(scen.prefix)
    if n and list(cols[:n]) == list(scen.prefix[:len(cols)]):
        given = [prefix_reason(scen, i) for i in range(min(n, len(cols)))]
        return [*given, *seed_reasons(replace(scen, prefix=(), prefix_reasons=()), cols)[n:]]
    U = np.asarray(scen.normalised, dtype=float)
    w = np.asarray(scen.weights, dtype=float)
    w = w / w.sum()
    names = scen.names or tuple(f"scenario {j + 1}" for j in range(len(w)))
    is_tree = scen.trees()
    out: list[str] = []
    if scen.levels is None:
        best = np.zeros(len(w))
        for c in cols:
            V = np.where(np.isfinite(U[:, c]), U[:, c], 0.0)
            gain = float((w * (np.maximum(best, V) - best)).sum())
            out.append(f"raises the similar tasks' weighted best normalised score by "
                       f"{gain:.2f}" if out else
                       f"the best weighted mean normalised score ({float((w * V).sum()):.2f})")
            best = np.maximum(best, V)
        return out
    hit = scen.hits() & (w > 0)[:, None]
    covered = np.zeros(len(w), dtype=bool)
    for i, c in enumerate(cols):
        new = hit[:, c] & ~covered
        covered |= hit[:, c]
        if not new.any():
            out.append("every scenario it could hit is hit by a seed before it; chosen for "
                       "its scores across the scenarios")
            continue
        tasks = [names[j] for j in np.flatnonzero(new & ~is_tree)]
        parts = []
        if tasks:
            more = f" and {len(tasks) - 3} more" if len(tasks) > 3 else ""
            parts.append(f"a hit on {', '.join(tasks[:3])}{more}")
        if (new & is_tree).any():
            parts.append(f"predicted a hit by {int((new & is_tree).sum())} of "
                         f"{int(is_tree.sum())} meta-model trees")
        before = " that the seeds before it miss" if i else ""
        out.append(f"{' and '.join(parts)}{before} ({float(w[new].sum()):.0%} of the "
                   "scenario weight)")
    return out


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
                     differ=tuple(k for k, d in diffs[:3] if d > 1e-12))
