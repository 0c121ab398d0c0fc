"""Choosing and validating the similarity metric and the edge threshold.

Validation signal: two tasks are truly similar for our purpose when the same configurations
do well on both, i.e. their configuration rankings agree (Spearman correlation of their scores
over the configurations both ran). :func:`calibrate`:

1. computes that rank agreement for every pair of tasks of the same category from different
   groups (near-duplicates excluded);
2. builds candidate metrics: uniform weights over the default meta-feature groups, uniform
   weights over all groups (with landmarks), and weights learned by non-negative least squares
   so that the weighted meta-feature distance predicts rank disagreement;
3. for every candidate, weight power (neighbour weight = similarity ** power) and threshold,
   scores the recommendations themselves by an inner
   leave-one-task-out over the knowledge base: each task in turn is the new task, its group is
   left out, seeds come from its neighbours (or the portfolio when it has none), and the
   quality is how close the best of the top-k seeds gets to that task's best run
   (``k`` in 1, 3, 5, 10), counting hits at >= 95% of the median-to-best gap;
4. keeps the best (metric, power, threshold), and reports the correlation between similarity
   and rank agreement, rank agreement on edges versus non-edges, and the quality against the
   portfolio.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import optimize, stats

from cmf_core.recommend.graph import SimilarityMetric, default_weights
from cmf_core.recommend.knowledge import KnowledgeBase, ScoreTable
from cmf_core.recommend.recommender import greedy_portfolio
from cmf_core.recommend.task import ALL_GROUPS, META_FEATURES, TaskDescription

THRESHOLDS: tuple[float, ...] = tuple(round(x, 3) for x in np.arange(0.50, 0.985, 0.02))
POWERS: tuple[float, ...] = (1.0, 4.0, 16.0)
KS: tuple[int, ...] = (1, 3, 5, 10)
HIT = 0.95
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


def _candidates(kb: KnowledgeBase) -> list[SimilarityMetric]:
    cands = [SimilarityMetric("uniform", default_weights()),
             SimilarityMetric("uniform+landmark", default_weights(ALL_GROUPS))]
    learned: dict[str, float] = {}
    for cat in kb.categories():
        table = kb.table(cat)
        tasks = [kb.tasks[t] for t in table.task_ids]
        w = learn_weights(tasks, rank_agreement(table), [t.group for t in tasks])
        for f, v in w.items():  # categories' weights pooled: mean of the normalised vectors
            learned[f] = learned.get(f, 0.0) + v / max(sum(w.values()), 1e-12)
    if learned:
        cands.append(SimilarityMetric("learned", learned))
    return cands


def inner_quality(table: ScoreTable, tasks: Sequence[TaskDescription], sim: np.ndarray,
                  threshold: float, ks: Sequence[int] = KS,
                  power: float = 1.0) -> dict[str, float]:
    """Mean over tasks and ``ks`` of the best normalised score among the seeds, the hit rate
    (>= :data:`HIT`), and the share of tasks that had a neighbour."""
    n = len(tasks)
    groups = [t.group or t.id for t in tasks]
    U = table.normalised
    quality, hits, covered = [], [], 0
    for t in range(n):
        others = np.array([g != groups[t] for g in groups])
        if not others.any():
            continue
        nb = others & (sim[t] >= threshold)
        if nb.any():
            covered += 1
            rows, w = np.flatnonzero(nb), np.maximum(sim[t, nb], 1e-9) ** power
        else:
            rows = np.flatnonzero(others)
            w = np.ones(len(rows))
        order = greedy_portfolio(U[rows], w, max(ks))
        for k in ks:
            vals = U[t, order[:k]]
            best = float(np.nanmax(vals)) if np.isfinite(vals).any() else 0.0
            quality.append(max(best, 0.0))
            hits.append(best >= HIT)
    if not quality:
        return {"quality": 0.0, "hit_rate": 0.0, "coverage": 0.0, "objective": 0.0}
    q, h = float(np.mean(quality)), float(np.mean(hits))
    return {"quality": q, "hit_rate": h, "coverage": covered / n, "objective": (q + h) / 2}


def calibrate(kb: KnowledgeBase, thresholds: Sequence[float] = THRESHOLDS,
              candidates: Sequence[SimilarityMetric] | None = None,
              powers: Sequence[float] = POWERS) -> dict[str, Any]:
    """Choose the similarity metric and threshold for ``kb`` (see module docs).

    Returns the calibration dict stored in a knowledge base file: ``metric``, ``threshold``
    and ``validation`` (per-candidate objective curve and the chosen pair's statistics).
    """
    cands = list(candidates) if candidates is not None else _candidates(kb)
    per_cat = []
    for cat in kb.categories():
        table = kb.table(cat)
        tasks = [kb.tasks[t] for t in table.task_ids]
        if len(tasks) >= 2:
            per_cat.append((cat, table, tasks))
    n_tasks = sum(len(t) for _, _, t in per_cat)
    results = []
    for metric in cands:
        sims = [similarity_matrix(tasks, metric) for _, _, tasks in per_cat]
        for power in powers:
            curve = []
            for thr in [*thresholds, 1.01]:
                agg = {"quality": 0.0, "hit_rate": 0.0, "coverage": 0.0, "objective": 0.0}
                for (_, table, tasks), sim in zip(per_cat, sims, strict=True):
                    q = inner_quality(table, tasks, sim, thr, power=power)
                    for key in agg:
                        agg[key] += q[key] * len(tasks) / max(n_tasks, 1)
                curve.append((thr, agg))
            results.append((metric, power, curve))
    portfolio = results[0][2][-1][1] if results else {}
    best_obj, best = -1.0, None
    for metric, power, curve in results:
        for thr, agg in curve[:-1]:
            if agg["objective"] > best_obj + 1e-9:
                best_obj, best = agg["objective"], (metric, power, thr, agg)
    if best is None:
        metric, power, thr, agg = SimilarityMetric(), 1.0, 0.8, {}
    else:
        metric, power, thr, agg = best
    validation = _validate(per_cat, metric, thr)
    validation.update({
        "chosen": {k: round(v, 4) for k, v in agg.items()},
        "portfolio": {k: round(v, 4) for k, v in portfolio.items()},
        "candidates": {f"{m.name}^{p:g}": [[t, round(a["objective"], 4)] for t, a in curve]
                       for m, p, curve in results},
        "n_tasks": n_tasks, "ks": list(KS), "hit": HIT,
    })
    return {"metric": metric.to_dict(), "threshold": thr, "power": power,
            "validation": validation}


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
