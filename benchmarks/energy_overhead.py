"""Energy monitor overhead and accuracy, optionally side by side with CodeCarbon.

    .venv/bin/python benchmarks/energy_overhead.py [--codecarbon /tmp/cc-venv/bin/python]
                                                   [--quick] [--json out.json]

Measures, on this machine:

1. cold start+stop: ``python -c`` in a fresh process (as every Airflow task is); the import of
   ``cmf_core.energy`` and the first ``start()``/``stop()`` are timed separately, and the
   modules loaded are checked for pynvml/numpy/pandas;
2. warm start+stop: 200 pairs in one process;
3. sampler cost at 1 Hz: the process's CPU time while the task sleeps ~30 s;
4. accuracy: a ~20 s one-core busy loop that holds the GIL (``sum(range(...))`` in C) against
   20 s x the modelled per-core power, and a ~20 s sleep, which must report idle CPU only.

With ``--codecarbon PYTHON`` (a throwaway venv with codecarbon installed, never the project's),
the same checks run for CodeCarbon's ``OfflineEmissionsTracker`` (default tracking mode) in a
subprocess of that interpreter. ``--quick`` shortens every duration for a smoke run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

COLD = """
import json, sys, time
t0 = time.perf_counter()
import cmf_core
from cmf_core.config import Settings
settings = Settings()
t1 = time.perf_counter()
from cmf_core.energy import EnergyMonitor
t2 = time.perf_counter()
m = EnergyMonitor(settings)
t3 = time.perf_counter()
m.start()
t4 = time.perf_counter()
m.stop()
t5 = time.perf_counter()
heavy = sorted(x for x in ("pynvml", "numpy", "pandas", "psutil") if x in sys.modules)
print(json.dumps({"import_cmf_core_and_settings_s": t1 - t0, "import_energy_s": t2 - t1,
                  "construct_s": t3 - t2, "start_s": t4 - t3, "stop_s": t5 - t4,
                  "start_stop_s": t5 - t3, "loaded": heavy}))
"""

CODECARBON = r"""
import json, sys, time, logging
busy_s, idle_s = float(sys.argv[1]), float(sys.argv[2])
t0 = time.perf_counter()
from codecarbon import OfflineEmissionsTracker
t1 = time.perf_counter()
def tracker():
    return OfflineEmissionsTracker(country_iso_code="FRA", measure_power_secs=1,
                                   save_to_file=False, log_level="error")
out = {"import_s": t1 - t0}
tr = tracker(); a = time.perf_counter(); tr.start(); b = time.perf_counter(); tr.stop()
c = time.perf_counter()
out.update(first_start_s=b - a, first_stop_s=c - b)
warm = []
for _ in range(3):
    tr = tracker(); a = time.perf_counter(); tr.start(); b = time.perf_counter(); tr.stop()
    warm.append((b - a, time.perf_counter() - b))
out["warm_start_s"] = sorted(w[0] for w in warm)[1]
out["warm_stop_s"] = sorted(w[1] for w in warm)[1]
tr = tracker(); tr.start(); p0 = time.process_time(); w0 = time.monotonic()
time.sleep(idle_s)
p1 = time.process_time(); w1 = time.monotonic(); tr.stop()
out["sampler_core_pct"] = 100 * (p1 - p0) / (w1 - w0)
tr = tracker(); tr.start(); w0 = time.monotonic()
while time.monotonic() - w0 < busy_s:
    sum(range(3_000_000))
wall = time.monotonic() - w0; tr.stop(); d = tr.final_emissions_data
out["busy"] = {"wall_s": wall, "reported_duration_s": d.duration,
               "cpu_energy_j": d.cpu_energy * 3.6e6, "cpu_power_w": d.cpu_power,
               "implied_cpu_s": d.cpu_energy * 3.6e6 / d.cpu_power if d.cpu_power else None}
print(json.dumps(out))
"""


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        model = platform.processor()
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "loadavg_at_start": os.getloadavg(),
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
    }


def cold(runs: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    results = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", COLD], capture_output=True, text=True, check=True, env=env
        )
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    keys = [k for k in results[0] if k.endswith("_s")]
    summary: dict[str, Any] = {
        k: {"median_ms": 1e3 * statistics.median(r[k] for r in results),
            "max_ms": 1e3 * max(r[k] for r in results)}
        for k in keys
    }
    summary["runs"] = runs
    summary["loaded_after_start_stop"] = sorted({m for r in results for m in r["loaded"]})
    return summary


def warm(pairs: int) -> dict[str, Any]:
    from cmf_core.config import load_settings
    from cmf_core.energy import EnergyMonitor

    settings = load_settings()
    EnergyMonitor(settings).start().stop()
    costs = []
    for _ in range(pairs):
        m = EnergyMonitor(settings)
        t0 = time.perf_counter()
        m.start()
        m.stop()
        costs.append(time.perf_counter() - t0)
    costs.sort()
    return {
        "pairs": pairs,
        "median_ms": 1e3 * statistics.median(costs),
        "p95_ms": 1e3 * costs[int(0.95 * len(costs))],
        "max_ms": 1e3 * costs[-1],
    }


def sampler_cost(seconds: float) -> dict[str, Any]:
    from cmf_core.config import load_settings
    from cmf_core.energy import EnergyMonitor

    settings = load_settings(energy_sample_hz=1.0)
    p0 = time.process_time()
    with EnergyMonitor(settings) as monitor:
        time.sleep(seconds)
    p1 = time.process_time()
    m = monitor.measurement
    assert m is not None
    return {
        "seconds": m.duration_s,
        "samples": m.samples,
        "core_pct_measured": 100 * m.cpu_time_s / m.duration_s,
        "core_pct_process_time": 100 * (p1 - p0) / m.duration_s,
    }


def busy(seconds: float) -> dict[str, Any]:
    from cmf_core.config import load_settings
    from cmf_core.energy import EnergyMonitor
    from cmf_core.energy.tdp_model import watts_per_core

    settings = load_settings(energy_sample_hz=1.0)
    watts, source = watts_per_core(settings.cpu_watts_per_core)
    with EnergyMonitor(settings) as monitor:
        w0, c0 = time.monotonic(), time.thread_time()
        while time.monotonic() - w0 < seconds:
            sum(range(3_000_000))  # holds the GIL for ~0.1-0.3 s per call
        wall, thread_cpu = time.monotonic() - w0, time.thread_time() - c0
    m = monitor.measurement
    assert m is not None
    cpu_j = m.components["cpu"].joules
    return {
        "wall_s": wall,
        "thread_cpu_s": thread_cpu,
        "reported_duration_s": m.duration_s,
        "reported_cpu_time_s": m.cpu_time_s,
        "samples": m.samples,
        "watts_per_core": watts,
        "watts_source": source,
        "cpu_j": cpu_j,
        "expected_j_wall": wall * watts,
        "error_vs_wall_pct": 100 * (cpu_j / (wall * watts) - 1),
        "error_vs_thread_cpu_pct": 100 * (cpu_j / (thread_cpu * watts) - 1),
    }


def sleep(seconds: float) -> dict[str, Any]:
    from cmf_core.config import load_settings
    from cmf_core.energy import EnergyMonitor
    from cmf_core.energy.tdp_model import watts_per_core

    settings = load_settings(energy_sample_hz=1.0)
    watts, _ = watts_per_core(settings.cpu_watts_per_core)
    with EnergyMonitor(settings) as monitor:
        time.sleep(seconds)
    m = monitor.measurement
    assert m is not None
    cpu_j = m.components["cpu"].joules
    return {
        "duration_s": m.duration_s,
        "cpu_time_s": m.cpu_time_s,
        "cpu_j": cpu_j,
        "cpu_pct_of_busy_core": 100 * cpu_j / (m.duration_s * watts),
        "ram_j": m.components["ram"].joules,
        "ram_method": m.components["ram"].method,
    }


def codecarbon(python: str, busy_s: float, idle_s: float) -> dict[str, Any]:
    out = subprocess.run(
        [python, "-c", CODECARBON, str(busy_s), str(idle_s)],
        capture_output=True, text=True, timeout=600, cwd="/tmp",
    )
    if out.returncode != 0:
        return {"error": out.stderr[-2000:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--codecarbon", help="python of a throwaway venv with codecarbon")
    parser.add_argument("--quick", action="store_true", help="short smoke run")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    long_s, idle_s = (2.0, 3.0) if args.quick else (20.0, 30.0)
    sys.path.insert(0, str(ROOT))
    results: dict[str, Any] = {"machine": machine(), "command": " ".join(sys.argv)}
    steps = [
        ("cold", lambda: cold(3 if args.quick else 5)),
        ("warm", lambda: warm(200)),
        ("sampler_1hz", lambda: sampler_cost(idle_s)),
        ("busy_loop", lambda: busy(long_s)),
        ("sleep", lambda: sleep(long_s)),
    ]
    if args.codecarbon:
        steps.append(("codecarbon", lambda: codecarbon(args.codecarbon, long_s, idle_s)))
    for name, step in steps:
        t0 = time.monotonic()
        results[name] = step()
        print(f"{name}: done in {time.monotonic() - t0:.1f} s", file=sys.stderr, flush=True)
    results["machine"]["loadavg_at_end"] = os.getloadavg()
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
