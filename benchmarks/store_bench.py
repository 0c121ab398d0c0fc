"""Store benchmarks P1 (recording throughput) and P3 (lineage closure latency).

P1: record N executions (2 input datasets, 1 output model, 3 params, 3 metrics) through the
public ``Cmf`` API into SQLite; each ended execution is durable (kill -9 safe: journaled) when
``finalize`` returns, and the clock stops once everything is applied to the tables (close).
P3: transitive upstream closure of one model (~1,000+ ancestors) in a generated lineage graph
of about 1,000,000 nodes shaped like real pipelines, on SQLite and on PostgreSQL.

Usage:
    python benchmarks/store_bench.py p1 [--n 10000] [--durability normal|full] [--no-companion]
    python benchmarks/store_bench.py p3 [--nodes 1000000] [--backend sqlite|postgresql|both]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cmf_core import Cmf
from cmf_core.config import load_settings
from cmf_core.identity import remote_digest
from cmf_core.model import Artifact, Event, Execution, Pipeline, Stage
from cmf_core.store import open_store


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def p1(n: int, durability: str, companion: bool = True) -> dict:
    d = Path(tempfile.mkdtemp(prefix="cmf-p1-"))
    settings = load_settings(home=d, site="bench", durability=durability, energy=False,
                             journal_companion=companion)
    url = f"sqlite:///{d / 'cmf.db'}"
    cmf = Cmf(pipeline_name="p1", store=url, settings=settings, site="bench",
              measure_energy=False)
    t0, c0, k0 = time.perf_counter(), time.process_time(), _children_cpu()
    for i in range(n):
        with cmf.create_execution("train", params={"lr": 0.01 * (i % 10), "depth": i % 7,
                                                   "model": "rf"}) as ex:
            ex.log_dataset("s3://data/train.parquet", "input", version="v1")
            ex.log_dataset("s3://data/labels.parquet", "input", version="v1")
            ex.log_model(f"s3://models/m{i}.pkl", "output", version="1")
            ex.log_execution_metrics("eval", {"auc": 0.8, "f1": 0.7, "loss": 0.3})
    acked = time.perf_counter() - t0
    cmf.close()  # the last journal entries are applied to the tables: the clock stops after
    dt = time.perf_counter() - t0
    cpu = time.process_time() - c0
    companion_cpu = _children_cpu() - k0  # the journal companion process, if one ran
    with open_store(url, site="check") as s:
        assert s.count_executions() == n
    return {"benchmark": "P1", "executions": n, "seconds": round(dt, 3),
            "executions_per_s": round(n / dt), "acknowledged_per_s": round(n / acked),
            "cpu_us_per_execution": round((cpu + companion_cpu) / n * 1e6),
            "companion_cpu_us_per_execution": round(companion_cpu / n * 1e6),
            "durability": durability, "companion": companion,
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "companion_peak_rss_mb": round(
                resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
            "db_mb": round((d / "cmf.db").stat().st_size / 1e6, 1)}


def _children_cpu() -> float:
    t = os.times()
    return t.children_user + t.children_system


def _art(name: str, type: str = "Dataset") -> Artifact:
    return Artifact(id=remote_digest(f"s3://g/{name}", "1"), type=type, name=name,
                    uri=f"s3://g/{name}", site="bench", created_at=0.0)


def generate(store, nodes: int, seed: int = 1) -> str:
    """Fill ``store`` with ~``nodes`` nodes; return the id of the deep model to query."""
    rng = random.Random(seed)
    shared_raw = [_art(f"raw{i}") for i in range(5000)]
    labels = [_art(f"labels{i}") for i in range(200)]
    store.put(shared_raw + labels)
    count = len(shared_raw) + len(labels)
    batch: list = []

    def run(pipeline: str, stage: str, ins: list[Artifact], outs: list[Artifact]) -> None:
        ex = Execution(pipeline=pipeline, stage=stage, site="bench", started_at=0.0,
                       params={"k": rng.randint(0, 9)}).ended(ended_at=1.0)
        batch.extend(outs)
        batch.append(ex)
        batch.extend(Event(ex.id, a.id, "INPUT") for a in ins)
        batch.extend(Event(ex.id, a.id, "OUTPUT") for a in outs)

    def flush() -> None:
        if batch:
            store.put(batch)
            batch.clear()

    # the deep one: continual retraining, 300 rounds, each on a new batch from shared raws
    deep = "continual"
    store.put([Pipeline(deep, "bench", created_at=0.0)] +
              [Stage(deep, s, "bench", created_at=0.0) for s in ("ingest", "retrain")])
    model = _art("deep-m0", "Model")
    batch.append(model)
    for k in range(1, 301):
        data = _art(f"deep-batch{k}")
        run(deep, "ingest", [rng.choice(shared_raw)], [data])
        new = _art(f"deep-m{k}", "Model")
        run(deep, "retrain", [model, data, rng.choice(labels)], [new])
        model = new
        count += 4
    target = model.id
    flush()
    # background: many pipelines, a few stages each, fan-in and shared datasets
    p = 0
    while count < nodes:
        p += 1
        name = f"pipe{p}"
        store.put([Pipeline(name, "bench", created_at=0.0)] +
                  [Stage(name, s, "bench", created_at=0.0)
                   for s in ("clean", "features", "train", "evaluate")])
        for r in range(10):
            raw = rng.sample(shared_raw, 2)
            clean = _art(f"{name}-r{r}-clean")
            feats = _art(f"{name}-r{r}-feats")
            model_a = _art(f"{name}-r{r}-model", "Model")
            report = _art(f"{name}-r{r}-report", "Metrics")
            lab = rng.choice(labels)
            run(name, "clean", raw, [clean])
            run(name, "features", [clean], [feats])
            run(name, "train", [feats, lab], [model_a])
            run(name, "evaluate", [model_a, lab], [report])
            count += 8
        if len(batch) > 20000:
            flush()
    flush()
    return target


def p3(nodes: int, backend: str, repeats: int = 30) -> dict:
    from tests.support.postgres import TempPostgres

    pg = None
    if backend == "postgresql":
        pg = TempPostgres().start()
        url = pg.create_database("p3")
    else:
        url = f"sqlite:///{Path(tempfile.mkdtemp(prefix='cmf-p3-')) / 'cmf.db'}"
    try:
        store = open_store(url, site="bench")
        t0 = time.perf_counter()
        target = generate(store, nodes)
        gen_s = time.perf_counter() - t0
        if backend == "postgresql":
            with store.engine.begin() as c:
                c.exec_driver_sql("ANALYZE")
        closure = store.upstream(target)
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            store.upstream(target)
            times.append((time.perf_counter() - t) * 1000)
        n_exec = store.count_executions()
        n_art = len(store.find_artifacts(type="Model", limit=None)) if False else None
        store.close()
        pg_rss = None
        if pg is not None:
            import psutil

            pg_rss = 0.0
            for proc in psutil.process_iter(["username", "memory_info", "cmdline"]):
                if proc.info["username"] == "postgres" and proc.info["memory_info"]:
                    pg_rss += proc.info["memory_info"].rss / 1e6
        return {"benchmark": "P3", "backend": backend, "nodes_target": nodes,
                "executions": n_exec, "ancestors": len(closure.artifacts) - 1
                + len(closure.executions), "generate_s": round(gen_s, 1),
                "p50_ms": round(statistics.median(times), 2),
                "p95_ms": round(sorted(times)[int(0.95 * len(times)) - 1], 2),
                "peak_rss_mb": round(peak_rss_mb(), 1),
                "postgres_server_rss_mb_after": None if pg_rss is None else round(pg_rss, 1),
                "_unused": n_art}
    finally:
        if pg is not None:
            pg.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("p1")
    a.add_argument("--n", type=int, default=10000)
    a.add_argument("--durability", default="normal", choices=["normal", "full"])
    a.add_argument("--no-companion", action="store_true",
                   help="apply the journal in the recording process (journal_companion=false)")
    b = sub.add_parser("p3")
    b.add_argument("--nodes", type=int, default=1_000_000)
    b.add_argument("--backend", default="both", choices=["sqlite", "postgresql", "both"])
    args = ap.parse_args()
    if args.cmd == "p1":
        print(json.dumps(p1(args.n, args.durability, not args.no_companion)))
    else:
        backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
        for be in backends:
            res = p3(args.nodes, be)
            res.pop("_unused", None)
            print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
