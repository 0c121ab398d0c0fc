"""``GET /api/v1/lineage`` graph time against the number of datasets around one job.

Ingests OpenLineage RunEvents (the path ``POST /api/v1/lineage`` takes, ``ingest.ingest``) into
a fresh store: a chain of ``--chain`` jobs (``bench.chain<k>``: ``chain/<k>`` ->
``chain/<k+1>``) whose last dataset one job, ``bench.wide``, reads together with ``n/2 - 1``
other inputs while it writes ``n/2`` outputs (one event lists ``n`` datasets; the server takes
at most ``MAX_DATASETS`` = 10,000). Then times ``LineageGraph(store).graph(node, depth)`` for
the wide job and for the chain's first dataset (which reaches everything): medians of
``--repeat`` of wall time and of this process's CPU time. With ``--before REV`` the
``cmf_core/server/marquez.py`` of git revision REV is loaded as a second module and timed in
the same run against the same store, after checking that both give the same graph. With
``--others M`` the store also holds ``M`` artifacts outside the graph (a big store around a
small graph: what the lookups of a dataset's artifacts by URI and by property read).

    .venv/bin/python benchmarks/lineage_graph_bench.py --n 1000 10000 --before c6f1de0
    .venv/bin/python benchmarks/lineage_graph_bench.py --n 10000 --backend postgresql
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cmf_core.identity import remote_digest  # noqa: E402
from cmf_core.model import Artifact  # noqa: E402
from cmf_core.openlineage.ingest import ingest  # noqa: E402
from cmf_core.server.marquez import LineageGraph  # noqa: E402
from cmf_core.store import Store, open_store  # noqa: E402

PRODUCER = "https://example.com/lineage-graph-bench"
SCHEMA = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
NS = uuid.UUID("6f2b0c8e-5a4e-4f0e-9a57-2d1c7d1e0b11")


def _ds(name: str) -> dict[str, Any]:
    return {"namespace": "s3://lake", "name": name,
            "facets": {"schema": {"_producer": PRODUCER, "_schemaURL": SCHEMA,
                                  "fields": [{"name": "id", "type": "int"}]}}}


def _run(job: str, k: int, inputs: list[dict[str, Any]], outputs: list[dict[str, Any]]
         ) -> dict[str, Any]:
    return {"eventType": "COMPLETE", "eventTime": f"2026-01-01T00:{k // 60:02d}:{k % 60:02d}Z",
            "producer": PRODUCER, "schemaURL": SCHEMA,
            "run": {"runId": str(uuid.uuid5(NS, f"{job}/{k}"))},
            "job": {"namespace": "bench", "name": job}, "inputs": inputs, "outputs": outputs}


def populate(store: Store, n: int, chain: int) -> None:
    """The chain of jobs, then the wide job with ``n`` datasets."""
    for k in range(chain):
        ingest(_run(f"bench.chain{k}", k, [_ds(f"chain/{k}")], [_ds(f"chain/{k + 1}")]),
               store, "bench")
    half = n // 2
    inputs = [_ds(f"chain/{chain}")] + [_ds(f"in/{i:05d}.parquet") for i in range(half - 1)]
    outputs = [_ds(f"out/{i:05d}.parquet") for i in range(n - half)]
    ingest(_run("bench.wide", chain, inputs, outputs), store, "bench")


def populate_others(store: Store, m: int) -> None:
    """``m`` artifacts no job touched, named and placed as CMF names files."""
    for start in range(0, m, 10_000):
        store.put([Artifact(id=remote_digest(f"s3://other/{i:07d}.csv", "v1"), type="Dataset",
                            name=f"{i:07d}.csv", uri=f"s3://other/{i:07d}.csv", site="bench",
                            created_at=1_767_225_600.0,
                            properties={"rows": i, "owner": "someone else"})
                   for i in range(start, min(m, start + 10_000))])


def load_before(rev: str) -> type:
    """``LineageGraph`` of ``cmf_core/server/marquez.py`` at git revision ``rev``."""
    text = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:cmf_core/server/marquez.py"],
                          check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp(prefix="cmf-marquez-")) / "marquez_before.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("marquez_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module.LineageGraph


@contextmanager
def store_url(backend: str) -> Iterator[str]:
    if backend == "postgresql":
        from tests.support.postgres import TempPostgres

        pg = TempPostgres().start()
        try:
            yield pg.create_database("lineage_bench")
        finally:
            pg.stop()
    else:
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{Path(tmp) / 'cmf.db'}"


def graph(cls: type, store: Store, node: str, depth: int) -> dict[str, Any]:
    """One lineage read, with a fresh ``LineageGraph`` (the server makes one per request)."""
    return cls(store).graph(node, depth)


def medians_ms(fn: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """Median wall time and median CPU time of this process of ``fn()`` over ``repeat`` calls,
    in ms (CPU time leaves out a PostgreSQL server's work; on a busy machine it is the steadier
    number)."""
    wall, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall) * 1000, statistics.median(cpu) * 1000


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, nargs="+", default=[1_000, 10_000],
                    help="datasets of the wide job (several: one store each)")
    ap.add_argument("--chain", type=int, default=5, help="jobs in the chain before it")
    ap.add_argument("--depth", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--backend", default="sqlite", choices=["sqlite", "postgresql"])
    ap.add_argument("--others", type=int, default=0,
                    help="artifacts in the store outside the graph")
    ap.add_argument("--before", metavar="REV",
                    help="also time marquez.py of this git revision, in the same run")
    args = ap.parse_args(argv)
    impls: dict[str, type] = {"now": LineageGraph}
    if args.before:
        impls = {f"before ({args.before})": load_before(args.before), **impls}
    for n in args.n:
        with store_url(args.backend) as url:
            store = open_store(url, site="bench")
            t0 = time.perf_counter()
            populate(store, n, args.chain)
            populate_others(store, args.others)
            print(f"{args.backend}, n={n}, others={args.others}: populated in "
                  f"{time.perf_counter() - t0:.1f} s", flush=True)
            for label, node in (("job", "job:bench:bench.wide"),
                                ("dataset", "dataset:s3://lake:chain/0")):
                results = {name: cls(store).graph(node, args.depth)
                           for name, cls in impls.items()}
                first = next(iter(results.values()))
                if any(r != first for r in results.values()):
                    raise SystemExit(f"{label} {node}: the graphs differ between {list(impls)}")
                for name, cls in impls.items():
                    wall, cpu = medians_ms(partial(graph, cls, store, node, args.depth),
                                           args.repeat)
                    print(f"  {label:8s} {name:18s} median {wall:9.1f} ms (CPU {cpu:9.1f} ms)"
                          f" {len(first['graph'])} nodes", flush=True)
            store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
