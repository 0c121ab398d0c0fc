"""End-to-end check of the Airflow listener under a real scheduler (not ``dag.test()``).

Starts Airflow 3 the way users run it, as separate processes on loopback, in a temporary
``AIRFLOW_HOME`` with a SQLite metadata database: ``airflow api-server``, ``airflow scheduler``
(LocalExecutor: each task runs under the Task SDK supervisor in a child process with no
metadata-DB access, talking to the api-server's execution API), ``airflow dag-processor`` and
``airflow triggerer``. Two DAGs are triggered through the REST API, a third by an asset:

* ``cmf_e2e_ok``: ``extract`` writes a file asset; ``later`` defers to a trigger (run by the
  triggerer) without saying so and is resumed by a new task process; ``wait``, a
  ``WaitSensor(deferrable=True)``, is ended by its trigger in the triggerer (no task process
  sees its end: the scheduler's DAG-run hook records it); ``publish`` emits an
  asset event for an ``s3://`` asset with a version in its ``extra``; ``consume`` has that
  asset as its inlet (the listener looks up the latest asset event at START, through the
  execution API); ``shard`` is mapped over three values and reads the file; ``total`` sums
  the shards;
* ``cmf_e2e_fail``: ``before`` succeeds, ``flaky`` (``retries=1``) fails both tries;
* ``cmf_e2e_on_asset``: scheduled on the ``s3://`` asset (the scheduler starts it, with no
  logical date), its task reads the asset as an inlet.

When the runs have ended and no execution is left running (the end of a try its trigger
ended is recorded by the scheduler 4 x ``hook_timeout_s`` after its DAG run's end; at most 60 s
are waited), the CMF store (``CMF_HOME`` in the temp dir) is read with the
``cmf`` CLI and checked: every task try is an execution with the right status, parent and
energy record; each DAG run is an execution with start and end and the right status; the
file asset has a ``sha256`` digest, the versioned asset is one artifact linking ``publish`` to
its two readers; no WARNING/ERROR from cmf in any task log; no event left in the spool. Prints
one line per check and a verdict; exit code 0 when all pass. Every Airflow process is
killed (its process group) at the end, whatever happens.

    PYTHONPATH=.:integrations/airflow .venv/bin/python benchmarks/airflow_e2e.py [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
OK_DAG, FAIL_DAG, ASSET_DAG = "cmf_e2e_ok", "cmf_e2e_fail", "cmf_e2e_on_asset"
VERSION = "v-e2e-1"
FEATURES_URI = "s3://cmf-e2e/features"
RUN_STATUS = {OK_DAG: "completed", FAIL_DAG: "failed", ASSET_DAG: "completed"}
"""The DAG runs and the status of their executions (the asset-triggered one: one run)."""
TRIES = {(OK_DAG, "extract"): [(1, -1, "completed")], (OK_DAG, "publish"): [(1, -1, "completed")],
         (OK_DAG, "consume"): [(1, -1, "completed")],
         (OK_DAG, "shard"): [(1, i, "completed") for i in range(3)],
         (OK_DAG, "total"): [(1, -1, "completed")], (OK_DAG, "later"): [(1, -1, "completed")],
         (OK_DAG, "wait"): [(1, -1, "completed")],
         (FAIL_DAG, "before"): [(1, -1, "completed")],
         (FAIL_DAG, "flaky"): [(1, -1, "failed"), (2, -1, "failed")],
         (ASSET_DAG, "read"): [(1, -1, "completed")]}
"""Every task try: (try number, map index, status)."""
ENDED_OUTSIDE = {(OK_DAG, "wait")}
"""Tries ended in the triggerer: recorded from Airflow's database at the DAG run's end, with no
energy record (the part before the deferral is not measured)."""
SERVICES = ("api-server", "scheduler", "dag-processor", "triggerer")

DAGS = '''
import datetime as dt
from pathlib import Path

from airflow.providers.standard.sensors.time_delta import WaitSensor
from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger
from airflow.sdk import Asset, BaseOperator, dag, task

DATA = Path({data!r})
RAW = Asset("file://" + str(DATA / "raw.csv"))
FEATURES = Asset({features!r})


class Later(BaseOperator):
    """Defers to a trigger without saying so (no ``deferrable`` attribute): resumed by a
    worker after the triggerer fires."""

    def execute(self, context):
        self.defer(trigger=TimeDeltaTrigger(dt.timedelta(seconds=1)), method_name="resume")

    def resume(self, context, event=None):
        return "resumed"


@dag(dag_id={ok!r}, schedule=None, params={{"scale": 2}})
def ok_dag():
    @task(outlets=[RAW])
    def extract():
        DATA.mkdir(parents=True, exist_ok=True)
        (DATA / "raw.csv").write_text("x\\n1\\n2\\n3\\n")
        return 3

    @task(outlets=[FEATURES])
    def publish(*, outlet_events):
        outlet_events[FEATURES].extra["version"] = {version!r}

    @task(inlets=[FEATURES])
    def consume():
        return "read"

    @task(inlets=[RAW])
    def shard(n: int, params=None):
        rows = (DATA / "raw.csv").read_text().split()[1:]
        return n * len(rows) * params["scale"]

    @task
    def total(values):
        return sum(values)

    raw = extract()
    pub = publish()
    pub >> consume()
    shards = shard.expand(n=[1, 2, 3])
    raw >> shards
    total(shards)
    Later(task_id="later")
    WaitSensor(task_id="wait", time_to_wait=dt.timedelta(seconds=1), deferrable=True)


@dag(dag_id={fail!r}, schedule=None,
     default_args={{"retries": 1, "retry_delay": dt.timedelta(seconds=1)}})
def fail_dag():
    @task
    def before():
        return 1

    @task
    def flaky(x):
        raise ValueError("e2e: always fails")

    flaky(before())


@dag(dag_id={on_asset!r}, schedule=[FEATURES])
def on_asset_dag():
    @task(inlets=[FEATURES])
    def read():
        return "read"

    read()


ok_dag()
fail_dag()
on_asset_dag()
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Airflow:
    """The Airflow processes of one temporary AIRFLOW_HOME, each in its own process group."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.home = tmp / "airflow"
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        path = [str(ROOT), str(ROOT / "integrations" / "airflow")]
        self.env = {
            **{k: v for k, v in os.environ.items()
               if not k.startswith(("AIRFLOW__", "CMF_", "OPENLINEAGE"))},
            "PYTHONPATH": os.pathsep.join([*path, os.environ.get("PYTHONPATH", "")]).rstrip(":"),
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(tmp / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home / 'airflow.db'}",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__BASE_URL": self.base,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__SECRET_KEY": "cmf-e2e-secret",
            "AIRFLOW__API_AUTH__JWT_SECRET": "cmf-e2e-jwt-secret-of-enough-length-0123456789",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "300",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__OPENLINEAGE__DISABLED": "True",  # the cmf listener route alone
            "CMF_HOME": str(tmp / "cmf"),
            "CMF_SITE": "e2e",
        }

    def run(self, *args: str, timeout: float = 300) -> str:
        out = subprocess.run([str(BIN / "airflow"), *args], env=self.env, capture_output=True,
                             text=True, timeout=timeout, check=False)
        if out.returncode:
            raise RuntimeError(f"airflow {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
        return out.stdout

    def start(self, name: str) -> None:
        log = open(self.tmp / f"{name}.log", "wb")  # noqa: SIM115 (closed with the process)
        self.procs[name] = subprocess.Popen([str(BIN / "airflow"), name], env=self.env,
                                            stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True, cwd=self.tmp)

    def stop(self) -> None:
        """SIGTERM every process group, then SIGKILL what is left after 20 s."""
        for proc in self.procs.values():
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
            _signal_group(proc, signal.SIGKILL)  # children of a group leader that exited too
            proc.wait()

    def alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"airflow {name} exited ({proc.returncode}); see "
                                   f"{self.tmp / (name + '.log')}")

    def api(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.base}/api/v2{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read() or b"null")

    def wait_for(self, what: str, probe: Any, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            self.alive()
            try:
                found = probe()
            except (urllib.error.URLError, ConnectionError, OSError):
                found = None
            if found:
                return found
            if time.monotonic() > deadline:
                raise TimeoutError(f"gave up waiting for {what} after {timeout:.0f} s")
            time.sleep(0.5)


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


# the checks -----------------------------------------------------------------------------------
class Checks:
    def __init__(self) -> None:
        self.results: list[tuple[bool, str]] = []

    def __call__(self, ok: bool, what: str) -> bool:
        self.results.append((bool(ok), what))
        print(f"  [{'ok' if ok else 'FAIL'}] {what}", flush=True)
        return bool(ok)

    @property
    def passed(self) -> bool:
        return all(ok for ok, _ in self.results)


def cmf(env: dict[str, str], *args: str) -> str:
    out = subprocess.run([str(BIN / "cmf"), *args], env=env, capture_output=True, text=True,
                         timeout=120, check=False)
    if out.returncode:
        raise RuntimeError(f"cmf {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
    return out.stdout


def read_store(env: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    """Every record of the store, by kind (``cmf export -``: one read)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for line in cmf(env, "export", "-").splitlines():
        if line.strip():
            rec = json.loads(line)
            found.setdefault(rec["kind"], []).append(rec)
    return found


def airflow_facts(execution: dict[str, Any]) -> dict[str, Any]:
    return (execution.get("properties") or {}).get("airflow") or {}


def parent_of(execution: dict[str, Any]) -> str | None:
    facets = (execution.get("properties") or {}).get("openlineage.run_facets") or {}
    return ((facets.get("parent") or {}).get("run") or {}).get("runId")


def check_store(env: dict[str, str], logs: list[Path], check: Checks) -> None:
    records = read_store(env)
    executions = records.get("execution", [])
    energy = {e["execution_id"] for e in records.get("energy", [])}
    events = [(e["execution_id"], e["type"], e["artifact_id"]) for e in records.get("event", [])]
    by_stage: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for e in executions:
        by_stage.setdefault((e["pipeline"], e["stage"]), []).append(e)
    print(f"  ({len(executions)} executions, {len(records.get('artifact', []))} artifacts, "
          f"{len(energy)} energy records)", flush=True)

    dag_runs: dict[str, dict[str, Any]] = {}
    for dag, want in RUN_STATUS.items():
        found = by_stage.get((dag, dag), [])
        got = [(f["status"], bool(f.get("started_at")), bool(f.get("ended_at"))) for f in found]
        if check(got == [(want, True, True)],
                 f"DAG run {dag}: one execution, {want}, with start and end (got {got})"):
            dag_runs[dag] = found[0]
    if FAIL_DAG in dag_runs:
        error = dag_runs[FAIL_DAG].get("error") or ""
        check("flaky" in error, f"{FAIL_DAG}'s error names the failed task ({error!r})")

    for (dag, stage), statuses in TRIES.items():
        found = by_stage.get((dag, stage), [])
        got = sorted((airflow_facts(f).get("try_number"), airflow_facts(f).get("map_index"),
                      f["status"]) for f in found)
        check(got == statuses, f"{dag}.{stage}: tries (try, map index, status) {got}")
        parent = dag_runs.get(dag, {}).get("id")
        check(parent is not None and all(parent_of(f) == parent for f in found),
              f"{dag}.{stage}: every try's parent is the DAG run execution")
        if (dag, stage) in ENDED_OUTSIDE:
            check(all(airflow_facts(f).get("ended_outside_task") == {"state": "success"}
                      for f in found), f"{dag}.{stage}: ended from Airflow's state, not by a "
                  "task process")
        else:
            check(all(f["id"] in energy for f in found),
                  f"{dag}.{stage}: an energy record per try")
        check(all(f.get("started_at") and f.get("ended_at") for f in found),
              f"{dag}.{stage}: every try has a start and an end")

    def ids(dag: str, stage: str) -> set[str]:
        return {f["id"] for f in by_stage.get((dag, stage), [])}

    artifacts = {a["id"]: a for a in records.get("artifact", [])}
    raw = [a for a in artifacts.values() if str(a.get("uri", "")).endswith("/raw.csv")]
    check(len(raw) == 1 and raw[0]["id"].startswith("sha256:"),
          f"file asset raw.csv: one artifact, by content digest "
          f"({[a['id'][:20] for a in raw]})")
    if raw:
        made = {e for e, t, a in events if a == raw[0]["id"] and t == "OUTPUT"}
        read = {e for e, t, a in events if a == raw[0]["id"] and t == "INPUT"}
        check(made == ids(OK_DAG, "extract") and read == ids(OK_DAG, "shard"),
              "raw.csv: output of extract, input of each shard")
    feats = [a for a in artifacts.values() if a.get("uri") == FEATURES_URI]
    check(len(feats) == 1 and feats[0]["id"].startswith("version:"),
          f"asset {FEATURES_URI}: one artifact, by the version of its asset event "
          f"({[a['id'][:20] for a in feats]})")
    if feats:
        made = {e for e, t, a in events if a == feats[0]["id"] and t == "OUTPUT"}
        read = {e for e, t, a in events if a == feats[0]["id"] and t == "INPUT"}
        check(made == ids(OK_DAG, "publish")
              and read == ids(OK_DAG, "consume") | ids(ASSET_DAG, "read"),
              f"{FEATURES_URI}: output of publish, input of consume and of the "
              f"asset-triggered {ASSET_DAG}.read (inlet version from the latest asset event)")
    running = [f"{e['pipeline']}.{e['stage']}" for e in executions if e["status"] == "running"]
    check(not running, f"no execution left running ({running})")

    bad = [line for path in logs for line in cmf_problems(path)]
    check(not bad, f"no WARNING/ERROR from cmf in {len(logs)} task and service logs"
          + (f": {bad[:3]}" if bad else ""))
    spool = json.loads(cmf(env, "spool", "status", "--json"))
    check(spool.get("waiting") == 0 and not spool.get("rejected") and not spool.get("targets"),
          f"spool empty (waiting {spool.get('waiting')}, rejected {spool.get('rejected')})")


def running(env: dict[str, str]) -> list[str]:
    """The executions of the store still running (``pipeline.stage``)."""
    return [f"{e['pipeline']}.{e['stage']}" for e in read_store(env).get("execution", [])
            if e["status"] == "running"]


def cmf_problems(path: Path) -> list[str]:
    """Lines of an Airflow log (JSON lines of a task, text of a service) that cmf wrote at
    WARNING or above."""
    bad = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            rec = None
        if isinstance(rec, dict):
            level, logger = str(rec.get("level", "")).lower(), str(rec.get("logger", ""))
            text = str(rec.get("event", ""))
        else:  # "<time> [warning  ] cmf: ... [cmf] loc=..."
            level = line.split("[", 1)[-1].split("]", 1)[0].strip().lower() if "[" in line else ""
            logger = "cmf" if " [cmf" in line or "[cmf_" in line else ""
            text = line
        if level in ("warning", "error", "critical") and (
                logger.split(".")[0] in ("cmf", "cmf_core", "cmf_airflow")
                or text.startswith("cmf:") or "cmf_airflow" in text or "cmf_core" in text):
            bad.append(f"{path.name}: {line[:300]}")
    return bad


# main -----------------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for runs")
    args = parser.parse_args()

    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="cmf-airflow-e2e-"))
    (tmp / "dags").mkdir()
    (tmp / "dags" / "cmf_e2e.py").write_text(textwrap.dedent(DAGS.format(
        data=str(tmp / "data"), ok=OK_DAG, fail=FAIL_DAG, on_asset=ASSET_DAG, version=VERSION,
        features=FEATURES_URI)))
    airflow = Airflow(tmp)
    check = Checks()
    print(f"airflow e2e in {tmp} (api-server on {airflow.base})", flush=True)
    logs: list[Path] = []
    try:
        airflow.run("db", "migrate")
        print(f"  db migrated ({time.monotonic() - started:.0f} s)", flush=True)
        for name in SERVICES:
            airflow.start(name)
        airflow.wait_for("the api-server", lambda: airflow.api("GET", "/monitor/health"), 180)
        for dag in RUN_STATUS:
            airflow.wait_for(f"DAG {dag} to be parsed",
                             lambda dag=dag: airflow.api("GET", f"/dags/{dag}"), 180)
        print(f"  services up, DAGs parsed ({time.monotonic() - started:.0f} s)", flush=True)
        for dag in (OK_DAG, FAIL_DAG):
            airflow.api("POST", f"/dags/{dag}/dagRuns", {"logical_date": None})

        def ended(dag: str) -> dict[str, str] | None:
            runs = airflow.api("GET", f"/dags/{dag}/dagRuns")["dag_runs"]
            states = {r["dag_run_id"]: r["state"] for r in runs}
            return states if states and all(s in ("success", "failed")
                                            for s in states.values()) else None

        states = {dag: list(airflow.wait_for(f"the runs of {dag}", lambda dag=dag: ended(dag),
                                             args.timeout).values())
                  for dag in RUN_STATUS}
        print(f"  runs ended ({time.monotonic() - started:.0f} s)", flush=True)
        want = {OK_DAG: ["success"], FAIL_DAG: ["failed"], ASSET_DAG: ["success"]}
        check(states == want, f"Airflow's DAG runs {states}")
        # DAG-run events are queued to the scheduler's background thread; the ends of tries
        # Airflow ended alone are recorded GRACE_TIMEOUTS x hook_timeout_s after the run's end
        waited = time.monotonic()
        with contextlib.suppress(TimeoutError):  # the store checks below say what is left
            airflow.wait_for("no execution left running", lambda: not running(airflow.env), 60)
        print(f"  waited {time.monotonic() - waited:.0f} s for the executions to end",
              flush=True)
    except Exception as e:
        check(False, f"running Airflow: {type(e).__name__}: {e}")
    finally:
        airflow.stop()
        print(f"  airflow stopped ({time.monotonic() - started:.0f} s)", flush=True)
    try:
        if check.passed:
            logs = [*(airflow.home / "logs").rglob("attempt=*.log"),
                    *(tmp / f"{name}.log" for name in SERVICES)]
            check_store(airflow.env, logs, check)
    except Exception as e:
        check(False, f"reading the cmf store: {type(e).__name__}: {e}")
    took = time.monotonic() - started
    verdict = "PASS" if check.passed else "FAIL"
    print(f"verdict: {verdict} ({sum(ok for ok, _ in check.results)}/{len(check.results)} "
          f"checks, {took:.0f} s wall)", flush=True)
    if args.keep or not check.passed:
        print(f"kept {tmp}", flush=True)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if check.passed else 1


if __name__ == "__main__":
    sys.exit(main())
