"""Proxy of adaptive seeding (no TPE): static seed lists against seeds chosen with feedback.

For every task of the shipped knowledge base, as in the leave-one-task-out benchmark: the
task's group is left out, the knowledge base is calibrated without it (by default the
calibrations of the recorded LOTO run, ``results/loto-query-default.json``, which were computed
without each target's group; ``--recalibrate`` recomputes them, ``--shipped-calibration`` uses
the shipped one), and ``recommend()`` builds the scenarios (neighbours' runs, meta-model trees
where the calibrated neighbour share is < 1). Then:

* ``static``: the recommender's seed list (greedy min-sum set cover);
* ``adaptive``: seed j+1 is chosen after seeing the task's scores on seeds 1..j: each scenario's
  weight is multiplied by a pairwise-concordance likelihood of the observed order
  (``prod sigmoid(beta * (U_s[a] - U_s[b]) * sign(y_a - y_b))``), then one more greedy
  set-cover step over the reweighted scenarios (tried configurations excluded, scenarios hit
  by a tried configuration count as covered). With ``sigma > 0`` (``--sigmas``), scenarios
  that are past tasks scored with the target's metric are also weighted by the Gaussian
  likelihood of the target's raw scores around theirs (``cmf_core.recommend.adaptive``).

The same for the baselines of the benchmark (random tasks, portfolio). Reported: hits within
k = 1, 3, 5, 10 seeds (normalised score >= 0.95), the mean position of the first hit, and the
calibration's proxy log speedup (first hit position, else k + a random searcher's expected
trials; ``calibrate.inner_quality``).

    nice -n 19 .venv/bin/python benchmarks/recommender/adaptive_proxy.py --betas 0 1 3 10 30
    nice -n 19 .venv/bin/python benchmarks/recommender/adaptive_proxy.py --jobs 2 \
        --betas 0 3 10 30 --sigmas 0 0.03 0.1 0.3 \
        --out benchmarks/recommender/results/adaptive2-proxy.json
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import copy
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
for path in (ROOT, HERE):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from loto import bootstrap_ci, geo_mean, named  # noqa: E402

from cmf_core.recommend import knowledge  # noqa: E402
from cmf_core.recommend.adaptive import (  # noqa: E402
    BETA,
    COVERED_WEIGHT,
    REFINE_AFTER,
    SIGMA,
    adaptive_order,
)
from cmf_core.recommend.calibrate import (  # noqa: E402
    BUDGET,
    HIT,
    calibrate,
    calibrate_adaptive,
    cold_trials,
)
from cmf_core.recommend.graph import SimilarityMetric, default_weights  # noqa: E402
from cmf_core.recommend.recommender import (  # noqa: E402
    Scenarios,
    comparable_scores,
    recommend,
)
from cmf_core.recommend.space import config_key  # noqa: E402
from cmf_core.recommend.task import ALL_GROUPS  # noqa: E402

KS = (1, 3, 5, 10)
CALS = HERE / "results" / "loto-query-default.json"


def recorded_calibrations(path: Path) -> dict[str, dict[str, Any]]:
    """Per-target calibrations of a recorded LOTO run (each computed without the target's
    group); the metrics are the fixed candidates ``uniform`` / ``uniform+landmark``."""
    out = {}
    for t in json.loads(path.read_text())["tasks"]:
        groups = ALL_GROUPS if t["metric"] == "uniform+landmark" else None
        if t["metric"] not in ("uniform", "uniform+landmark"):
            raise SystemExit(f"{t['task']}: metric {t['metric']} cannot be rebuilt; "
                             "use --recalibrate")
        w = default_weights(groups) if groups else default_weights()
        out[t["task_id"]] = {"metric": SimilarityMetric(t["metric"], w).to_dict(),
                             "threshold": t["threshold"], "power": t["power"],
                             "level": t["level"], "neighbour_share": t["neighbour_share"]}
    return out


def evaluate(order: Sequence[int], hit_of: np.ndarray, cold: float) -> dict[str, Any]:
    hit_at = next((i + 1 for i, c in enumerate(order) if hit_of[c]), None)
    out: dict[str, Any] = {"first_hit": hit_at}
    for k in KS:
        hit = hit_at is not None and hit_at <= k
        trials = hit_at if hit else min(k + cold, BUDGET + 1.0)
        out[f"hit@{k}"] = hit
        out[f"log@{k}"] = math.log(cold / trials)
    return out


def run_task(args: tuple[str, str, str, tuple[tuple[float, float, float, int], ...], int]
             ) -> dict[str, Any]:
    kb_path, task_id, cal_mode, rules, n_random = args
    kb = knowledge.load(kb_path)
    task = kb.tasks[task_id]
    category = task.category.value
    rest = kb.without(task_ids=[task_id], groups=[task.group] if task.group else [])
    if cal_mode == "recalibrate":
        rest.calibration = calibrate(rest)
    elif cal_mode.startswith("of:"):  # another knowledge base's, as a store merged with it has
        rest.calibration = copy.deepcopy(knowledge.load(cal_mode[3:]).calibration)
        rest.calibration.setdefault("adaptive", {"beta": BETA, "covered_weight": COVERED_WEIGHT,
                                                 "sigma": SIGMA, "refine_after": REFINE_AFTER}
                                    )  # what rec.seeder() uses
    elif cal_mode != "shipped":
        rest.calibration = recorded_calibrations(Path(cal_mode))[task_id]
    if "adaptive" not in rest.calibration:
        rest.calibration["adaptive"], _ = calibrate_adaptive(rest, rest.calibration)
    chosen = (rest.calibration["adaptive"]["beta"],
              rest.calibration["adaptive"]["covered_weight"],
              rest.calibration["adaptive"].get("sigma", 0.0),
              int(rest.calibration["adaptive"].get("refine_after", REFINE_AFTER)))
    rec = recommend(task, k=max(KS), knowledge=rest)
    scen = rec.scenarios
    assert scen is not None
    full = kb.table(category)
    row = full.normalised[full.row(task_id)]
    raw = full.scores[full.row(task_id)]
    col_of = {config_key(c): j for j, c in enumerate(full.configs)}
    cols = np.array([col_of.get(config_key(c), -1) for c in scen.configs])
    worst = float(np.nanmin(raw))
    hit_of = np.array([c >= 0 and np.isfinite(row[c]) and row[c] >= HIT for c in cols])
    y_of = np.array([raw[c] if c >= 0 and np.isfinite(raw[c]) else worst for c in cols])
    cold = cold_trials(row)
    kmax = max(KS)
    level = rest.calibration.get("level")
    table = rest.table(category)
    n = len(table.task_ids)

    def recorded(rows: list[int]) -> np.ndarray | None:
        return comparable_scores(table.scores[rows], [rest.tasks[table.task_ids[i]].metric
                                                      for i in rows], task.metric)

    arms: dict[str, Scenarios | list[Scenarios]] = {
        "kg": scen,
        "portfolio": Scenarios(table.normalised, np.full(n, 1.0 / n),
                               None if level is None else np.full(n, float(level)), scen.configs,
                               scores=recorded(list(range(n)))),
    }
    m = max(1, len(rec.neighbours))
    randoms = []
    for s in range(n_random):
        rng = np.random.default_rng([s, sum(map(ord, task_id))])
        rows = sorted(rng.choice(n, size=min(m, n), replace=False).tolist())
        randoms.append(Scenarios(table.normalised[rows], np.full(len(rows), 1.0 / len(rows)),
                                 None if level is None else np.full(len(rows), float(level)),
                                 scen.configs, scores=recorded(rows)))
    arms["random"] = randoms
    out: dict[str, Any] = {"task": task.name, "category": category, "cold": cold,
                           "adaptive": rest.calibration["adaptive"],
                           "strategy": rec.strategy.value, "hits_in_grid": int(hit_of.sum()),
                           "static_matches_seeds": [config_key(scen.configs[c]) for c in
                                                    scen.order(kmax)] ==
                           [config_key(c) for c in rec.configs()], "arms": {}}
    for arm, sc in arms.items():
        scs = sc if isinstance(sc, list) else [sc]
        res: dict[str, list[dict[str, Any]]] = {"static": []}
        for one in scs:
            res["static"].append(evaluate(one.order(kmax), hit_of, cold))
            for name, (beta, miss, sigma, refine) in [*((rule_name(*r), r) for r in rules),
                                                      ("calibrated", chosen)]:
                t0 = time.perf_counter()
                order = adaptive_order(one, lambda c: float(y_of[c]), kmax, beta, miss, sigma,
                                       refine)
                r = evaluate(order, hit_of, cold)
                r["seconds"] = time.perf_counter() - t0
                res.setdefault(name, []).append(r)
        out["arms"][arm] = res
    return out


def rule_name(beta: float, miss: float, sigma: float = 0.0, refine: int = 0) -> str:
    return (f"beta={beta:g},miss={miss:g}" + (f",sigma={sigma:g}" if sigma else "")
            + (f",refine={refine}" if refine else ""))


def summary(results: list[dict[str, Any]],
            rules: Sequence[tuple[float, float, float, int]]) -> str:
    lines = ["| arm | rule | hits k=1 | k=3 | k=5 | k=10 | proxy speedup k=1 | k=3 | k=5 | "
             "k=10 | mean (k=1,3,5,10) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for arm in ("kg", "random", "portfolio"):
        for rule in ["static", *[rule_name(*r) for r in rules], "calibrated"]:
            hits, logs = [], []
            for k in KS:
                # per task: mean over the arm's draws (random: several task sets)
                hits.append(sum(np.mean([r[f"hit@{k}"] for r in t["arms"][arm][rule]])
                                for t in results))
                logs.append(np.mean([np.mean([r[f"log@{k}"] for r in t["arms"][arm][rule]])
                                     for t in results]))
            h = " | ".join(f"{x:.1f}" if arm == "random" else f"{x:.0f}" for x in hits)
            sp = " | ".join(f"{math.exp(x):.2f}x" for x in logs)
            lines.append(f"| {arm} | {rule} | {h} | {sp} | {float(np.mean(logs)):.3f} |")
    return "\n".join(lines)


def compare_loto(static_path: Path, adaptive_path: Path) -> str:
    """Paired per task: a LOTO run (e.g. static seeds) against another (e.g. adaptive; same
    targets, same TPE seeds): trials of the first / of the second per arm and k, tasks hit
    within the seeds; columns named after the files."""
    st, ad = (json.loads(p.read_text())["analysis"]["per_task"]
              for p in (static_path, adaptive_path))
    by_task = {r["task"]: r for r in st}
    ks = sorted({int(a.split("@")[1]) for a in ad[0] if "@" in a}  # the k both runs have
                & {int(a.split("@")[1]) for a in st[0] if "@" in a})
    same_cold = all(abs(by_task[r["task"]]["cold"]["trials"] - r["cold"]["trials"]) < 1e-9
                    for r in ad)
    a, b = static_path.stem, adaptive_path.stem
    lines = [f"cold arm identical in both runs: {same_cold}", "",
             f"| arm | k | {a} / {b} trials [95% CI] | {b} faster / slower | "
             f"hit within k seeds, {a} -> {b} |", "|---|---|---|---|---|"]
    for k in ks:
        for arm in ("kg", "random", "portfolio"):
            key = f"{arm}@{k}"
            r = np.array([by_task[t["task"]][key]["trials"] / t[key]["trials"] for t in ad])
            lo, hi = bootstrap_ci(r)
            hits = ("-" if arm == "random" else
                    f"{sum(by_task[t['task']][key]['trials'] <= k for t in ad)} -> "
                    f"{sum(t[key]['trials'] <= k for t in ad)}")
            lines.append(f"| {arm} | {k} | {geo_mean(r):.2f}x [{lo:.2f}, {hi:.2f}] | "
                         f"{int((r > 1).sum())} / {int((r < 1).sum())} | {hits} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kb", type=Path,
                    default=ROOT / "cmf_core" / "recommend" / "data" / knowledge.SHIPPED_FILE)
    ap.add_argument("--betas", type=float, nargs="+", default=[0, 1, 3, 10, 30])
    ap.add_argument("--misses", type=float, nargs="+", default=[0.0],
                    help="weight factor of covered scenarios in the cover term")
    ap.add_argument("--sigmas", type=float, nargs="+", default=[0.0],
                    help="spread of the score likelihood (0: order only)")
    ap.add_argument("--refine-afters", type=int, nargs="+", default=[0],
                    help="configurations tried before the local steps start (0: none)")
    cal = ap.add_mutually_exclusive_group()
    cal.add_argument("--recalibrate", action="store_true")
    cal.add_argument("--shipped-calibration", action="store_true")
    cal.add_argument("--calibration-of", type=Path, metavar="KB",
                     help="the calibration of another knowledge base file (e.g. the shipped "
                          "one, as recommend() uses it on a store's runs merged with it), "
                          "with the default adaptive knobs when it has none")
    ap.add_argument("--calibrations", type=Path, default=CALS)
    ap.add_argument("--tasks", nargs="*", help="target task names (default: every task)")
    ap.add_argument("--random-draws", type=int, default=10)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "loto-adaptive-proxy.json")
    ap.add_argument("--compare-loto", type=Path, nargs=2, metavar=("STATIC", "ADAPTIVE"),
                    help="only compare two loto.py reports (e.g. results/loto.json "
                         "results/loto-adaptive.json) paired per task")
    args = ap.parse_args(argv)
    if args.compare_loto:
        print(compare_loto(*args.compare_loto))
        return 0
    mode = "recalibrate" if args.recalibrate else "shipped" if args.shipped_calibration \
        else f"of:{args.calibration_of}" if args.calibration_of else str(args.calibrations)
    kb = knowledge.load(args.kb)
    rules = tuple((b, m, sg, r) for b in args.betas for m in args.misses for sg in args.sigmas
                  for r in args.refine_afters)
    ids = sorted(kb.tasks)
    if args.tasks:
        try:
            ids = named(kb, ids, args.tasks)
        except ValueError as e:
            ap.error(str(e))
    jobs = [(str(args.kb), tid, mode, rules, args.random_draws) for tid in ids]
    started = time.perf_counter()
    if args.jobs > 1:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(args.jobs) as pool:
            results = pool.map(run_task, jobs)
    else:
        results = [run_task(j) for j in jobs]
    text = summary(results, rules)
    print(text)
    same = sum(r["static_matches_seeds"] for r in results)
    print(f"static order = recommend()'s seeds for {same}/{len(results)} tasks; "
          f"{time.perf_counter() - started:.0f} s")
    args.out.write_text(json.dumps({"command": "benchmarks/recommender/adaptive_proxy.py "
                                    + " ".join(argv if argv is not None else sys.argv[1:]),
                                    "summary": text, "tasks": results}, indent=1,
                                   default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
