"""End-to-end check: a Prefect *deployment* run the way production runs it, recorded by cmf.

Starts, on loopback in a temporary folder, a real ``prefect server start`` (SQLite), then runs a
deployment of a small flow (a file written, a mapped task, a task that fails after one retry,
metrics) either through ``flow.serve()`` (``--mode serve``: the runner starts each flow run in a
spawned subprocess) or through a process work pool and ``prefect worker start`` (``--mode
worker``: each flow run is ``python -m prefect.engine``), with ``cmf prefect watch`` following the
same server into the same store. After the run it checks the cmf store: one execution per flow
run and task run (no duplicates from the two routes), statuses, params, artifacts with digests,
energy per task run, the flow-run parent, events of the in-process route (the plugin loaded in the
flow run's process) and of the watcher for every task run, resolved params, an empty spool, no
cmf WARNING/ERROR in the runner's or worker's output. Prints a verdict; exit code 0 when every
check passed.

    python benchmarks/prefect_deploy_e2e.py --mode serve
    python benchmarks/prefect_deploy_e2e.py --mode worker
    python benchmarks/prefect_deploy_e2e.py --mode worker --job-env   # settings in job variables
    python benchmarks/prefect_deploy_e2e.py --mode serve --no-watch   # in-process route alone

Needs ``cmf-foundation[prefect]`` installed (the ``prefect.plugins`` entry point) in the Python
that runs it; every process it starts is stopped (process group) before it returns.
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
import urllib.request
from pathlib import Path
from typing import Any

FLOW = '''
from pathlib import Path
import sys

from prefect import flow, task


@task
def prepare(n: int, out: str) -> str:
    Path(out).write_text(",".join(str(i) for i in range(n)))
    return out


@task
def square(x: int) -> int:
    return x * x


@task
def train(data: str, squares: list, lr: float) -> dict:
    values = [int(x) for x in Path(data).read_text().split(",")]
    return {"loss": 1.0 / (1 + sum(values) + sum(squares)), "lr": lr}


@task(retries=1, retry_delay_seconds=0)
def flaky(data: str) -> None:
    raise RuntimeError("flaky always fails")


@flow
def deploy_pipeline(n: int = 3, out: str = "data.csv", lr: float = 0.1) -> dict:
    data = prepare(n, out)
    squares = square.map(range(n))
    metrics = train(data, squares, lr)
    flaky(data, return_state=True)
    return metrics


if __name__ == "__main__":
    deploy_pipeline.serve(name="e2e")
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(cmd: list[str], env: dict[str, str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, env=env, cwd=cwd, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _wait(fn: Any, timeout: float, what: str, every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def _healthy(api: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api}/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def _prefect(args: list[str], env: dict[str, str], cwd: Path) -> str:
    exe = Path(sys.executable).with_name("prefect")
    done = subprocess.run([str(exe), *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=180)
    if done.returncode:
        raise RuntimeError(f"prefect {' '.join(args)}: {done.stdout[-2000:]}{done.stderr[-2000:]}")
    return done.stdout


def _python(code: str, env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=300)
    if done.returncode:
        raise RuntimeError(f"{done.stdout[-2000:]}{done.stderr[-3000:]}")
    return done.stdout


def check_store(store_url: str, flow_run_id: str, task_runs: dict[str, dict[str, Any]],
                data: Path, spool: Path, watch: bool) -> list[str]:
    """The problems found in the store (empty: all good)."""
    from cmf_core.identity import file_digest
    from cmf_core.store import open_store

    problems: list[str] = []
    store = open_store(store_url)
    try:
        executions = {e.id: e for e in store.list_executions()}
        expected = {flow_run_id, *task_runs}
        if set(executions) != expected:
            problems.append(f"executions {sorted(executions)} != runs {sorted(expected)}")
        flow_ex = executions.get(flow_run_id)
        if flow_ex is None:
            problems.append("no execution for the flow run")
        else:
            if flow_ex.status.value != "completed":
                problems.append(f"flow run status {flow_ex.status.value}")
            if flow_ex.params != {"n": 3, "out": str(data), "lr": 0.1}:
                problems.append(f"flow run params {flow_ex.params}")
            if not flow_ex.ended_at:
                problems.append("flow run has no end time")
        energy = {r.execution_id for r in store.energy()}
        for run_id, run in task_runs.items():
            ex = executions.get(run_id)
            if ex is None:
                continue
            stage, state = run["stage"], run["state"]
            want = {"COMPLETED": "completed", "FAILED": "failed"}.get(state, state)
            if ex.status.value != want:
                problems.append(f"{stage} {run_id}: status {ex.status.value}, Prefect {state}")
            routes = {json.loads(e.body)["run"]["facets"]["cmf_execution"]["properties"]
                      .get("prefect.route") for e in store.lineage_events(run_id)}
            want_routes = {"in-process", "watcher"} if watch else {"in-process"}
            if routes != want_routes:  # in-process: the plugin ran in the flow run's process
                problems.append(f"{stage} {run_id}: events of {sorted(routes)}")
            if "<prefect." in repr(ex.params):
                problems.append(f"{stage} {run_id}: unresolved params {ex.params}")
            if run_id not in energy:
                problems.append(f"{stage} {run_id}: no energy record")
            if ex.properties.get("prefect.flow_run_id") != flow_run_id:
                problems.append(f"{stage}: flow run id {ex.properties.get('prefect.flow_run_id')}")
            if stage == "flaky" and str(ex.properties.get("prefect.run_count")) != "2":
                problems.append(f"flaky run count {ex.properties.get('prefect.run_count')}")
            if stage == "square" and "x" not in (ex.params or {}):
                problems.append(f"square params {ex.params}")
        outputs = {}
        for run_id, run in task_runs.items():
            if run["stage"] == "prepare":
                for ev in store.events([run_id]):
                    art = store.get_artifact(ev.artifact_id)
                    outputs[art.name] = art
        if data.exists() and outputs.get(str(data)) is None:
            problems.append(f"prepare: no output artifact {data} ({sorted(outputs)})")
        elif data.exists() and outputs[str(data)].id != file_digest(data):
            problems.append("prepare: the data file's artifact is not its digest")
        train = [r for r, v in task_runs.items() if v["stage"] == "train"]
        if train and {m.name for m in store.metrics(train)} != {"loss", "lr"}:
            problems.append(f"train metrics {[m.name for m in store.metrics(train)]}")
    finally:
        store.close()
    # event files (not the targets/ names of the sinks they go to)
    left = [p.name for p in spool.glob("**/*")
            if p.is_file() and p.parent.name != "targets"] if spool.exists() else []
    if left:
        problems.append(f"spool not empty: {left[:5]}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("serve", "worker"), default="serve")
    parser.add_argument("--job-env", action="store_true",
                        help="worker mode: the cmf settings in the deployment's job variables "
                             "(env), not in the worker's environment")
    parser.add_argument("--no-watch", action="store_true", help="no `cmf prefect watch`")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary folder (logs, stores) of a passing run too")
    args = parser.parse_args()
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="cmf-prefect-e2e-"))
    proj = tmp / "project"
    proj.mkdir()
    (proj / "flows.py").write_text(FLOW)
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    store_url = f"sqlite:///{tmp / 'cmf.db'}"
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("CMF_", "PREFECT_"))}
    base.update(PREFECT_HOME=str(tmp / "prefect"), PREFECT_SERVER_ANALYTICS_ENABLED="false",
                DO_NOT_TRACK="1", PREFECT_API_URL=api,
                PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="120",
                PREFECT_API_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{tmp / 'prefect.db'}",
                PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL="0.5")
    cmf_env = {**base, "PREFECT_PLUGINS_ENABLED": "true", "CMF_STORE_URL": store_url,
               "CMF_SITE": "edge", "CMF_HOME": str(tmp / "cmf-home")}
    procs: list[subprocess.Popen[bytes]] = []
    log_of = {"server": tmp / "server.log", "runner": tmp / "runner.log",
              "watch": tmp / "watch.log"}
    verdict: dict[str, Any] = {"mode": args.mode, "watch": not args.no_watch,
                               "job_env": args.job_env}
    job_env = {k: v for k, v in cmf_env.items() if k not in base}
    deploy_env = job_env if args.job_env else {}
    try:
        exe = str(Path(sys.executable).with_name("prefect"))
        procs.append(_start([exe, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                            base, log_of["server"], tmp))
        _wait(lambda: _healthy(api), 180, "the Prefect server")
        if not args.no_watch:
            cmf = str(Path(sys.executable).with_name("cmf"))
            procs.append(_start([cmf, "prefect", "watch", "--api", api, "--store", store_url,
                                 "--rescan", "2"],
                                {**cmf_env, "CMF_HOME": str(tmp / "watch-home")},
                                log_of["watch"], tmp))
        if args.mode == "serve":
            procs.append(_start([sys.executable, "flows.py"], cmf_env, log_of["runner"], proj))
        else:
            _prefect(["work-pool", "create", "e2e", "--type", "process"], base, proj)
            _python(f'''
                from prefect import flow
                flow.from_source(source={str(proj)!r}, entrypoint="flows.py:deploy_pipeline"
                                 ).deploy(name="e2e", work_pool_name="e2e",
                                          job_variables={{"env": {deploy_env!r}}})
            ''', base, proj)
            procs.append(_start([exe, "worker", "start", "--pool", "e2e"],
                                base if args.job_env else cmf_env, log_of["runner"], proj))
        data = tmp / "data.csv"
        out = _python(f'''
            import json, time
            from prefect.deployments import run_deployment
            from prefect.client.orchestration import get_client
            for _ in range(240):
                try:
                    with get_client(sync_client=True) as c:
                        c.read_deployment_by_name("deploy-pipeline/e2e")
                    break
                except Exception:
                    time.sleep(0.5)
            run = run_deployment("deploy-pipeline/e2e", timeout=300,
                                 parameters={{"n": 3, "out": {str(data)!r}, "lr": 0.1}})
            with get_client(sync_client=True) as c:
                trs = c.read_task_runs()
            print(json.dumps({{"flow_run": str(run.id), "state": run.state.type.value,
                "task_runs": {{str(t.id): {{"name": t.name, "state": t.state.type.value,
                    "stage": t.task_key.rsplit("-", 1)[0]}} for t in trs}}}}))
        ''', base, proj)
        result = json.loads(out.strip().splitlines()[-1])
        verdict["flow_run_state"] = result["state"]
        flow_run_id, task_runs = result["flow_run"], result["task_runs"]
        verdict["task_runs"] = len(task_runs)
        # the watcher records beside the in-process route: give it time to catch up
        if not args.no_watch:
            time.sleep(8)
        for proc in procs[1:]:
            _stop(proc, signal.SIGINT)
        problems = check_store(store_url, flow_run_id, task_runs, data,
                               tmp / "cmf-home" / "spool", not args.no_watch)
        for name in ("runner", "watch"):
            text = log_of[name].read_text(errors="replace") if log_of[name].exists() else ""
            bad = [line for line in text.splitlines()
                   if "cmf" in line.lower() and ("WARNING" in line or "ERROR" in line
                                                 or "Traceback" in line)]
            if bad:
                problems.append(f"{name} log: {bad[:3]}")
        verdict["problems"] = problems
    except Exception as e:
        verdict["problems"] = [f"{type(e).__name__}: {e}"]
    finally:
        for proc in reversed(procs):
            _stop(proc)
        verdict["wall_s"] = round(time.monotonic() - started, 1)
        verdict["folder"] = str(tmp)
    verdict["verdict"] = "PASS" if not verdict["problems"] else "FAIL"
    if verdict["verdict"] == "PASS" and not args.keep:  # a failed run's folder is kept
        shutil.rmtree(tmp, ignore_errors=True)
        del verdict["folder"]
    print(json.dumps(verdict, indent=2))
    return 0 if verdict["verdict"] == "PASS" else 1


if __name__ == "__main__":
    raise SystemExit(main())
