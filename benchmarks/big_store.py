"""A store after a year of use, built through the store's bulk path (``Store.put`` of model
records in large batches, as ``store_bench.py p3`` does), then the everyday commands timed on it.

Shape (``--scale 1.0``): 50 pipelines, 200,000 executions, of which 100,000 in one pipeline
(``nightly-retrain``: 25,000 rounds of ingest -> features -> retrain -> evaluate, each retrain
warm-starting from the previous model, so the last model ends a 25,000-round chain); ~400,000
artifacts; 3 scalar metrics per execution plus ``--stepped`` executions with 10,000 step
metrics each; an energy record per execution; 100,000 raw OpenLineage events. Times spread
over the year before ``--end``. ``--scale`` shrinks every count.

    .venv/bin/python benchmarks/big_store.py build /tmp/bigstore/cmf.db [--scale 1.0]

``add-runs`` adds scored runs that count in the recommender's knowledge base (``cmf.task``
property, ``model`` param, ``score`` metric; one ``hpo-<task>`` pipeline per task of the shipped
knowledge base, configurations cycled from it), spread over the same year:

    .venv/bin/python benchmarks/big_store.py add-runs /tmp/bigstore/cmf.db --runs 20000

``--curve STEPS`` also gives each run a per-step ``score`` curve (the same runs: run it again
on a store with runs to add just the curves).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cmf_core.identity import remote_digest
from cmf_core.model import (
    Artifact,
    EnergyRecord,
    Event,
    Execution,
    LineageEvent,
    Metric,
    Pipeline,
    Stage,
)
from cmf_core.store import open_store

SITE = "site-a"
YEAR = 365 * 86400.0
NS = uuid.UUID("0b7c7c39-5b4e-4d0e-8f57-2d1c7d1e0b42")


def _uuid(*parts: object) -> str:
    return str(uuid.uuid5(NS, "/".join(map(str, parts))))


def _art(uri: str, type: str, t: float) -> Artifact:
    return Artifact(id=remote_digest(uri, "1"), type=type, name=uri.rsplit("/", 1)[-1], uri=uri,
                    site=SITE, created_at=t)


def _energy(ex_id: str, t: float, rng: random.Random) -> EnergyRecord:
    kwh = rng.uniform(0.001, 0.5)
    return EnergyRecord(ex_id, SITE, kwh * 1.2, kwh * 1.2 * 0.35, {
        "components": {"cpu": {"kwh": kwh, "method": "model"}}, "it_kwh": kwh,
        "duration_s": 600.0, "started_at": t, "pue": 1.2, "intensity_g_per_kwh": 350.0,
        "intensity_source": "static", "region": "FR", "notes": []})


def build(path: Path, scale: float, stepped: int, steps: int, end: float) -> dict:
    rng = random.Random(7)
    store = open_store(f"sqlite:///{path}", site=SITE)
    start = end - YEAR
    batch: list = []
    counts = {"executions": 0, "artifacts": 0, "metrics": 0, "energy": 0, "ol_events": 0}

    def flush(force: bool = False) -> None:
        if batch and (force or len(batch) >= 50_000):
            store.put(batch)
            batch.clear()

    def run(pipeline: str, stage: str, t: float, ins: list[Artifact], outs: list[Artifact],
            params: dict) -> str:
        ex_id = _uuid(pipeline, stage, t, counts["executions"])
        ex = Execution(pipeline=pipeline, stage=stage, site=SITE, id=ex_id, started_at=t,
                       params=params).ended(ended_at=t + rng.uniform(30, 3600))
        batch.extend(outs)
        batch.append(ex)
        batch.extend(Event(ex_id, a.id, "INPUT") for a in ins)
        batch.extend(Event(ex_id, a.id, "OUTPUT") for a in outs)
        batch.extend(Metric(ex_id, m, rng.random(), None, t + 60) for m in ("auc", "f1", "loss"))
        batch.append(_energy(ex_id, t, rng))
        counts["executions"] += 1
        counts["artifacts"] += len(outs)
        counts["metrics"] += 3
        counts["energy"] += 1
        flush()
        return ex_id

    stages4 = ("ingest", "features", "retrain", "evaluate")
    # the big one: 25,000 rounds (hourly-ish over the year), one warm-started model chain
    big = "nightly-retrain"
    store.put([Pipeline(big, SITE, created_at=start)] +
              [Stage(big, s, SITE, created_at=start) for s in stages4])
    rounds = int(25_000 * scale)
    raw = [_art(f"s3://lake/raw/part{i}.parquet", "Dataset", start) for i in range(200)]
    batch.extend(raw)
    model = _art("s3://models/nightly/m0.pkl", "Model", start)
    batch.append(model)
    retrain_ids = []
    for k in range(1, rounds + 1):
        t = start + YEAR * k / (rounds + 1)
        data = _art(f"s3://lake/nightly/batch{k}.parquet", "Dataset", t)
        run(big, "ingest", t, [rng.choice(raw)], [data], {"day": k})
        feats = _art(f"s3://lake/nightly/feats{k}.parquet", "Dataset", t + 60)
        run(big, "features", t + 60, [data], [feats], {"window": 7})
        new = _art(f"s3://models/nightly/m{k}.pkl", "Model", t + 120)
        retrain_ids.append(run(big, "retrain", t + 120, [model, feats], [new],
                               {"lr": rng.choice([0.1, 0.03, 0.01]),
                                "max_depth": rng.randint(3, 10)}))
        report = _art(f"s3://reports/nightly/eval{k}.json", "Metrics", t + 180)
        run(big, "evaluate", t + 180, [new, feats], [report], {})
        model = new
    flush(True)
    last_model = model.id
    # 49 other pipelines sharing the rest: 4 stages, 3 outputs per execution
    other = int(100_000 * scale)
    per_pipe = other // 49
    for p in range(1, 50):
        name = f"team{p % 7}-pipe{p}"
        store.put([Pipeline(name, SITE, created_at=start)] +
                  [Stage(name, s, SITE, created_at=start)
                   for s in ("clean", "features", "train", "evaluate")])
        for r in range(per_pipe // 4):
            t = start + rng.random() * YEAR
            prev = [rng.choice(raw)]
            for i, st in enumerate(("clean", "features", "train", "evaluate")):
                kind = "Model" if st == "train" else "Metrics" if st == "evaluate" else "Dataset"
                outs = [_art(f"s3://{name}/r{r}/{st}/out{j}", kind, t) for j in range(3)]
                run(name, st, t + 60 * i, prev, outs,
                    {"lr": rng.choice([0.1, 0.01]), "n_estimators": rng.choice([100, 300])}
                    if st == "train" else {})
                prev = outs[:1]
    flush(True)
    # stepped metrics: the last retrains logged a loss curve of ``steps`` steps
    for ex_id in retrain_ids[-stepped:]:
        store.put([Metric(ex_id, "train_loss", 1.0 / (s + 1), s, end - 1000 + s * 0.01)
                   for s in range(steps)])
        counts["metrics"] += steps
    # raw OpenLineage events (as an Airflow deployment sends them: START + COMPLETE per run)
    n_ol = int(100_000 * scale)
    for i in range(n_ol):
        run_id = _uuid("ol", i // 2)
        etype = "START" if i % 2 == 0 else "COMPLETE"
        ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + YEAR * i / n_ol))
        body = json.dumps({
            "eventType": etype, "eventTime": ts, "producer": "https://airflow.example/ol",
            "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
            "run": {"runId": run_id}, "job": {"namespace": "airflow", "name": f"dag{i % 40}.t"},
            "inputs": [{"namespace": "s3://lake", "name": f"in/{i % 500}"}],
            "outputs": [{"namespace": "s3://lake", "name": f"out/{i % 700}"}]},
            sort_keys=True, separators=(",", ":"))
        batch.append(LineageEvent(id=remote_digest(body, "ol"), body=body, run_id=run_id,
                                  event_type=etype, event_time=ts))
        counts["ol_events"] += 1
        flush()
    flush(True)
    store.close()
    counts.update(last_model=last_model, stepped_executions=retrain_ids[-stepped:],
                  db_mb=round(path.stat().st_size / 1e6, 1))
    return counts


def add_runs(path: Path, n_runs: int, end: float, curve: int = 0) -> dict:
    """``n_runs`` knowledge-base runs over the tasks of the shipped knowledge base; with
    ``curve``, each run also logs its score per step (``curve`` steps, a training curve). The
    runs' ids and values do not depend on ``curve``: a second ``add-runs`` with ``--curve`` on
    the same store adds the curves to the runs already there."""
    from cmf_core.model import Metric
    from cmf_core.recommend.knowledge import shipped, trial_records

    rng = random.Random(11)
    kb = shipped()
    tasks = list(kb.tasks.values())
    store = open_store(f"sqlite:///{path}", site=SITE)
    batch: list = []
    for i in range(n_runs):
        task = tasks[i % len(tasks)]
        runs = kb.runs[task.id]
        config = runs[(i // len(tasks)) % len(runs)].config
        score = rng.random()
        batch.extend(trial_records(task, config, score, site=SITE,
                                   seconds=rng.uniform(0.1, 30),
                                   execution_id=_uuid("kb-run", i),
                                   started_at=end - YEAR + rng.random() * YEAR))
        batch.extend(Metric(_uuid("kb-run", i), "score", score * (1 - 0.5 ** (k + 1)), k, 0.0)
                     for k in range(curve))
        if len(batch) >= 50_000:
            store.put(batch)
            batch.clear()
    store.put(batch)
    store.close()
    return {"runs": n_runs, "tasks": len(tasks), "curve": curve,
            "db_mb": round(path.stat().st_size / 1e6, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("path", type=Path)
    b.add_argument("--scale", type=float, default=1.0)
    b.add_argument("--stepped", type=int, default=20)
    b.add_argument("--steps", type=int, default=10_000)
    b.add_argument("--end", type=float, default=time.time())
    r = sub.add_parser("add-runs")
    r.add_argument("path", type=Path)
    r.add_argument("--runs", type=int, default=20_000)
    r.add_argument("--curve", type=int, default=0, help="steps of a per-step score curve")
    r.add_argument("--end", type=float, default=time.time())
    c = sub.add_parser("cli")
    c.add_argument("path", type=Path)
    c.add_argument("info", type=Path, help="the JSON line build printed")
    c.add_argument("--repeat", type=int, default=3)
    c.add_argument("--only", help="only the commands whose label holds this")
    args = ap.parse_args()
    if args.cmd == "cli":
        time_cli(args.path, args.info, args.repeat, args.only)
        return
    if args.cmd == "add-runs":
        t0 = time.perf_counter()
        res = add_runs(args.path, args.runs, args.end, args.curve)
        res["build_s"] = round(time.perf_counter() - t0, 1)
        print(json.dumps(res))
        return
    if args.path.exists():
        raise SystemExit(f"{args.path} exists: give a new path")
    t0 = time.perf_counter()
    res = build(args.path, args.scale, args.stepped, args.steps, args.end)
    res["build_s"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(res))


def cli_commands(info: dict) -> list[tuple[str, list[str]]]:
    """The everyday commands timed by ``cli`` (label, argv after ``cmf``)."""
    stepped = info["stepped_executions"][-1]
    return [
        ("pipelines", ["pipelines"]),
        ("executions", ["executions"]),
        ("executions --limit 1000", ["executions", "--limit", "1000"]),
        ("executions --pipeline big", ["executions", "--pipeline", "nightly-retrain"]),
        ("executions --pipeline big --stage retrain --offset 20000",
         ["executions", "--pipeline", "nightly-retrain", "--stage", "retrain",
          "--offset", "20000"]),
        ("executions --pipeline small", ["executions", "--pipeline", "team3-pipe10"]),
        ("executions --since", ["executions", "--since", info["since"], "--limit", "100"]),
        ("executions --status failed", ["executions", "--status", "failed"]),
        ("show <id prefix> (10,000 steps)", ["show", stepped[:8]]),
        ("lineage <last model>", ["lineage", info["last_model"]]),
        ("lineage <last model> --depth 8", ["lineage", info["last_model"], "--depth", "8"]),
        ("carbon --by pipeline", ["carbon", "--by", "pipeline"]),
        ("carbon <big pipeline> --by stage", ["carbon", "nightly-retrain", "--by", "stage"]),
        ("carbon --by day", ["carbon", "--by", "day"]),
        ("peers", ["peers"]),
        ("spool status", ["spool", "status"]),
        ("reap --dry-run", ["reap", "--dry-run"]),
        ("recommend", ["recommend", "--task", info["task_file"], "--store", info["url"]]),
    ]


def time_cli(path: Path, info_file: Path, repeat: int, only: str | None) -> None:
    import os
    import statistics
    import subprocess

    info = json.loads(info_file.read_text())
    info["url"] = f"sqlite:///{path}"
    info.setdefault("since", time.strftime("%Y-%m-%d", time.gmtime(time.time() - 30 * 86400)))
    # a new task for `cmf recommend`: a shipped classification task, renamed
    from cmf_core.recommend.knowledge import shipped

    task = next(t for t in shipped().tasks.values() if t.category.value == "classification")
    info["task_file"] = str(path.parent / "recommend-task.json")
    Path(info["task_file"]).write_text(json.dumps({
        **{k: v for k, v in task.to_dict().items() if k not in ("id", "group")},
        "name": "new-task"}))
    env = {**os.environ, "CMF_STORE_URL": info["url"], "COLUMNS": "200"}
    for label, argv in cli_commands(info):
        if only and only not in label:
            continue
        times, rss = [], 0
        for _ in range(repeat):
            t0 = time.perf_counter()
            p = subprocess.run(["/usr/bin/time", "-f", "%M", sys.executable, "-m", "cmf_core",
                                *argv], env=env, capture_output=True, text=True)
            times.append(time.perf_counter() - t0)
            rss = max(rss, int(p.stderr.strip().splitlines()[-1]))
        print(f"{label:58s} median {statistics.median(times):7.2f} s  "
              f"({' '.join(f'{t:.2f}' for t in times)})  rc {p.returncode}  "
              f"peak RSS {rss / 1024:.0f} MB  out {len(p.stdout.splitlines())} lines", flush=True)


if __name__ == "__main__":
    main()
