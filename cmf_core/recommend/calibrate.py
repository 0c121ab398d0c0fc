"""Choosing and validating the similarity metric, the edge threshold and the seed rule.

What counts is what the benchmark measures: how soon a seeded search reaches a task's target
(95% of the gap from its median run to its best run). :func:`calibrate`:

1. builds candidate metrics: uniform weights over the default meta-feature groups, uniform
   weights over all groups (with landmarks), and two sets of weights learned by non-negative
   least squares on pairs of tasks from different groups, so that the weighted meta-feature
   distance predicts rank disagreement over all configurations (``learned``) or how badly one
   task's best configuration does on the other (``learned-transfer``, :func:`transfer`);
2. for every candidate, neighbour-weight power (weight = similarity ** power), seed rule
   (:data:`LEVELS`) and threshold, scores the seeds by an inner leave-one-task-out over the
   knowledge base: each task in turn is the new task, its group is left out, seeds come from
   its neighbours (or the portfolio when it has none), and the objective is the mean over
   tasks and ``k`` in 1, 3, 5, 10 of ``log(cold / trials)``: ``trials`` is the position of the
   first seed that hits, else ``k`` plus ``cold``, a random searcher's expected trials to hit
   (:func:`cold_trials`), so the objective is the log of a geometric-mean speedup;
3. keeps the best (metric, power, seed rule, threshold); then, with scikit-learn, chooses the
   neighbours' share against the meta-model's (:mod:`cmf_core.recommend.surrogate`) by the
   same inner leave-one-task-out, each meta-model fitted without the held-out group; then
   the knobs of adaptive seeding (:mod:`cmf_core.recommend.adaptive`: ``beta`` and
   ``sigma``, with ``covered_weight`` 0) by the same inner leave-one-task-out, the held-out
   task's scores on the seeds so far being what the seeder observes;
4. reports the correlation between similarity and rank agreement, rank agreement on edges
   versus non-edges, and the objective against the portfolio's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import optimize, stats

from cmf_core.recommend.graph import SimilarityMetric, default_weights
from cmf_core.recommend.knowledge import KnowledgeBase, ScoreTable
from cmf_core.recommend.recommender import (
    Scenarios,
    comparable_scores,
    greedy_portfolio,
)
from cmf_core.recommend.task import ALL_GROUPS, META_FEATURES, TaskDescription

THRESHOLDS: tuple[float, ...] = tuple(round(x, 3) for x in np.arange(0.50, 0.985, 0.02))
POWERS: tuple[float, ...] = (1.0, 4.0, 16.0, 64.0)
#: seed rules: None = sum over neighbours of the best normalised score reached; a number = greedy
#: set cover of the configurations scoring at least that (see greedy_portfolio)
LEVELS: tuple[float | None, ...] = (None, 0.95, 0.8)
#: share of the neighbours' runs among the seed scenarios (the meta-model's trees: the rest)
SHARES: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
KS: tuple[int, ...] = (1, 3, 5, 10)
#: adaptive seeding (cmf_core.recommend.adaptive): sharpness of the order likelihood (0: the
#: static seed list) and the weight of covered scenarios (only 0, the static rule's
#: bookkeeping, is calibrated: > 0 did better on the 40-task proxy with fixed values but
#: worse when chosen by this inner leave-one-task-out; see benchmarks/recommender/
#: adaptive_proxy.py)
BETAS: tuple[float, ...] = (0.0, 3.0, 10.0, 30.0)
COVERED_WEIGHTS: tuple[float, ...] = (0.0,)
#: adaptive seeding: spread of the new task's score around a same-metric past task's score
#: (0: scores not compared); a factor ~3 apart, over the differences seen between tasks on a
#: metric in [0, 1]
SIGMAS: tuple[float, ...] = (0.0, 0.03, 0.1, 0.3)
#: adaptive seeding: configurations tried before the local steps start (0: none); chosen
#: after ``beta``, ``covered_weight`` and ``sigma``, with them fixed
REFINE_AFTERS: tuple[int, ...] = (0, 2, 3, 4, 5)
HIT = 0.95
BUDGET = 50
FEATURES = [m.name for m in META_FEATURES]


def rank_agreement(table: ScoreTable, min_common: int = 5) -> np.ndarray:
    """Spearman correlation of configuration scores for every pair of rows (NaN if fewer than
    ``min_common`` shared configurations)."""
    n = len(table.task_ids)
    out = np.full((n, n), np.nan)
    S = table.scores
    for a in range(n):
        out[a, a] = 1.0
        for b in range(a + 1, n):
            ok = np.isfinite(S[a]) & np.isfinite(S[b])
            if ok.sum() < min_common:
                continue
            r = stats.spearmanr(S[a, ok], S[b, ok]).statistic
            out[a, b] = out[b, a] = float(r) if np.isfinite(r) else 0.0
    return out


def feature_matrix(tasks: Sequence[TaskDescription]) -> np.ndarray:
    """Tasks x meta-features (in :data:`FEATURES` order), NaN where a task lacks one."""
    return np.array([[t.meta_features.get(f, np.nan) for f in FEATURES] for t in tasks])


def similarity_matrix(tasks: Sequence[TaskDescription], metric: SimilarityMetric) -> np.ndarray:
    """Pairwise similarities (same result as calling ``metric`` on every pair), vectorised."""
    F = feature_matrix(tasks)
    w = np.array([metric.weights.get(f, 0.0) for f in FEATURES])
    ok = np.isfinite(F)
    Fz = np.where(ok, F, 0.0)
    both = ok[:, None, :] & ok[None, :, :] & (w > 0)
    d2 = ((Fz[:, None, :] - Fz[None, :, :]) ** 2 * w * both).sum(-1)
    wsum = (w * both).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        sim = np.where(wsum > 0, 1.0 - np.sqrt(d2 / np.where(wsum > 0, wsum, 1.0)), 0.0)
    mods = np.array([t.modality.value for t in tasks])
    cats = np.array([t.category.value for t in tasks])
    sim = np.where(mods[:, None] != mods[None, :], sim * metric.modality_penalty, sim)
    sim = np.where(cats[:, None] != cats[None, :], 0.0, sim)
    return sim


def learn_weights(tasks: Sequence[TaskDescription], agreement: np.ndarray,
                  groups: Sequence[str | None]) -> dict[str, float]:
    """NNLS weights so that the weighted squared meta-feature differences predict rank
    disagreement ``1 - rho`` over pairs from different groups."""
    F = feature_matrix(tasks)
    X, y = [], []
    n = len(tasks)
    for a in range(n):
        for b in range(a + 1, n):
            if not np.isfinite(agreement[a, b]) or (groups[a] and groups[a] == groups[b]):
                continue
            diff = (F[a] - F[b]) ** 2
            X.append(np.where(np.isfinite(diff), diff, 0.0))
            y.append(1.0 - agreement[a, b])
    if len(y) < 5:
        return default_weights(ALL_GROUPS)
    Xa, ya = np.array(X), np.array(y)
    Xa = np.hstack([Xa, np.ones((len(Xa), 1))])  # intercept
    w, _ = optimize.nnls(Xa, ya)
    weights = {f: float(v) for f, v in zip(FEATURES, w[:-1], strict=True) if v > 1e-9}
    return weights or default_weights(ALL_GROUPS)


def transfer(table: ScoreTable) -> np.ndarray:
    """How well the winners transfer between every pair of rows: the mean of ``a``'s
    normalised score (clipped to [0, 1]) at ``b``'s best configuration and the reverse; NaN
    when either row has no run."""
    U = table.normalised
    n = len(table.task_ids)
    out = np.full((n, n), np.nan)
    best = [int(np.nanargmax(U[i])) if np.isfinite(U[i]).any() else -1 for i in range(n)]
    for a in range(n):
        for b in range(n):
            if best[a] < 0 or best[b] < 0:
                continue
            ab, ba = U[a, best[b]], U[b, best[a]]
            ab = float(np.clip(ab, 0, 1)) if np.isfinite(ab) else 0.0
            ba = float(np.clip(ba, 0, 1)) if np.isfinite(ba) else 0.0
            out[a, b] = (ab + ba) / 2
    return out


def _candidates(kb: KnowledgeBase) -> list[SimilarityMetric]:
    cands = [SimilarityMetric("uniform", default_weights()),
             SimilarityMetric("uniform+landmark", default_weights(ALL_GROUPS))]
    for name, target in (("learned", rank_agreement), ("learned-transfer", transfer)):
        learned: dict[str, float] = {}
        for cat in kb.categories():
            table = kb.table(cat)
            tasks = [kb.tasks[t] for t in table.task_ids]
            w = learn_weights(tasks, target(table), [t.group for t in tasks])
            for f, v in w.items():  # categories' weights pooled: mean of the normalised vectors
                learned[f] = learned.get(f, 0.0) + v / max(sum(w.values()), 1e-12)
        if learned:
            cands.append(SimilarityMetric(name, learned))
    return cands


def cold_trials(normalised_row: np.ndarray, budget: int = BUDGET) -> float:
    """Expected trials of a search without seeds to hit a task: a random searcher's
    ``1 / share of hitting configurations``, capped at the budget + 1."""
    row = normalised_row[np.isfinite(normalised_row)]
    share = float(np.mean(row >= HIT)) if len(row) else 0.0
    return min(1.0 / share, budget + 1.0) if share > 0 else budget + 1.0


def first_hit(order: Sequence[int], row: np.ndarray) -> int | None:
    """Position (from 1) of the first column of ``order`` where the normalised ``row`` reaches
    :data:`HIT`; None if none does."""
    return next((i + 1 for i, c in enumerate(order) if np.isfinite(row[c]) and row[c] >= HIT),
                None)


def proxy_log_speedups(order: Sequence[int], row: np.ndarray, ks: Sequence[int] = KS
                       ) -> list[float]:
    """Per ``k`` of ``ks``, ``log(cold_trials / trials)`` of seeding a task (normalised
    ``row``) with the first ``k`` columns of ``order``: trials is the first hit's position,
    else ``k`` + :func:`cold_trials` (a random searcher after the seeds), capped at the
    budget + 1."""
    hit_at, cold = first_hit(order, row), cold_trials(row)
    return [math.log(cold / (hit_at if hit_at is not None and hit_at <= k
                             else min(k + cold, BUDGET + 1.0))) for k in ks]


def inner_quality(table: ScoreTable, tasks: Sequence[TaskDescription], sim: np.ndarray,
                  threshold: float, ks: Sequence[int] = KS, power: float = 1.0,
                  level: float | None = None,
                  cache: dict[Any, list[int]] | None = None) -> dict[str, float]:
    """Inner leave-one-task-out of the seeds on one category's table.

    Per task (its group left out) and ``k``: the best normalised score among the seeds
    (``quality``), whether one hits (>= :data:`HIT`), and a trials-to-target proxy: the
    position of the first seed that hits, else ``k`` + :func:`cold_trials`. ``log_speedup``
    is the mean of ``log(cold_trials / proxy)`` (the benchmark's geometric-mean speedup, with
    a random searcher standing in for the search after the seeds), ``coverage`` the share of
    tasks that had a neighbour. ``cache`` memoises seed orders across thresholds that give the
    same neighbours.
    """
    n = len(tasks)
    groups = [t.group or t.id for t in tasks]
    U = table.normalised
    kmax = max(ks)
    quality, hits, logs, covered = [], [], [], 0
    for t in range(n):
        others = np.array([g != groups[t] for g in groups])
        if not others.any():
            continue
        nb = others & (sim[t] >= threshold)
        if nb.any():
            covered += 1
            rows = np.flatnonzero(nb)
        else:
            rows = np.flatnonzero(others)
        key = (table.category, t, rows.tobytes(), bool(nb.any()), power, level)
        order = cache.get(key) if cache is not None else None
        if order is None:
            w = np.maximum(sim[t, rows], 1e-9) ** power if nb.any() else np.ones(len(rows))
            order = greedy_portfolio(U[rows], w, kmax, level=level)
            if cache is not None:
                cache[key] = order
        row = U[t]
        hit_at = first_hit(order, row)
        for k in ks:
            vals = row[order[:k]]
            best = float(np.nanmax(vals)) if np.isfinite(vals).any() else 0.0
            quality.append(max(best, 0.0))
            hits.append(hit_at is not None and hit_at <= k)
        logs += proxy_log_speedups(order, row, ks)
    if not quality:
        return {"quality": 0.0, "hit_rate": 0.0, "coverage": 0.0, "log_speedup": 0.0,
                "objective": 0.0}
    ls = float(np.mean(logs))
    return {"quality": float(np.mean(quality)), "hit_rate": float(np.mean(hits)),
            "coverage": covered / n, "log_speedup": ls, "objective": ls}


def _per_category(kb: KnowledgeBase) -> list[tuple[str, ScoreTable, list[TaskDescription]]]:
    """(category, its score table, its tasks) for every category with two tasks or more."""
    out = []
    for cat in kb.categories():
        table = kb.table(cat)
        tasks = [kb.tasks[t] for t in table.task_ids]
        if len(tasks) >= 2:
            out.append((cat, table, tasks))
    return out


def calibrate(kb: KnowledgeBase, thresholds: Sequence[float] = THRESHOLDS,
              candidates: Sequence[SimilarityMetric] | None = None,
              powers: Sequence[float] = POWERS,
              levels: Sequence[float | None] = LEVELS,
              fit_share: bool = True, fit_adaptive: bool = True) -> dict[str, Any]:
    """Choose the similarity metric, threshold, neighbour-weight power and seed rule for
    ``kb`` (see module docs).

    Returns the calibration dict stored in a knowledge base file: ``metric``, ``threshold``,
    ``power``, ``level`` (None: sum-of-best seed rule; else the hit level of the set-cover
    rule), ``neighbour_share``, ``adaptive`` (``beta``, ``covered_weight``, ``sigma``,
    ``refine_after``) and
    ``validation`` (per-candidate objective curve and the chosen setting's statistics).
    """
    cands = list(candidates) if candidates is not None else _candidates(kb)
    per_cat = _per_category(kb)
    n_tasks = sum(len(t) for _, _, t in per_cat)
    keys = ("quality", "hit_rate", "coverage", "log_speedup", "objective")
    results = []
    for metric in cands:
        sims = [similarity_matrix(tasks, metric) for _, _, tasks in per_cat]
        cache: dict[Any, list[int]] = {}
        for level in levels:
            for power in powers:
                curve = []
                for thr in [*thresholds, 1.01]:
                    agg = dict.fromkeys(keys, 0.0)
                    for (_, table, tasks), sim in zip(per_cat, sims, strict=True):
                        q = inner_quality(table, tasks, sim, thr, power=power, level=level,
                                          cache=cache)
                        for key in agg:
                            agg[key] += q[key] * len(tasks) / max(n_tasks, 1)
                    curve.append((thr, agg))
                results.append((metric, power, level, curve))
    best_obj, best = -math.inf, None
    for metric, power, level, curve in results:
        for thr, agg in curve[:-1]:
            if agg["objective"] > best_obj + 1e-9:
                best_obj, best = agg["objective"], (metric, power, level, thr, agg)
    if best is None:
        metric, power, level, thr, agg = SimilarityMetric(), 1.0, None, 0.8, {}
    else:
        metric, power, level, thr, agg = best
    # the portfolio (no neighbours) with the same seed rule, for comparison
    portfolio = next((c[-1][1] for m, p, lv, c in results if lv == level), {})
    models: dict[tuple[str, int], np.ndarray] = {}
    share, share_curve = _calibrate_share(per_cat, metric, thr, power, level, models) \
        if fit_share else (None, {})
    adaptive, adaptive_curve = _calibrate_adaptive(per_cat, metric, thr, power, level, share,
                                                   models) if fit_adaptive else (None, {})
    validation = _validate(per_cat, metric, thr)
    validation.update({
        "chosen": {k: round(v, 4) for k, v in agg.items()},
        "portfolio": {k: round(v, 4) for k, v in portfolio.items()},
        "candidates": {f"{m.name}^{p:g}@{'sum' if lv is None else lv}":
                       [[t, round(a["objective"], 4)] for t, a in curve]
                       for m, p, lv, curve in results},
        "n_tasks": n_tasks, "ks": list(KS), "hit": HIT,
        "neighbour_share": share_curve,
        "adaptive": adaptive_curve,
    })
    out = {"metric": metric.to_dict(), "threshold": thr, "power": power, "level": level,
           "validation": validation}
    if share is not None:
        out["neighbour_share"] = share
    if adaptive is not None:
        out["adaptive"] = adaptive
    return out


def _calibrate_share(per_cat: list[tuple[str, ScoreTable, list[TaskDescription]]],
                     metric: SimilarityMetric, threshold: float, power: float,
                     level: float | None,
                     models: dict[tuple[str, int], np.ndarray] | None = None,
                     ) -> tuple[float | None, dict[str, float]]:
    """Inner leave-one-task-out of the neighbours/meta-model mix: for every task that has
    neighbours, a meta-model fitted without the task's group ranks the seeds together with
    the neighbours' runs; returns the share of the neighbours (of :data:`SHARES`) with the
    best mean log-speedup proxy, and every share's value. None without scikit-learn."""
    from cmf_core.recommend.recommender import MODEL_LEVEL
    from cmf_core.recommend.surrogate import MIN_TASKS, MetaModel

    logs: dict[float, list[float]] = {s: [] for s in SHARES}
    for _, table, tasks in per_cat:
        sim = similarity_matrix(tasks, metric)
        groups = [t.group or t.id for t in tasks]
        U = table.normalised
        for t in range(len(tasks)):
            others = [i for i in range(len(tasks)) if groups[i] != groups[t]]
            nb = [i for i in others if sim[t, i] >= threshold]
            if not nb or len(others) < MIN_TASKS:
                continue
            try:
                P = MetaModel(table, tasks, rows_used=others).scenarios(tasks[t])
            except ImportError:
                return None, {}
            if models is not None:
                models[table.category, t] = P
            w = np.maximum(sim[t, nb], 1e-9) ** power
            lv = [HIT if level is None else level] * len(nb) + [MODEL_LEVEL] * len(P)
            for share in SHARES:
                wa = np.concatenate([w / w.sum() * share, np.full(len(P), (1 - share) / len(P))])
                order = greedy_portfolio(np.vstack([U[nb], P]), wa, max(KS), level=lv)
                logs[share] += proxy_log_speedups(order, U[t])
    if not logs[SHARES[0]]:
        return None, {}
    curve = {f"{s:g}": round(float(np.mean(v)), 4) for s, v in logs.items()}
    best = max(SHARES, key=lambda s: (float(np.mean(logs[s])), s))
    return best, curve


def inner_scenarios(table: ScoreTable, tasks: Sequence[TaskDescription], sim: np.ndarray,
                    t: int, threshold: float, power: float, level: float | None,
                    share: float | None,
                    models: dict[tuple[str, int], np.ndarray] | None = None,
                    ) -> Scenarios | None:
    """The scenarios ``recommend()`` would choose seeds from for task ``t`` with its group
    left out (neighbours' runs, meta-model trees when ``share`` < 1, else the portfolio);
    None when no other group is left. ``models`` caches tree predictions per task."""
    from cmf_core.recommend.recommender import HIT_LEVEL, MODEL_LEVEL, NEIGHBOUR_SHARE
    from cmf_core.recommend.surrogate import MIN_TASKS, MetaModel

    groups = [x.group or x.id for x in tasks]
    others = [i for i in range(len(tasks)) if groups[i] != groups[t]]
    if not others:
        return None
    U = table.normalised
    configs = tuple(table.configs)
    nb = [i for i in others if sim[t, i] >= threshold]

    def recorded(rows: list[int], n_trees: int = 0) -> np.ndarray | None:
        R = comparable_scores(table.scores[rows], [tasks[i].metric for i in rows],
                              tasks[t].metric)
        return R if R is None or not n_trees else \
            np.vstack([R, np.full((n_trees, R.shape[1]), np.nan)])

    if not nb:
        n = len(others)
        return Scenarios(U[others], np.full(n, 1.0 / n),
                         None if level is None else np.full(n, float(level)), configs,
                         scores=recorded(others))
    w = np.maximum(sim[t, nb], 1e-9) ** power
    w = w / w.sum()
    share = NEIGHBOUR_SHARE if share is None else share
    P = None
    if share < 1.0 and len(others) >= MIN_TASKS:
        key = (table.category, t)
        P = models.get(key) if models is not None else None
        if P is None:
            try:
                P = MetaModel(table, tasks, rows_used=others).scenarios(tasks[t])
            except ImportError:
                P = None
            if P is not None and models is not None:
                models[key] = P
    if P is None:
        lv = HIT_LEVEL if level is None and share >= 1.0 else level
        return Scenarios(U[nb], w, None if lv is None else np.full(len(nb), float(lv)),
                         configs, scores=recorded(nb))
    lvs = [HIT_LEVEL if level is None else level] * len(nb) + [MODEL_LEVEL] * len(P)
    wa = np.concatenate([w * share, np.full(len(P), (1 - share) / len(P))])
    return Scenarios(np.vstack([U[nb], P]), wa, np.asarray(lvs, float), configs,
                     scores=recorded(nb, len(P)))


def calibrate_adaptive(kb: KnowledgeBase,
                       calibration: dict[str, Any]) -> tuple[dict[str, float], dict[str, float]]:
    """Only the adaptive-seeding step of :func:`calibrate`, for a knowledge base and a
    calibration that has the other keys (metric, threshold, power, level, share)."""
    per_cat = _per_category(kb)
    metric = SimilarityMetric.from_dict(calibration["metric"])
    return _calibrate_adaptive(per_cat, metric, float(calibration["threshold"]),
                               float(calibration.get("power", 1.0)), calibration.get("level"),
                               calibration.get("neighbour_share"))


def _calibrate_adaptive(per_cat: list[tuple[str, ScoreTable, list[TaskDescription]]],
                        metric: SimilarityMetric, threshold: float, power: float,
                        level: float | None, share: float | None,
                        models: dict[tuple[str, int], np.ndarray] | None = None,
                        ) -> tuple[dict[str, float], dict[str, float]]:
    """Inner leave-one-task-out of adaptive seeding: for every task, the seeder's scenarios
    as ``recommend()`` builds them without the task's group, its observations the task's
    scores (a configuration the task did not run: its worst score). Returns the (``beta``,
    ``covered_weight``, ``sigma``) of :data:`BETAS` x :data:`COVERED_WEIGHTS` x
    :data:`SIGMAS` with the best mean log-speedup proxy (ties: the smaller values), then,
    with those fixed, the ``refine_after`` of :data:`REFINE_AFTERS` that does best (ties:
    the first, i.e. 0 before any local step), and every rule's value."""
    from cmf_core.recommend.adaptive import adaptive_order

    cases = []
    for _, table, tasks in per_cat:
        sim = similarity_matrix(tasks, metric)
        U, S = table.normalised, table.scores
        for t in range(len(tasks)):
            scen = inner_scenarios(table, tasks, sim, t, threshold, power, level, share, models)
            if scen is None or not np.isfinite(S[t]).any():
                continue
            worst = float(np.nanmin(S[t]))
            cases.append((scen, np.where(np.isfinite(S[t]), S[t], worst), U[t]))
    if not cases:
        return {"beta": 0.0, "covered_weight": 0.0, "sigma": 0.0, "refine_after": 0}, {}

    def quality(beta: float, cw: float, sigma: float, refine_after: int) -> float:
        return float(np.mean([x for scen, y, u in cases for x in proxy_log_speedups(
            adaptive_order(scen, lambda c, y=y: float(y[c]), max(KS), beta, cw, sigma,
                           refine_after), u)]))

    rules = [(b, c, s) for b in BETAS for c in COVERED_WEIGHTS for s in SIGMAS]
    mean = {r: quality(*r, 0) for r in rules}
    best = max(rules, key=lambda r: (round(mean[r], 9), -r[0], -r[1], -r[2]))
    curve = {_rule_text(r): round(mean[r], 4) for r in rules}
    local = {m: mean[best] if m == 0 else quality(*best, m) for m in REFINE_AFTERS}
    refine_after = max(REFINE_AFTERS, key=lambda m: (round(local[m], 9), -REFINE_AFTERS.index(m)))
    curve.update({f"{_rule_text(best)},refine_after={m}": round(v, 4)
                  for m, v in local.items() if m})
    return {"beta": best[0], "covered_weight": best[1], "sigma": best[2],
            "refine_after": refine_after}, curve


def _rule_text(rule: tuple[float, float, float]) -> str:
    return f"beta={rule[0]:g},covered={rule[1]:g},sigma={rule[2]:g}"


def _validate(per_cat: list[tuple[str, ScoreTable, list[TaskDescription]]],
              metric: SimilarityMetric, threshold: float) -> dict[str, Any]:
    sims, agrees, edges = [], [], 0
    for _, table, tasks in per_cat:
        sim = similarity_matrix(tasks, metric)
        agree = rank_agreement(table)
        for a in range(len(tasks)):
            for b in range(a + 1, len(tasks)):
                ga, gb = tasks[a].group or tasks[a].id, tasks[b].group or tasks[b].id
                if ga == gb or not np.isfinite(agree[a, b]):
                    continue
                sims.append(sim[a, b])
                agrees.append(agree[a, b])
                edges += sim[a, b] >= threshold
    s, r = np.array(sims), np.array(agrees)
    out: dict[str, Any] = {"pairs": len(s), "edges": int(edges)}
    if len(s) >= 3:
        out["spearman_similarity_vs_agreement"] = round(float(stats.spearmanr(s, r).statistic), 4)
        on = s >= threshold
        out["agreement_on_edges"] = round(float(r[on].mean()), 4) if on.any() else None
        out["agreement_off_edges"] = round(float(r[~on].mean()), 4) if (~on).any() else None
    return out
