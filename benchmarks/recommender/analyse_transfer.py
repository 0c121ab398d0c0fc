"""Why do seeds from similar tasks help only so much? Diagnostics over the knowledge base.

For every pair of same-category tasks from different groups: how good task b's best
configuration is on task a (``transfer``: a's normalised score there, 0 = a's median random
configuration, 1 = a's best, clipped to [0, 1]), against their meta-feature similarity, their
configuration-rank agreement, and each meta-feature's difference. Per task: how many
configurations reach the benchmark's target (95% of the gap from the median random
configuration to the best), whether any other task's best configuration does, and how early
the best single other task's ranking reaches it (``oracle``: the position of the first
hitting configuration in that task's order, best over the other tasks; a seed rule that knew
which one past task to follow could do no better with that task's ranking).

    nice -n 19 .venv/bin/python benchmarks/recommender/analyse_transfer.py

With ``--twins KB`` (a knowledge base built with ``build_kb.py --retrain``) it reports instead
how well each task's twin on a fresh 70% sample of its data ranks the task's own hitting
configurations: the position of the first one in the twin's order (best first).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from scipy import stats

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
for p in (ROOT, HERE):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import loto  # noqa: E402

from cmf_core.recommend import knowledge  # noqa: E402
from cmf_core.recommend.calibrate import (  # noqa: E402
    FEATURES,
    feature_matrix,
    rank_agreement,
    similarity_matrix,
)
from cmf_core.recommend.graph import SimilarityMetric  # noqa: E402


def first_hit(normalised: np.ndarray, hits: np.ndarray) -> int | None:
    """1-based position of the first configuration in ``hits`` when ordered by
    ``normalised`` (best first, missing scores last); None when none is."""
    order = np.argsort(-np.nan_to_num(normalised, nan=-np.inf), kind="stable")
    return next((i + 1 for i, c in enumerate(order) if hits[c]), None)


def chance_within(n: int, hits: int, k: int, rankings: int) -> float:
    """Probability that the best of ``rankings`` random orders of ``n`` configurations (of
    which ``hits`` hit) has a hit within its first ``k``."""
    miss = math.comb(n - hits, k) / math.comb(n, k) if k <= n else 0.0
    return 1.0 - miss ** rankings


def twins(path: Path) -> str:
    """Per task with a ``<name>@retrain`` twin in ``path``: where the twin's ranking first
    reaches the task's target; the counts within k = 1, 3, 5, 10."""
    kb = knowledge.load(path)
    by_name = {t.name: t for t in kb.tasks.values()}
    first = {}
    for name, task in sorted(by_name.items()):
        twin = by_name.get(f"{name}@retrain")
        if twin is None:
            continue
        table = kb.table(task.category.value)
        tg = loto.targets(kb, task.id)
        hits = table.scores[table.row(task.id)] >= tg["target"] - 1e-12
        first[name] = first_hit(table.normalised[table.row(twin.id)], hits)
    within = ", ".join(f"{k}: {sum(p is not None and p <= k for p in first.values())}"
                       for k in (1, 3, 5, 10))
    return (f"{len(first)} tasks with a twin on a fresh sample; the twin's ranking reaches the "
            f"task's target within k = {within} (first positions: "
            + ", ".join(f"{n} {p or '-'}" for n, p in first.items()) + ")")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--twins", type=Path, help="a knowledge base built with --retrain")
    args = ap.parse_args(argv)
    if args.twins:
        print(twins(args.twins))
        return 0
    kb = knowledge.load(loto.DEFAULT_KB)
    metric = SimilarityMetric.from_dict(kb.calibration["metric"])
    pairs, per_task = [], []
    for cat in kb.categories():
        table = kb.table(cat)
        tasks = [kb.tasks[t] for t in table.task_ids]
        n = len(tasks)
        tg = [loto.targets(kb, t) for t in table.task_ids]
        G = np.array([(table.scores[i] - tg[i]["median_random"])
                      / max(tg[i]["best"] - tg[i]["median_random"], 1e-12) for i in range(n)])
        hit = np.array([table.scores[i] >= tg[i]["target"] - 1e-12 for i in range(n)])
        F, sim, agree = feature_matrix(tasks), similarity_matrix(tasks, metric), \
            rank_agreement(table)
        for a in range(n):
            others = [b for b in range(n) if tasks[b].group != tasks[a].group]
            best_of = {b: int(np.nanargmax(G[b])) for b in others}
            nearest = max(others, key=lambda b: sim[a, b]) if others else None
            oracle = min((first_hit(G[b], hit[a]) for b in others), default=None,
                         key=lambda r: r if r is not None else np.inf)
            per_task.append({
                "task": tasks[a].name, "category": cat, "configs": len(table.configs),
                "hitting": int(hit[a].sum()),
                "others_best_hits": sum(bool(hit[a, best_of[b]]) for b in others),
                "oracle": oracle,
                "oracle_null": {k: chance_within(len(table.configs), int(hit[a].sum()), k,
                                                 len(others)) for k in (1, 3, 5, 10)},
                "nearest": tasks[nearest].name if nearest is not None else "-",
                "nearest_transfer": float(np.clip(G[a, best_of[nearest]], 0, 1))
                if nearest is not None else float("nan")})
            for b in others:
                pairs.append((float(np.clip(G[a, best_of[b]], 0, 1)), sim[a, b], agree[a, b],
                              np.abs(F[a] - F[b])))
    tr = np.array([p[0] for p in pairs])
    sm = np.array([p[1] for p in pairs])
    ag = np.array([p[2] for p in pairs])
    D = np.array([p[3] for p in pairs])
    lines = [
        f"Knowledge base: {len(kb)} tasks; {len(pairs)} ordered pairs of same-category tasks "
        "from different groups. transfer(a <- b) = a's normalised score at b's best "
        "configuration (0 = a's median random configuration, 1 = a's best), clipped to [0, 1].",
        "",
        f"- mean transfer: {tr.mean():.3f}; share of pairs where b's best reaches a's target "
        f"(>= 0.95): {np.mean(tr >= 0.95):.3f}",
        f"- Spearman(similarity [{metric.name}], transfer) = "
        f"{stats.spearmanr(sm, tr).statistic:.3f}",
        f"- Spearman(rank agreement over all configurations, transfer) = "
        f"{stats.spearmanr(ag[np.isfinite(ag)], tr[np.isfinite(ag)]).statistic:.3f} "
        "(needs the new task's runs, so not available to a recommender)",
        "",
        "Spearman(|meta-feature difference|, transfer); negative = a smaller difference goes "
        "with better transfer:",
        "",
        "| meta-feature | rho | pairs |",
        "|---|---|---|",
    ]
    rows = []
    for f, name in enumerate(FEATURES):
        ok = np.isfinite(D[:, f])
        if ok.sum() >= 30 and np.ptp(D[ok, f]) > 0:
            rows.append((float(stats.spearmanr(D[ok, f], tr[ok]).statistic), name,
                         int(ok.sum())))
    lines += [f"| {name} | {r:+.3f} | {c} |" for r, name, c in sorted(rows)]
    lines += ["", "Per task: configurations reaching the target; other tasks whose best "
              "configuration reaches it; the most similar task and its best's transfer:", "",
              "| task | category | hitting / configs | other tasks' best hits | oracle | nearest | "
              "nearest's best transfer |", "|---|---|---|---|---|---|---|"]
    for t in per_task:
        lines.append(f"| {t['task']} | {t['category']} | {t['hitting']} / {t['configs']} | "
                     f"{t['others_best_hits']} | {t['oracle'] or '-'} | {t['nearest']} | "
                     f"{t['nearest_transfer']:.2f} |")
    none = sum(t["others_best_hits"] == 0 for t in per_task)
    lines += ["", f"{none} of {len(per_task)} tasks: no other task's best configuration reaches "
              "their target."]
    lines += ["", "Oracle (the best single other task's ranking, taken from its top): tasks "
              "reached within k = " + ", ".join(
                  f"{k}: {sum(t['oracle'] is not None and t['oracle'] <= k for t in per_task)}"
                  for k in (1, 3, 5, 10)) + f" of {len(per_task)}; with as many random "
              "rankings in their place, by chance: " + ", ".join(
                  f"{k}: {sum(t['oracle_null'][k] for t in per_task):.1f}"
                  for k in (1, 3, 5, 10)) + "."]
    out = HERE / "results" / "transfer.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:8]))
    print(f"report: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
