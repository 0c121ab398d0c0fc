"""Build the shipped recommender knowledge base: real hyperparameter search on a task corpus,
recorded into CMF, exported compactly.

For every task of corpus.py (or ``--tasks``): describe the data (all meta-feature groups), then
score every configuration of the category's grid (cmf_core.recommend.space) with fixed folds:
3-fold stratified CV (ROC AUC for binary, balanced accuracy for multi-class), 3-fold CV R^2 for
regression, point-wise ROC AUC against the injected anomalies for time series. This exhaustive
grid search is the HPO: every configuration is one trial, and its score is also what the
leave-one-task-out benchmark replays (same configuration + same folds = same score).

Each trial is recorded into a CMF store (one pipeline ``hpo-<task>`` per task, one execution
per trial with params = the config, properties['cmf.task'] = the task description, metrics
``score`` and ``fit_time_s``). The knowledge base is then read back from the store
(``cmf_core.recommend.knowledge.from_store``), calibrated (similarity metric + threshold) and
exported to ``cmf_core/recommend/data/kb.json.gz``.

Per-task results are cached as JSON under ``--cache`` so a rerun only scores what is missing.

    nice -n 19 .venv/bin/python benchmarks/recommender/build_kb.py --jobs 2
    .venv/bin/python benchmarks/recommender/build_kb.py --smoke --out /tmp/kb.json.gz
    nice -n 19 .venv/bin/python benchmarks/recommender/build_kb.py --jobs 2 --extended \
        --store-url sqlite:///.tmp/recommender/kb-extended-store.db \
        --out .tmp/recommender/kb-extended.json.gz
    nice -n 10 .venv/bin/python benchmarks/recommender/build_kb.py --jobs 2 --retrain \
        --store-url sqlite:///.tmp/recommender/kb-retrain-store.db \
        --out .tmp/recommender/kb-retrain.json.gz
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import datetime as dt
import json
import multiprocessing as mp
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from corpus import CorpusTask, corpus, extra, retrain  # noqa: E402

from cmf_core.recommend import knowledge  # noqa: E402
from cmf_core.recommend.calibrate import calibrate  # noqa: E402
from cmf_core.recommend.space import anomaly_scores, build_estimator, config_key, grid  # noqa: E402
from cmf_core.recommend.task import (  # noqa: E402
    ALL_GROUPS,
    TaskDescription,
    describe_arrays,
    describe_series,
)

SMOKE_TASKS = ("iris", "clf-small", "mixed-small", "diabetes", "reg-nonlinear-small",
               "ts-spikes-p24", "ts-burst-p30")
DEFAULT_CACHE = ROOT / ".tmp" / "recommender" / "kb-cache"  # .tmp/ is git-ignored
DEFAULT_OUT = ROOT / "cmf_core" / "recommend" / "data" / knowledge.SHIPPED_FILE


def metric_name(task: CorpusTask, y: np.ndarray | None) -> str:
    if task.category == "classification":
        return "roc_auc" if len(np.unique(y)) == 2 else "balanced_accuracy"
    return "r2" if task.category == "regression" else "roc_auc"


def evaluate_task(task: CorpusTask, smoke: bool = False) -> dict[str, Any]:
    """Describe one task and score every configuration of its grid."""
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score

    warnings.filterwarnings("ignore")
    started = time.perf_counter()
    ds = task.load()
    configs = grid(task.category)
    if smoke:  # every 4th configuration: a quick, still varied table
        configs = configs[::4]
    if task.category == "anomaly_detection":
        metric = "roc_auc"
        desc = describe_series(ds.series, category=task.category, name=task.name,
                               groups=ALL_GROUPS, metric=metric, group=task.group)
    else:
        metric = metric_name(task, ds.y)
        desc = describe_arrays(ds.X, ds.y, category=task.category, modality=task.modality,
                               name=task.name, categorical=ds.categorical, groups=ALL_GROUPS,
                               metric=metric, group=task.group)
    desc = TaskDescription.from_dict({**desc.to_dict(), "id": f"corpus/{task.name}"})
    described = time.perf_counter() - started
    scores, seconds = [], []
    if task.category == "anomaly_detection":
        for cfg in configs:
            t0 = time.perf_counter()
            scores.append(float(roc_auc_score(ds.labels, anomaly_scores(cfg, ds.series))))
            seconds.append(time.perf_counter() - t0)
    else:
        X, y = ds.model_matrix(), ds.y
        clf = task.category == "classification"
        cv = (StratifiedKFold if clf else KFold)(3, shuffle=True, random_state=0)
        folds = list(cv.split(X, y))
        for cfg in configs:
            t0 = time.perf_counter()
            est = build_estimator(cfg, task.category)
            s = cross_val_score(est, X, y, cv=folds, scoring=metric, error_score=np.nan)
            scores.append(float(np.nanmean(s)) if np.isfinite(s).any() else float("nan"))
            seconds.append(time.perf_counter() - t0)
    return {"task": desc.to_dict(), "configs": configs, "scores": scores, "seconds": seconds,
            "describe_s": described, "elapsed_s": time.perf_counter() - started,
            "grid": _grid_signature(task.category, smoke)}


def _grid_signature(category: str, smoke: bool) -> str:
    import hashlib

    configs = grid(category)[:: 4 if smoke else 1]
    return hashlib.sha256("\n".join(config_key(c) for c in configs).encode()).hexdigest()[:16]


def _worker(args: tuple[str, bool, str]) -> tuple[str, dict[str, Any]]:
    name, smoke, cache = args
    task = next(t for t in [*corpus(), *extra(), *retrain()] if t.name == name)
    path = Path(cache) / f"{task.name}{'-smoke' if smoke else ''}.json"
    if path.is_file():
        data = json.loads(path.read_text())
        if data.get("grid") == _grid_signature(task.category, smoke):
            return task.name, data
    try:
        data = evaluate_task(task, smoke)
    except Exception as e:  # one broken task must not lose the others' work
        return task.name, {"error": f"{type(e).__name__}: {e}"}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return task.name, data


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version()}


def record(results: dict[str, dict[str, Any]], store_url: str,
           site: str) -> knowledge.KnowledgeBase:
    """Record every trial into the CMF store, then read the knowledge base back from it."""
    from cmf_core.store import open_store

    with open_store(store_url, site) as store:
        for data in results.values():
            task = TaskDescription.from_dict(data["task"])
            records: list[Any] = []
            for cfg, score, secs in zip(data["configs"], data["scores"], data["seconds"],
                                        strict=True):
                if score is None or not np.isfinite(score):
                    continue
                records.extend(knowledge.trial_records(task, cfg, score, site=site,
                                                       seconds=secs))
            store.put(records)
        return knowledge.from_store(store)


def from_results(results: dict[str, dict[str, Any]]) -> knowledge.KnowledgeBase:
    """The knowledge base straight from the scored results (``--no-store``)."""
    tasks, runs = [], {}
    for data in results.values():
        task = TaskDescription.from_dict(data["task"])
        tasks.append(task)
        runs[task.id] = [knowledge.Run(c, s, knowledge.run_id(task.id, c), t)
                         for c, s, t in zip(data["configs"], data["scores"], data["seconds"],
                                            strict=True) if s is not None and np.isfinite(s)]
    return knowledge.KnowledgeBase(tasks, runs)


def recalibrate(path: Path, argv: list[str] | None) -> int:
    """Re-run only the calibration of an exported knowledge base (the scores are kept)."""
    kb = knowledge.load(path)
    t0 = time.perf_counter()
    kb.calibration = calibrate(kb)
    kb.build = {**kb.build, "calibration_s": round(time.perf_counter() - t0, 1),
                "recalibrated": dt.date.today().isoformat(),
                "recalibrate_command": "benchmarks/recommender/build_kb.py "
                + " ".join(argv if argv is not None else sys.argv[1:])}
    knowledge.save(kb, path)
    cal = kb.calibration
    print(f"recalibrated {path}: similarity {cal['metric']['name']}, threshold "
          f"{cal['threshold']}, power {cal['power']}, level {cal.get('level')}, neighbour share "
          f"{cal.get('neighbour_share')}; validation "
          f"{json.dumps({k: v for k, v in cal['validation'].items() if k != 'candidates'})}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--store-url", default=None,
                    help="CMF store to record the trials in (default: sqlite file beside the "
                         "cache)")
    ap.add_argument("--site", default="kb-builder")
    ap.add_argument("--no-store", action="store_true",
                    help="skip the CMF store and export straight from the scores")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--tasks", nargs="*", help="task names (default: the whole corpus)")
    ap.add_argument("--recalibrate", action="store_true",
                    help="only re-run the calibration of the knowledge base file --out (no "
                         "scoring; e.g. after a change to cmf_core.recommend.calibrate)")
    ap.add_argument("--smoke", action="store_true",
                    help=f"tasks {', '.join(SMOKE_TASKS)}, every 4th configuration")
    ap.add_argument("--extended", action="store_true",
                    help="also the 40 random extra tasks of corpus.extra() (a larger knowledge "
                         "base, e.g. --out .tmp/recommender/kb-extended.json.gz)")
    ap.add_argument("--retrain", action="store_true",
                    help="also a twin of each task on a fresh 70%% sample of its data "
                         "(corpus.retrain(): a knowledge base that has seen every task before, "
                         "e.g. --out .tmp/recommender/kb-retrain.json.gz)")
    args = ap.parse_args(argv)
    if args.recalibrate:
        return recalibrate(args.out, argv)

    tasks = corpus() + (extra() if args.extended else []) + (retrain() if args.retrain else [])
    wanted = set(args.tasks or (SMOKE_TASKS if args.smoke else [t.name for t in tasks]))
    unknown = wanted - {t.name for t in tasks}
    if unknown:
        ap.error(f"unknown task(s) {', '.join(sorted(unknown))}")
    tasks = [t for t in tasks if t.name in wanted]
    started = time.perf_counter()
    results: dict[str, dict[str, Any]] = {}
    jobs = [(t.name, args.smoke, str(args.cache)) for t in tasks]
    if args.jobs > 1:
        with mp.get_context("fork").Pool(args.jobs) as pool:
            for name, data in pool.imap_unordered(_worker, jobs):
                results[name] = data
                print(f"  {name}: {len(data.get('scores', []))} configs, "
                      f"{data.get('elapsed_s', 0):.1f}s", flush=True)
    else:
        for job in jobs:
            name, data = _worker(job)
            results[name] = data
            print(f"  {name}: {len(data.get('scores', []))} configs, "
                  f"{data.get('elapsed_s', 0):.1f}s", flush=True)
    failed = {n: d["error"] for n, d in results.items() if "error" in d}
    for name, err in failed.items():
        print(f"  FAILED {name}: {err}", flush=True)
    results = {t.name: results[t.name] for t in tasks if t.name not in failed}
    scored = time.perf_counter() - started
    cpu_s = sum(d["elapsed_s"] for d in results.values())
    if args.no_store:
        kb = from_results(results)
        store_url = None
    else:
        store_url = args.store_url or f"sqlite:///{args.cache.parent / 'kb-store.db'}"
        args.cache.parent.mkdir(parents=True, exist_ok=True)
        kb = record(results, store_url, args.site)
    t0 = time.perf_counter()
    kb.calibration = calibrate(kb)
    calibrated = time.perf_counter() - t0
    kb.build = {
        "date": dt.date.today().isoformat(),
        "command": "benchmarks/recommender/build_kb.py " + " ".join(argv or sys.argv[1:]),
        "machine": machine(),
        "tasks": len(kb), "runs": kb.n_runs,
        "scoring_cpu_s": round(cpu_s, 1), "wall_s": round(time.perf_counter() - started, 1),
        "scoring_wall_s": round(scored, 1), "calibration_s": round(calibrated, 1),
        "store": "recorded" if store_url else "skipped",
        "describe_s": {n: round(d["describe_s"], 3) for n, d in results.items()},
        "failed": failed,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    knowledge.save(kb, args.out)
    cal = kb.calibration
    print(f"knowledge base: {len(kb)} tasks, {kb.n_runs} runs -> {args.out} "
          f"({args.out.stat().st_size / 1024:.0f} KiB)")
    print(f"scoring: {cpu_s:.0f} CPU-s, {scored:.0f} s wall; calibration {calibrated:.1f} s")
    print(f"similarity: {cal['metric']['name']}, threshold {cal['threshold']}; validation "
          f"{json.dumps({k: v for k, v in cal['validation'].items() if k != 'candidates'})}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
