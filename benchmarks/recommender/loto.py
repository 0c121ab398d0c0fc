"""Leave-one-task-out benchmark of the recommender's seeds for Optuna's TPE.

For every target task of the knowledge base (KB):

* the target's group (the task and its near-duplicates) is removed from the KB, and the
  similarity metric, threshold, weight power, seed rule and neighbour share are re-calibrated
  on what is left (no peeking);
* arms, each with the same budget, the same TPE settings (Optuna defaults, seeded) and the
  same search space (cmf_core.recommend.space.suggest_config):
  ``cold`` (no seeds); ``kg`` (the recommender's top-k); ``random`` (the same greedy choice
  from randomly drawn tasks of the category, as many as the KG neighbours); ``portfolio``
  (the same greedy choice over every task of the category, equal weights); the baselines use
  the calibrated seed rule too, so the arms differ only in where the seeds come from; k in
  --ks;
* a trial's score is looked up in the target's precomputed table (every configuration of the
  grid was scored once with fixed folds by build_kb.py): replaying is exact and fast;
* target score = median random configuration + 95% of the gap to the best-known score (the
  exhaustive grid's best); trials to target are censored at budget + 1. Wall-clock to target
  = the recorded fit times of the trials + the sampler's own time + (seeded arms) the
  recommender's overhead (the target's description + the recommend() call).

With ``--adaptive`` every seeded arm chooses its seeds adaptively
(:mod:`cmf_core.recommend.adaptive`): the first as before, each next one after the target's
scores on the previous ones, from the arm's scenarios (KG: the recommender's neighbours and
meta-model trees; random: the random tasks; portfolio: every task), with ``beta``,
``sigma`` (the score likelihood against past tasks of the target's metric) and
``refine_after`` (local steps around the best configuration so far), in every arm alike,
re-calibrated without the target like the rest; the seeder runs as an Optuna callback, so its
time is in the wall-clock. Outputs go to ``results/loto-adaptive.*`` (``--stem`` names them).

Report: per arm and k the geometric-mean speedup in trials (and wall-clock) over cold TPE with
a bootstrap 95% CI over tasks, the median, the share of tasks reaching the target, the final
normalised score at full budget, a per-task table, and plots.

    nice -n 19 .venv/bin/python benchmarks/recommender/loto.py --jobs 2
    nice -n 19 .venv/bin/python benchmarks/recommender/loto.py --jobs 2 --ks 5 10 --adaptive
    nice -n 19 .venv/bin/python benchmarks/recommender/loto.py --jobs 2 --ks 5 10 --adaptive \
        --stem loto-adaptive2
    .venv/bin/python benchmarks/recommender/loto.py --smoke
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import datetime as dt
import json
import math
import multiprocessing as mp
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cmf_core.recommend import knowledge  # noqa: E402
from cmf_core.recommend.adaptive import (  # noqa: E402
    BETA,
    COVERED_WEIGHT,
    REFINE_AFTER,
    SIGMA,
    AdaptiveSeeder,
)
from cmf_core.recommend.calibrate import calibrate  # noqa: E402
from cmf_core.recommend.graph import SimilarityMetric  # noqa: E402
from cmf_core.recommend.recommender import (  # noqa: E402
    Scenarios,
    comparable_scores,
    greedy_portfolio,
    recommend,
)
from cmf_core.recommend.space import (  # noqa: E402
    config_key,
    sample_config,
    suggest_config,
    to_optuna_params,
)
from cmf_core.recommend.task import (  # noqa: E402
    DEFAULT_GROUPS,
    META_FEATURES,
    TaskDescription,
)

ARMS = ("cold", "kg", "random", "portfolio")
GAP = 0.95
HEADLINE_K = 5  # chosen before running: the default k of recommend()
DEFAULT_KB = ROOT / "cmf_core" / "recommend" / "data" / knowledge.SHIPPED_FILE
RESULTS = HERE / "results"


# per-task preparation -------------------------------------------------------------------------
def targets(kb: knowledge.KnowledgeBase, task_id: str, n_random: int = 4000) -> dict[str, Any]:
    """Best-known score, median random configuration (drawn like a random searcher over the
    same space), and the score that closes ``GAP`` of the gap."""
    task = kb.tasks[task_id]
    lookup = {k: r.score for k, r in kb.run_lookup(task_id).items()}
    rng = np.random.default_rng(12345)
    worst = min(lookup.values())
    draws = [lookup.get(config_key(sample_config(rng, task.category.value)), worst)
             for _ in range(n_random)]
    best, med = max(lookup.values()), float(np.median(draws))
    return {"best": best, "median_random": med, "target": med + GAP * (best - med)}


def named(kb: knowledge.KnowledgeBase, ids: list[str], names: list[str]) -> list[str]:
    """The ids among ``ids`` of the tasks called ``names``, in that order; ValueError naming
    the unknown ones."""
    by_name = {kb.tasks[t].name: t for t in ids}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise ValueError(f"unknown task(s) {', '.join(missing)}")
    return [by_name[n] for n in names]


def query_description(task: TaskDescription, groups: str) -> TaskDescription:
    """The target as a new user would describe it: ``all`` meta-feature groups (as stored in
    the KB) or only the ``default`` (cheap) ones."""
    if groups == "all":
        return task
    keep = {m.name for m in META_FEATURES if m.group in DEFAULT_GROUPS}
    data = task.to_dict()
    data["meta_features"] = {k: v for k, v in data["meta_features"].items() if k in keep}
    return TaskDescription.from_dict(data)


def seed_lists(kb: knowledge.KnowledgeBase, task_id: str, kmax: int, seeds: int,
               calibrate_inner: bool, query_groups: str = "all") -> dict[str, Any]:
    """Seeds of every arm for one target (the KG and portfolio ones are seed-independent)."""
    task = kb.tasks[task_id]
    rest = kb.without(task_ids=[task_id], groups=[task.group] if task.group else [])
    t0 = time.perf_counter()
    cal = calibrate(rest) if calibrate_inner else dict(kb.calibration)
    calib_s = time.perf_counter() - t0
    rest.calibration = cal
    rec = recommend(query_description(task, query_groups), k=kmax, knowledge=rest)
    rec_s = rec.elapsed_s
    category = task.category.value
    table = rest.table(category)
    same = list(range(len(table.task_ids)))
    level = cal.get("level")  # the calibrated seed rule, used by every seeded arm alike
    portfolio = [table.configs[j] for j in greedy_portfolio(table.normalised, [1.0] * len(same),
                                                            kmax, level=level)]
    m = max(1, len(rec.neighbours))
    random_arm, random_scen = [], []
    configs = tuple(table.configs)

    def levels(n: int) -> np.ndarray | None:
        return None if level is None else np.full(n, float(level))

    def recorded(rows: list[int]) -> np.ndarray | None:  # scores on the target's scale
        return comparable_scores(table.scores[rows], [rest.tasks[table.task_ids[i]].metric
                                                      for i in rows], task.metric)

    for s in range(seeds):
        rng = np.random.default_rng([s, sum(map(ord, task_id))])
        rows = sorted(rng.choice(same, size=min(m, len(same)), replace=False).tolist())
        cols = greedy_portfolio(table.normalised[rows], [1.0] * len(rows), kmax, level=level)
        random_arm.append([table.configs[j] for j in cols])
        random_scen.append(Scenarios(table.normalised[rows], np.full(len(rows), 1 / len(rows)),
                                     levels(len(rows)), configs, scores=recorded(rows)))
    adaptive = cal.get("adaptive") or {}
    return {"kg": rec.configs(), "portfolio": portfolio, "random": random_arm,
            "scenarios": {"kg": rec.scenarios, "random": random_scen,
                          "portfolio": Scenarios(table.normalised,
                                                 np.full(len(same), 1 / len(same)),
                                                 levels(len(same)), configs,
                                                 scores=recorded(same))},
            "beta": float(adaptive.get("beta", BETA)),
            "covered_weight": float(adaptive.get("covered_weight", COVERED_WEIGHT)),
            "sigma": float(adaptive.get("sigma", SIGMA)),
            "refine_after": int(adaptive.get("refine_after", REFINE_AFTER)),
            "strategy": rec.strategy.value, "neighbours": [n.name for n in rec.neighbours],
            "metric": SimilarityMetric.from_dict(cal["metric"]).name if cal.get("metric")
            else "uniform", "threshold": cal.get("threshold"), "recommend_s": rec_s,
            "calibrate_s": calib_s, "message": rec.message, "level": level,
            "neighbour_share": cal.get("neighbour_share"),
            "power": cal.get("power")}


# replay ---------------------------------------------------------------------------------------
def replay(category: str, lookup: dict[str, float], seconds: dict[str, float], budget: int,
           seed: int, enqueue: list[dict[str, Any]],
           stop_at: float | None = None,
           seeder: AdaptiveSeeder | None = None) -> dict[str, Any]:
    """One TPE study of ``budget`` trials against the score table; with ``stop_at`` it ends
    once the best score reaches it (trials to target are then known; the final score not).
    With ``seeder``, its seeds are enqueued one at a time by its Optuna callback."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    sampler = optuna.samplers.TPESampler(seed=seed)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    for cfg in enqueue:
        study.enqueue_trial(to_optuna_params(cfg))
    configs: list[dict[str, Any]] = []
    worst = min(lookup.values())
    stamps = [time.perf_counter()]  # the seeder's time (first seed included) is counted
    callbacks = []
    if seeder is not None:
        seeder.enqueue_first(study)
        callbacks.append(seeder.optuna_callback())

    def objective(trial: Any) -> float:
        cfg = suggest_config(trial, category)
        configs.append(cfg)
        return lookup.get(config_key(cfg), worst)  # a configuration that failed to fit

    def callback(st: Any, tr: Any) -> None:
        stamps.append(time.perf_counter())
        if stop_at is not None and tr.value is not None and tr.value >= stop_at - 1e-12:
            st.stop()

    study.optimize(objective, n_trials=budget, callbacks=[*callbacks, callback])
    scores = [t.value for t in study.trials]
    overhead = list(np.diff(stamps))
    evals = [seconds.get(config_key(c), 0.0) for c in configs]
    return {"scores": scores, "configs": [config_key(c) for c in configs], "overhead": overhead,
            "eval_s": evals}


def summarise_run(run: dict[str, Any], tg: dict[str, Any], budget: int,
                  extra_s: float) -> dict[str, Any]:
    best = np.maximum.accumulate(np.asarray(run["scores"], float))
    hit = np.flatnonzero(best >= tg["target"] - 1e-12)
    per_trial = np.asarray(run["eval_s"]) + np.asarray(run["overhead"])
    if len(hit):
        n = int(hit[0]) + 1
        wall = extra_s + float(per_trial[:n].sum())
    else:
        n = budget + 1
        wall = extra_s + float(per_trial.sum()) + float(per_trial.mean())
    if len(best) < budget:  # stopped at the target: trials to target only
        return {"trials": n, "wall_s": wall, "final": None, "curve": None}
    gap = tg["best"] - tg["median_random"]
    final = (best[-1] - tg["median_random"]) / gap if gap > 0 else 1.0
    curve = ((best - tg["median_random"]) / gap).tolist() if gap > 0 else [1.0] * len(best)
    return {"trials": n, "wall_s": wall, "final": float(final), "curve": curve}


def run_task(args: tuple[str, str, int, int, tuple[int, ...], bool, str, bool]
             ) -> dict[str, Any]:
    kb_path, task_id, seeds, budget, ks, calibrate_inner, query_groups, adaptive = args
    full_k = HEADLINE_K if HEADLINE_K in ks else ks[-1]
    kb = knowledge.load(kb_path)
    task = kb.tasks[task_id]
    category = task.category.value
    tg = targets(kb, task_id)
    prep = seed_lists(kb, task_id, max(ks), seeds, calibrate_inner, query_groups)
    runs = {task_id: kb.run_lookup(task_id)}
    lookup = {k: r.score for k, r in runs[task_id].items()}
    secs = {k: (r.seconds or 0.0) for k, r in runs[task_id].items()}
    describe_s = float((kb.build.get("describe_s") or {}).get(task.name, 0.0))
    overhead = describe_s + prep["recommend_s"]
    out: dict[str, Any] = {"task": task.name, "task_id": task_id, "category": category,
                           "modality": task.modality.value, "targets": tg,
                           "strategy": prep["strategy"], "neighbours": prep["neighbours"],
                           "metric": prep["metric"], "threshold": prep["threshold"],
                           "recommend_s": prep["recommend_s"], "describe_s": describe_s,
                           "calibrate_s": prep["calibrate_s"], "message": prep["message"],
                           "level": prep["level"], "power": prep["power"],
                           "neighbour_share": prep["neighbour_share"],
                           "adaptive": {"beta": prep["beta"],
                                        "covered_weight": prep["covered_weight"],
                                        "sigma": prep["sigma"],
                                        "refine_after": prep["refine_after"]}
                           if adaptive else None,
                           "seeds_first_ok": True, "runs": {}}
    seed_keys = {"kg": [config_key(c) for c in prep["kg"]],
                 "portfolio": [config_key(c) for c in prep["portfolio"]]}
    for s in range(seeds):
        arms: list[tuple[str, int, list[dict[str, Any]]]] = [("cold", 0, [])]
        for k in ks:
            arms += [("kg", k, prep["kg"][:k]), ("random", k, prep["random"][s][:k]),
                     ("portfolio", k, prep["portfolio"][:k])]
        for arm, k, enq in arms:
            full = arm == "cold" or k == full_k
            seeder = None
            if adaptive and arm != "cold":
                scen = prep["scenarios"][arm]
                seeder = AdaptiveSeeder(scen[s] if arm == "random" else scen, k,
                                        prep["beta"], prep["covered_weight"], prep["sigma"],
                                        prep["refine_after"])
            run = replay(category, lookup, secs, budget, s, [] if seeder else enq,
                         stop_at=None if full else tg["target"], seeder=seeder)
            if seeder is not None:
                enq = seeder.given
            done = min(len(enq), len(run["configs"]))  # a study may stop at the target
            if [config_key(c) for c in enq][:done] != run["configs"][:done]:
                out["seeds_first_ok"] = False
            res = summarise_run(run, tg, budget, overhead if enq else 0.0)
            res["first"] = run["configs"][:len(enq)]
            out["runs"].setdefault(f"{arm}@{k}" if arm != "cold" else "cold", []).append(res)
    if adaptive:  # the KG arm's adaptive seeds at the headline k, per TPE seed
        seed_keys["kg_adaptive"] = [r["first"] for r in out["runs"][f"kg@{full_k}"]]
    out["seed_configs"] = seed_keys
    return out


# statistics -----------------------------------------------------------------------------------
def geo_mean(x: np.ndarray) -> float:
    return float(np.exp(np.mean(np.log(x))))


def bootstrap_ci(ratios: np.ndarray, n: int = 10000, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(ratios), (n, len(ratios)))
    means = np.exp(np.log(ratios)[idx].mean(axis=1))
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def analyse(tasks: list[dict[str, Any]], budget: int, ks: tuple[int, ...]) -> dict[str, Any]:
    arms = ["cold"] + [f"{a}@{k}" for k in ks for a in ("kg", "random", "portfolio")]
    per_task = []
    for t in tasks:
        row: dict[str, Any] = {"task": t["task"], "category": t["category"],
                               "strategy": t["strategy"], "neighbours": len(t["neighbours"])}
        for arm in arms:
            runs = t["runs"][arm]
            finals = [r["final"] for r in runs if r["final"] is not None]
            row[arm] = {"trials": float(np.mean([r["trials"] for r in runs])),
                        "wall_s": float(np.mean([r["wall_s"] for r in runs])),
                        "final": float(np.mean(finals)) if len(finals) == len(runs) else None,
                        "reached": float(np.mean([r["trials"] <= budget for r in runs]))}
        per_task.append(row)
    summary: dict[str, Any] = {}
    cold_t = np.array([r["cold"]["trials"] for r in per_task])
    cold_w = np.array([r["cold"]["wall_s"] for r in per_task])
    cold_f = np.array([r["cold"]["final"] for r in per_task])
    for arm in arms:
        trials = np.array([r[arm]["trials"] for r in per_task])
        wall = np.array([r[arm]["wall_s"] for r in per_task])
        has_final = all(r[arm]["final"] is not None for r in per_task)
        final = np.array([r[arm]["final"] if has_final else np.nan for r in per_task])
        entry: dict[str, Any] = {
            "mean_trials": float(trials.mean()),
            "reached": float(np.mean([r[arm]["reached"] for r in per_task])),
            "final_mean": float(final.mean()) if has_final else None,
        }
        if arm != "cold":
            sp, spw = cold_t / trials, cold_w / wall
            lo, hi = bootstrap_ci(sp)
            wlo, whi = bootstrap_ci(spw)
            entry.update({
                "speedup_geomean": geo_mean(sp), "speedup_ci95": [lo, hi],
                "speedup_median": float(np.median(sp)),
                "wall_speedup_geomean": geo_mean(spw), "wall_speedup_ci95": [wlo, whi],
                "wall_speedup_median": float(np.median(spw)),
                "slowdowns": int((sp < 1).sum()), "ties": int((sp == 1).sum()),
                "final_worse_than_cold": int((final < cold_f - 0.01).sum()) if has_final
                else None,
            })
        summary[arm] = entry
    curves = {}
    for arm in arms:
        if all(r["curve"] is not None for t in tasks for r in t["runs"][arm]):
            curves[arm] = np.mean([np.mean([r["curve"] for r in t["runs"][arm]], axis=0)
                                   for t in tasks], axis=0).tolist()
    return {"arms": summary, "per_task": per_task, "curves": curves,
            "paired": paired(per_task, ks)}


def paired(per_task: list[dict[str, Any]], ks: tuple[int, ...]) -> dict[str, Any]:
    """KG against each baseline arm, per task (mean trials of the baseline / of KG): geometric
    mean with a bootstrap 95% CI over tasks, and how many tasks KG is faster / slower on."""
    out: dict[str, Any] = {}
    for k in ks:
        for base in ("random", "portfolio"):
            r = np.array([t[f"{base}@{k}"]["trials"] / t[f"kg@{k}"]["trials"]
                          for t in per_task])
            lo, hi = bootstrap_ci(r)
            out[f"kg_vs_{base}@{k}"] = {"geomean": geo_mean(r), "ci95": [lo, hi],
                                        "kg_faster": int((r > 1).sum()),
                                        "kg_slower": int((r < 1).sum())}
    return out


# report ---------------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip()
                   for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor()
    return {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version()}


def _num(v: Any, fmt: str = "{:.3f}") -> str:
    return "-" if v is None else fmt.format(v)


def markdown(report: dict[str, Any]) -> str:
    a = report["analysis"]["arms"]
    cfg = report["config"]
    ks = cfg["ks"]
    lines = [
        f"Command: `{cfg['command']}`  ",
        f"Date: {report['date']}; machine: {report['machine']['nproc']} CPUs, "
        f"{report['machine']['cpu']}; Python {report['machine']['python']}; "
        f"wall time {report['wall_s'] / 60:.1f} min.  ",
        *(["Seeds: **adaptive** in every seeded arm (each next seed chosen after the target's "
            "scores on the previous ones; cmf_core.recommend.adaptive, beta, sigma and "
            "refine_after re-calibrated without the target).  "] if cfg.get("adaptive") else []),
        f"{cfg['n_tasks']} target tasks x {cfg['seeds']} TPE seeds, budget {cfg['budget']} "
        f"trials, target = median random configuration + {GAP:.0%} of the gap to the best-known "
        "score; trials censored at budget + 1. Speedup = mean trials of cold TPE / mean trials "
        "of the arm, per task; geometric mean over tasks with a bootstrap 95% CI (tasks "
        "resampled). Final score = best score after the full budget, normalised (0 = median "
        f"random configuration, 1 = best known); measured for cold TPE and k = "
        f"{HEADLINE_K if HEADLINE_K in ks else ks[-1]} (the other seeded studies stop at the "
        "target, '-').",
        "",
        "| arm | k | geo-mean speedup (trials) [95% CI] | median | wall-clock geo-mean [95% CI] "
        "| tasks slower | reached target | final score (norm.) | final worse than cold |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| cold TPE | 0 | 1 | 1 | 1 | - | {a['cold']['reached']:.0%} | "
        f"{a['cold']['final_mean']:.3f} | - |",
    ]
    for k in ks:
        for arm in ("kg", "random", "portfolio"):
            e = a[f"{arm}@{k}"]
            lines.append(
                f"| {arm} | {k} | {e['speedup_geomean']:.2f}x [{e['speedup_ci95'][0]:.2f}, "
                f"{e['speedup_ci95'][1]:.2f}] | {e['speedup_median']:.2f}x | "
                f"{e['wall_speedup_geomean']:.2f}x [{e['wall_speedup_ci95'][0]:.2f}, "
                f"{e['wall_speedup_ci95'][1]:.2f}] | {e['slowdowns']} | {e['reached']:.0%} | "
                f"{_num(e['final_mean'])} | {_num(e['final_worse_than_cold'], '{}')} |")
    if "paired" in report["analysis"]:
        lines += ["", "KG against the baselines, paired per task (trials of the baseline / of "
                  "KG; > 1: KG faster):", "",
                  "| k | KG vs random tasks [95% CI] | faster / slower | KG vs portfolio "
                  "[95% CI] | faster / slower |", "|---|---|---|---|---|"]
        pr = report["analysis"]["paired"]
        for k in ks:
            r, p = pr[f"kg_vs_random@{k}"], pr[f"kg_vs_portfolio@{k}"]
            lines.append(f"| {k} | {r['geomean']:.2f}x [{r['ci95'][0]:.2f}, {r['ci95'][1]:.2f}]"
                         f" | {r['kg_faster']} / {r['kg_slower']} | {p['geomean']:.2f}x "
                         f"[{p['ci95'][0]:.2f}, {p['ci95'][1]:.2f}] | {p['kg_faster']} / "
                         f"{p['kg_slower']} |")
    k = HEADLINE_K if HEADLINE_K in ks else ks[-1]
    lines += ["", f"Per task (k = {k}; mean trials to target over seeds, {cfg['budget'] + 1} = "
              "not reached; speedup = cold / kg):", "",
              "| task | category | seeds from | cold | kg | random | portfolio | speedup "
              "| final cold | final kg |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["analysis"]["per_task"]:
        src = f"{r['neighbours']} similar" if r["strategy"] == "similar_tasks" else r["strategy"]
        kg = r[f"kg@{k}"]
        lines.append(
            f"| {r['task']} | {r['category']} | {src} | {r['cold']['trials']:.1f} | "
            f"{kg['trials']:.1f} | {r[f'random@{k}']['trials']:.1f} | "
            f"{r[f'portfolio@{k}']['trials']:.1f} | {r['cold']['trials'] / kg['trials']:.2f}x | "
            f"{r['cold']['final']:.3f} | {kg['final']:.3f} |")
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], out_dir: Path, stem: str) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    an = report["analysis"]
    ks = report["config"]["ks"]
    k = HEADLINE_K if HEADLINE_K in ks else ks[-1]
    paths = []
    rows = sorted(an["per_task"], key=lambda r: r["cold"]["trials"] / r[f"kg@{k}"]["trials"])
    fig, ax = plt.subplots(figsize=(9, max(4, 0.25 * len(rows))))
    sp = [r["cold"]["trials"] / r[f"kg@{k}"]["trials"] for r in rows]
    ax.barh([r["task"] for r in rows], sp,
            color=["tab:red" if s < 1 else "tab:green" for s in sp])
    ax.set_xscale("log")
    ax.axvline(1, color="k", lw=0.8)
    ax.set_xlabel(f"speedup in trials to target, KG seeds (k={k}) vs cold TPE (log scale)")
    ax.set_title("Leave-one-task-out: per-task speedup")
    fig.tight_layout()
    p = out_dir / f"{stem}-speedup.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    paths.append(p)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    x = np.arange(1, report["config"]["budget"] + 1)
    for arm, style in (("cold", "k-"), (f"kg@{k}", "g-"), (f"random@{k}", "b--"),
                       (f"portfolio@{k}", "m:")):
        ax.plot(x, an["curves"][arm], style, label=arm)
    ax.axhline(GAP, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("trial")
    ax.set_ylabel("best so far (0 = median random, 1 = best known)")
    low = min(min(c) for c in an["curves"].values())
    ax.set_ylim(min(0.0, low) - 0.02, 1.02)
    ax.legend()
    ax.set_title("Mean anytime performance over target tasks")
    fig.tight_layout()
    p = out_dir / f"{stem}-anytime.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    paths.append(p)
    return paths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kb", type=Path, default=DEFAULT_KB)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--budget", type=int, default=50)
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 3, 5, 10])
    ap.add_argument("--tasks", nargs="*", help="target task names (default: every task)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--no-recalibrate", action="store_true",
                    help="use the KB's calibration instead of re-calibrating without the target")
    ap.add_argument("--query-groups", choices=("all", "default"), default="all",
                    help="meta-feature groups of the target's description given to recommend()"
                         " (all = with landmarks, as stored in the KB)")
    ap.add_argument("--adaptive", action="store_true",
                    help="every seeded arm picks its seeds adaptively (cmf_core.recommend."
                         "adaptive); outputs results/loto-adaptive.*")
    ap.add_argument("--stem", help="name of the output files in --out (default: loto, "
                    "loto-adaptive, ... from the options)")
    ap.add_argument("--smoke", action="store_true",
                    help="3 tasks (one per category), 2 seeds, budget 15")
    ap.add_argument("--no-plots", action="store_true")
    args = ap.parse_args(argv)
    started = time.perf_counter()
    kb = knowledge.load(args.kb)
    ids = sorted(kb.tasks)
    if args.smoke:
        args.seeds, args.budget = 2, 15
        firsts: dict[str, str] = {}
        for tid in ids:
            firsts.setdefault(kb.tasks[tid].category.value, tid)
        ids = list(firsts.values())[:3]
    if args.tasks:
        try:
            ids = named(kb, ids, args.tasks)
        except ValueError as e:
            ap.error(str(e))
    jobs = [(str(args.kb), tid, args.seeds, args.budget, tuple(args.ks),
             not args.no_recalibrate, args.query_groups, args.adaptive) for tid in ids]
    results = []
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "loto-smoke" if args.smoke else "loto"
    if args.adaptive:
        stem += "-adaptive"
    if args.query_groups != "all":
        stem += f"-query-{args.query_groups}"
    stem = args.stem or stem
    partial = args.out / f"{stem}.partial.jsonl"
    partial.write_text("")  # one line per finished task, so that an interrupted run keeps them

    def keep(res: dict[str, Any]) -> None:
        results.append(res)
        with partial.open("a") as fh:
            fh.write(json.dumps(res, default=float) + "\n")
        print(f"  {res['task']}: done", flush=True)

    if args.jobs > 1 and len(jobs) > 1:
        with mp.get_context("fork").Pool(args.jobs) as pool:
            for res in pool.imap_unordered(run_task, jobs):
                keep(res)
    else:
        for job in jobs:
            keep(run_task(job))
    results.sort(key=lambda r: ids.index(r["task_id"]))
    report = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "config": {"command": "benchmarks/recommender/loto.py " + " ".join(
            argv if argv is not None else sys.argv[1:]), "seeds": args.seeds,
            "budget": args.budget, "ks": list(args.ks), "n_tasks": len(ids), "gap": GAP,
            "recalibrate": not args.no_recalibrate, "query_groups": args.query_groups,
            "adaptive": args.adaptive,
            "sampler": "optuna TPESampler(seed=s), "
            "defaults", "kb": str(args.kb), "kb_build": kb.build.get("date")},
        "analysis": analyse(results, args.budget, tuple(args.ks)),
        "tasks": [{k: v for k, v in r.items() if k != "runs"} for r in results],
        "seeds_first_ok": all(r["seeds_first_ok"] for r in results),
    }
    report["wall_s"] = time.perf_counter() - started
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.json").write_text(json.dumps(report, indent=1, default=float))
    (args.out / f"{stem}.md").write_text(markdown(report))
    if not args.no_plots:
        plot(report, args.out, stem)
    partial.unlink(missing_ok=True)  # the report holds everything now
    a = report["analysis"]["arms"]
    k = HEADLINE_K if HEADLINE_K in args.ks else args.ks[-1]
    for arm in ("kg", "random", "portfolio"):
        e = a[f"{arm}@{k}"]
        print(f"{arm}@{k}: geo-mean speedup {e['speedup_geomean']:.2f}x "
              f"[{e['speedup_ci95'][0]:.2f}, {e['speedup_ci95'][1]:.2f}], median "
              f"{e['speedup_median']:.2f}x, wall {e['wall_speedup_geomean']:.2f}x")
    print(f"report: {args.out / (stem + '.md')} ({report['wall_s']:.0f} s)")
    return 0 if math.isfinite(report["wall_s"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
