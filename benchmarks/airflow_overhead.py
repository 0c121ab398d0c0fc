"""P4: what tracking adds to an Airflow task, and what energy sampling costs.

Runs one 20-task DAG (a chain; each task reads the previous task's file asset, writes its own,
and returns a small dict) under ``dag.test()`` on a temporary AIRFLOW_HOME with a migrated
SQLite database, in these configurations, each in a fresh process:

* ``baseline``: the cmf plugin disabled (``AIRFLOW__CMF__DISABLED``), OpenLineage disabled;
* ``cmf``: the cmf plugin (listener route), recording into a CMF SQLite store;
* ``cmf_paired``: the cmf plugin loaded, each timed run a pair: listener off, then on (it reads
  the switch at every hook), in the same warm process, so machine-load drift cancels out;
* ``ol_fork``: Airflow's OpenLineage provider with the CmfTransport (cmf plugin disabled), its
  default: each event is emitted from a forked process;
* ``ol_thread``: the same with ``[openlineage] execute_in_thread = True``;
* ``cmf_ol`` (optional): both on; the cmf listener then only adds energy and parameters.

Configurations are interleaved round by round; each process runs one warm-up ``dag.test()`` and
then ``--runs`` timed ones. Reported per task (ms): added wall time = (median run - median
baseline run) / tasks (and the same with minima); the wall time spent inside the listeners'
task hooks (what the task waits for; measured by wrapping every registered hookimpl); added
process CPU time (all threads, forked children included). ``cmf_paired`` also gives the median
of the per-pair differences.

Energy sampling: an :class:`~cmf_core.energy.EnergyMonitor` runs for ``--sample-seconds`` around
a sleeping task, and the CPU time of its sampler thread is read from
``/proc/self/task/<tid>/schedstat`` (nanoseconds): that divided by the wall time is the share of
one core it uses.

    .venv/bin/python benchmarks/airflow_overhead.py --json p4.json     # ~5 min on an idle box
    .venv/bin/python benchmarks/airflow_overhead.py --configs cmf_paired --rounds 1 --runs 40
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CMF_TRANSPORT = "cmf_core.openlineage.transport.cmf.CmfTransport"
CONFIGS = ("baseline", "cmf", "cmf_paired", "ol_fork", "ol_thread")
DAG_ID = "p4_overhead"

DAG_TEMPLATE = '''
import json
from pathlib import Path

from airflow.sdk import Asset, dag, task

DATA = Path({data!r})
N = {tasks}


def asset(i):
    return Asset(f"file://{{DATA}}/part-{{i}}.json")


@dag(dag_id={dag_id!r}, schedule=None, params={{"seed": 1}})
def p4_overhead():
    previous = None
    for i in range(N):
        @task(task_id=f"step_{{i:02d}}", inlets=[asset(i - 1)] if i else [], outlets=[asset(i)])
        def step(i: int = i, scale: float = 0.5):
            src = DATA / f"part-{{i - 1}}.json"
            rows = json.loads(src.read_text())["rows"] if i else list(range(100))
            out = [r * scale + i for r in rows]
            (DATA / f"part-{{i}}.json").write_text(json.dumps({{"rows": out}}))
            return {{"i": i, "n": len(out)}}

        current = step()
        if previous is not None:
            previous >> current
        previous = current


p4_overhead()
'''


def env_for(config: str, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW__", "CMF_", "OPENLINEAGE"))}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "CMF_HOME": str(home / f"cmf-{config}"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
    })
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.setdefault("PYTHONPYCACHEPREFIX", str(Path(tempfile.gettempdir()) / "cmf-bench-pycache"))
    cmf_on = config in ("cmf", "cmf_ol", "cmf_paired")
    ol_on = config in ("ol_fork", "ol_thread", "cmf_ol")
    env["AIRFLOW__CMF__DISABLED"] = "False" if cmf_on else "True"
    if ol_on:
        env["AIRFLOW__OPENLINEAGE__TRANSPORT"] = json.dumps({"type": CMF_TRANSPORT})
        env["AIRFLOW__OPENLINEAGE__NAMESPACE"] = "default"
        if config == "ol_thread":
            env["AIRFLOW__OPENLINEAGE__EXECUTE_IN_THREAD"] = "True"
    else:
        env["AIRFLOW__OPENLINEAGE__DISABLED"] = "True"
    return env


def time_listener_hooks() -> dict[str, list[float]]:
    """Wrap every task-instance hook of every registered listener with a timer.

    Returns the dict that collects, per hook call, its wall time in seconds under the key
    ``"<plugin class>.<hook>"``; the listener that forks (the OpenLineage provider's default)
    waits for its child inside the hook, so that time is counted too.
    """
    from airflow.sdk.listener import get_listener_manager

    spent: dict[str, list[float]] = {}
    hook = get_listener_manager().hook
    for name in ("on_task_instance_running", "on_task_instance_success",
                 "on_task_instance_failed", "on_task_instance_skipped", "before_stopping"):
        caller = getattr(hook, name, None)
        for impl in caller.get_hookimpls() if caller is not None else []:
            key = f"{type(impl.plugin).__name__}.{name}"
            fn = impl.function

            def timed(*a: Any, _fn: Any = fn, _key: str = key, **k: Any) -> Any:
                t0 = time.perf_counter()
                try:
                    return _fn(*a, **k)
                finally:
                    spent.setdefault(_key, []).append(time.perf_counter() - t0)

            impl.function = timed
    return spent


def child(runs: int, paired: bool = False) -> None:
    """Inside one configuration's process: warm up, then time ``runs`` dag.test() calls.

    ``paired`` (the ``cmf_paired`` configuration): each timed run is a pair, the cmf listener
    off then on (it reads ``AIRFLOW__CMF__DISABLED`` at every hook), in the same warm process,
    so machine-load drift cancels out of the difference.
    """
    import logging
    import resource

    logging.disable(logging.WARNING)
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    dag = bag.get_dag(DAG_ID)
    assert dag is not None, bag.import_errors
    walls: list[float] = []
    cpus: list[float] = []
    hooks: list[float] = []
    states: list[str] = []
    spent: dict[str, list[float]] | None = None
    modes = ["on"] if not paired else ["off", "on"]
    schedule = ["on"] + modes * runs
    off_walls: list[float] = []
    off_cpus: list[float] = []
    for mode in schedule:
        if paired:
            os.environ["AIRFLOW__CMF__DISABLED"] = "True" if mode == "off" else "False"
        if spent is not None:
            spent.clear()
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        dr = dag.test()
        wall = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        states.append(str(dr.state))
        if spent is None:  # listeners are registered by the first run
            spent = time_listener_hooks()
            continue  # the first run warms up imports, the in-process API server and the store
        cpu = sum(getattr(b, f) - getattr(a, f) for a, b in ((r0, r1), (c0, c1))
                  for f in ("ru_utime", "ru_stime"))
        if mode == "off":
            off_walls.append(wall)
            off_cpus.append(cpu)
            continue
        walls.append(wall)
        cpus.append(cpu)
        hooks.append(sum(sum(v) for v in spent.values()))
    from cmf_core.guard import FAILURES

    print("RESULT " + json.dumps({"walls": walls, "cpus": cpus, "hooks": hooks,
                                  "off_walls": off_walls, "off_cpus": off_cpus,
                                  "states": states, "failures": dict(FAILURES)}), flush=True)


def run_child(config: str, home: Path, runs: int) -> dict[str, Any]:
    extra = ["--paired"] if config == "cmf_paired" else []
    proc = subprocess.run([sys.executable, __file__, "--child", str(runs), *extra],
                          env=env_for(config, home), capture_output=True, text=True,
                          timeout=900, cwd=home)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"{config} failed (rc {proc.returncode}):\n{proc.stderr[-4000:]}")


def sampler_share(seconds: float, hz: float) -> dict[str, Any]:
    """CPU share of one core used by the energy sampler thread around an idle task."""
    from cmf_core.config import load_settings
    from cmf_core.energy import EnergyMonitor

    settings = load_settings(energy_sample_hz=hz)
    monitor = EnergyMonitor(settings).start()
    thread = monitor._thread
    t0 = time.perf_counter()
    time.sleep(seconds)
    ns = 0
    if thread is not None and thread.native_id is not None:
        stat = Path(f"/proc/self/task/{thread.native_id}/schedstat")
        if stat.exists():
            ns = int(stat.read_text().split()[0])
    wall = time.perf_counter() - t0
    measurement = monitor.stop()
    return {"hz": hz, "seconds": round(wall, 2), "sampler_cpu_ms": round(ns / 1e6, 3),
            "core_share_percent": round(100 * ns / 1e9 / wall, 4),
            "samples": measurement.samples, "methods": measurement.methods}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--paired", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--tasks", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=4, help="timed dag.test() runs per process")
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--sample-seconds", type=float, default=20.0)
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    if args.child is not None:
        child(args.child, args.paired)
        return
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    if "baseline" not in configs:
        configs.insert(0, "baseline")

    with tempfile.TemporaryDirectory(prefix="cmf-p4-") as tmp:
        home = Path(tmp)
        (home / "dags").mkdir()
        (home / "data").mkdir()
        (home / "dags" / "p4_overhead.py").write_text(DAG_TEMPLATE.format(
            data=str(home / "data"), tasks=args.tasks, dag_id=DAG_ID))
        subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"],
                       env=env_for("baseline", home), check=True, capture_output=True,
                       cwd=home)
        walls: dict[str, list[float]] = {c: [] for c in configs}
        cpus: dict[str, list[float]] = {c: [] for c in configs}
        pairs: dict[str, list[tuple[float, float]]] = {"wall": [], "cpu": []}
        hooks: dict[str, list[float]] = {c: [] for c in configs}
        failures: dict[str, dict[str, int]] = {}
        for r in range(args.rounds):
            for config in configs:
                res = run_child(config, home, args.runs)
                bad = [s for s in res["states"] if "success" not in s]
                if bad:
                    raise RuntimeError(f"{config}: DAG runs ended {bad}")
                walls[config] += res["walls"]
                cpus[config] += res["cpus"]
                if res["off_walls"]:
                    pairs["wall"] += list(zip(res["off_walls"], res["walls"], strict=True))
                    pairs["cpu"] += list(zip(res["off_cpus"], res["cpus"], strict=True))
                hooks[config] += res["hooks"]
                failures[config] = res["failures"]
                print(f"round {r + 1} {config:10s} wall " +
                      " ".join(f"{w:6.3f}" for w in res["walls"]) + "   hooks " +
                      " ".join(f"{h:6.3f}" for h in res["hooks"]), flush=True)

    n = args.tasks
    base_wall, base_min = statistics.median(walls["baseline"]), min(walls["baseline"])
    base_cpu = statistics.median(cpus["baseline"])
    results: dict[str, Any] = {"tasks": n, "rounds": args.rounds, "runs": args.runs,
                               "python": sys.version.split()[0], "cpus": os.cpu_count(),
                               "load_average": os.getloadavg(), "configs": {}}
    print(f"\n{'config':10s} {'median run':>10s} {'added/task':>10s} {'(min-min)':>10s} "
          f"{'hooks/task':>10s} {'cpu/task':>9s}   (ms per task, run in s)")
    for config in configs:
        med = statistics.median(walls[config])
        row = {
            "median_run_s": round(med, 4),
            "added_ms_per_task": round((med - base_wall) / n * 1000, 2),
            "added_ms_per_task_min": round((min(walls[config]) - base_min) / n * 1000, 2),
            "hook_ms_per_task": round(statistics.median(hooks[config]) / n * 1000, 2),
            "added_cpu_ms_per_task": round((statistics.median(cpus[config]) - base_cpu)
                                           / n * 1000, 2),
            "walls": [round(w, 4) for w in walls[config]],
            "tracking_failures": failures.get(config, {}),
        }
        results["configs"][config] = row
        print(f"{config:10s} {med:10.3f} {row['added_ms_per_task']:10.1f} "
              f"{row['added_ms_per_task_min']:10.1f} {row['hook_ms_per_task']:10.1f} "
              f"{row['added_cpu_ms_per_task']:9.1f}")

    if pairs["wall"]:
        added = [(on - off) / n * 1000 for off, on in pairs["wall"]]
        added_cpu = [(on - off) / n * 1000 for off, on in pairs["cpu"]]
        results["paired"] = {"added_ms_per_task": round(statistics.median(added), 2),
                             "added_cpu_ms_per_task": round(statistics.median(added_cpu), 2),
                             "pairs": [[round(a, 4), round(b, 4)] for a, b in pairs["wall"]]}
        print(f"cmf_paired: the listener on vs off in the same process, {len(added)} pairs: "
              f"median added {statistics.median(added):.1f} ms/task wall, "
              f"{statistics.median(added_cpu):.1f} ms/task CPU")

    results["energy_sampling"] = [sampler_share(args.sample_seconds, hz) for hz in (1.0, 10.0)]
    for s in results["energy_sampling"]:
        print(f"energy sampler at {s['hz']:g} Hz: {s['sampler_cpu_ms']} ms CPU in "
              f"{s['seconds']} s = {s['core_share_percent']}% of one core "
              f"({s['samples']} samples, {s['methods']})")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
