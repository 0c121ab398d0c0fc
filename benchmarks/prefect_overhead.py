"""Per-task overhead of the Prefect in-process route (target: < 20 ms median).

    .venv/bin/python benchmarks/prefect_overhead.py [--tasks 100] [--rounds 4] [--quick]
                                                    [--json out.json]

One Prefect test server (a subprocess on loopback, ``prefect_test_harness``) for the whole run.
A flow calls a trivial task ``--tasks`` times in sequence and times each call from the flow
(``perf_counter`` around ``step(i)``: the task run's whole life, engine included). Rounds
alternate route off / route on (``cmf_prefect.auto.install`` with energy measured and events
recorded into a fresh SQLite store), so drift of the shared machine hits both alike. Reported:

* the median per-task wall time with and without the route, and their difference (the
  overhead a task sees);
* the time spent inside the route's two span callbacks per task (start + end: events built,
  energy monitor started and stopped, two events ingested into SQLite), measured directly,
  which is insensitive to the noise of the rest of the engine;
* the flow run's wall time with and without the route, divided by its task count: the
  amortized cost, which includes recording every event into the store (a flow run returns only
  once its records are stored; the route records in a background thread, so part of that work
  overlaps the tasks and the rest waits at the flow run's end);
* a warm-up flow per mode is run first and not counted (imports, store creation, settings).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


def _quantiles(values: list[float]) -> dict[str, float]:
    q = statistics.quantiles(values, n=20)
    return {"median_ms": statistics.median(values) * 1e3, "p95_ms": q[18] * 1e3,
            "mean_ms": statistics.fmean(values) * 1e3, "n": len(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100, help="task runs per flow run")
    parser.add_argument("--rounds", type=int, default=4, help="flow runs per mode")
    parser.add_argument("--quick", action="store_true", help="20 tasks x 2 rounds")
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args()
    if args.quick:
        args.tasks, args.rounds = 20, 2

    from cmf_prefect import auto
    from prefect import flow, task
    from prefect.testing.utilities import prefect_test_harness

    from cmf_core.config import load_settings

    @task
    def step(i: int) -> int:
        return i + 1

    @flow
    def bench(n: int) -> list[float]:
        times = []
        for i in range(n):
            t0 = time.perf_counter()
            step(i)
            times.append(time.perf_counter() - t0)
        return times

    callback_s: list[float] = []
    processor_cls = auto.CmfSpanProcessor
    orig_start, orig_end = processor_cls.on_start, processor_cls.on_end
    pending: dict[int, float] = {}

    def timed_start(self: Any, span: Any, parent_context: Any = None) -> None:
        t0 = time.perf_counter()
        orig_start(self, span, parent_context)
        if auto.ROUTE.active and (span.attributes or {}).get("prefect.run.type") == "task":
            pending[span.context.span_id] = time.perf_counter() - t0

    def timed_end(self: Any, span: Any) -> None:
        t0 = time.perf_counter()
        orig_end(self, span)
        key = span.context.span_id  # on_end gets a new ReadableSpan object
        if (span.attributes or {}).get("prefect.run.type") == "task" and key in pending:
            callback_s.append(pending.pop(key) + time.perf_counter() - t0)

    processor_cls.on_start, processor_cls.on_end = timed_start, timed_end  # type: ignore

    tmp = Path(tempfile.mkdtemp(prefix="cmf-prefect-bench-"))
    settings = load_settings(store_url=f"sqlite:///{tmp / 'cmf.db'}", home=tmp / ".cmf",
                             site="bench")
    results: dict[str, list[float]] = {"off": [], "on": []}
    flows: dict[str, list[float]] = {"off": [], "on": []}
    started = time.perf_counter()
    with prefect_test_harness(server_startup_timeout=120):
        for mode in ("off", "on"):  # warm-up, not counted
            if mode == "on":
                auto.install(settings)
            bench(5)
            auto.uninstall()
        callback_s.clear()
        for _ in range(args.rounds):
            for mode in ("off", "on"):
                if mode == "on":
                    auto.install(settings)
                t0 = time.perf_counter()
                results[mode] += bench(args.tasks)  # returns once its records are stored
                flows[mode].append(time.perf_counter() - t0)
                auto.uninstall()

    from cmf_core.store import open_store

    store = open_store(settings=settings)
    recorded = store.count_executions()
    energy = len(store.energy())
    store.close()
    off, on = _quantiles(results["off"]), _quantiles(results["on"])
    cb = _quantiles(callback_s)
    out = {
        "benchmark": "prefect_overhead",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "prefect": __import__("prefect").__version__,
        "tasks_per_flow": args.tasks, "rounds": args.rounds,
        "route_off": off, "route_on": on,
        "overhead_median_ms": on["median_ms"] - off["median_ms"],
        "flow_wall_s": {m: statistics.median(v) for m, v in flows.items()},
        "amortized_overhead_ms": (statistics.median(flows["on"]) - statistics.median(
            flows["off"])) / args.tasks * 1e3,
        "load_average": os.getloadavg(),
        "callbacks_per_task": cb,
        "executions_recorded": recorded, "energy_records": energy,
        "wall_s": time.perf_counter() - started,
    }
    print(json.dumps(out, indent=2))
    print(f"\nper-task overhead (median on - median off): {out['overhead_median_ms']:.2f} ms; "
          f"amortized over the flow run (recording included): "
          f"{out['amortized_overhead_ms']:.2f} ms; "
          f"route callbacks per task: median {cb['median_ms']:.2f} ms, p95 {cb['p95_ms']:.2f} ms "
          f"({recorded} executions, {energy} energy records)")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    expected = (args.rounds * args.tasks + 5) + (args.rounds + 1)  # task runs + flow runs
    if recorded != expected:
        sys.exit(f"expected {expected} executions recorded, found {recorded}")


if __name__ == "__main__":
    main()
