"""Many processes recording into one SQLite store at once; a killed writer loses nothing ended."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from cmf_core.store import ExecutionFilter, open_store

WRITER = textwrap.dedent("""
    import sys
    from cmf_core import Cmf
    url, worker, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    cmf = Cmf(pipeline_name="shared", store=url, site=f"w{worker}", measure_energy=False)
    for i in range(n):
        with cmf.create_execution("train", params={"worker": worker, "i": i}) as ex:
            ex.log_artifact(f"s3://bucket/w{worker}/{i}", "output", "Model", version="1")
            ex.log_artifact("s3://bucket/shared.csv", "input", "Dataset", version="1")
            ex.log_execution_metrics("m", {"score": i})
        if i == n // 2:
            print("half", flush=True)
    cmf.close()
""")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMF_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[3])
    return env


def test_eight_processes_record_every_record_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cmf.db'}"
    n = 40
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, url, str(w), str(n)],
                              env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for w in range(8)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()
    with open_store(url, site="check") as s:
        execs = s.list_executions()
        assert len(execs) == 8 * n
        assert len({(e.params["worker"], e.params["i"]) for e in execs}) == 8 * n
        assert all(e.status.value == "completed" for e in execs)
        models = s.find_artifacts(type="Model")
        assert len(models) == 8 * n
        assert len(s.find_artifacts(type="Dataset")) == 1  # same bytes, one artifact
        events = s.events()
        assert len(events) == len({(e.execution_id, e.artifact_id, e.type) for e in events})
        assert len(events) == 8 * n * 3
        assert s.count_executions(ExecutionFilter(site="w3")) == n


def test_kill_9_keeps_ended_executions(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cmf.db'}"
    p = subprocess.Popen([sys.executable, "-c", WRITER, url, "0", "100000"], env=_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout is not None
    # wait until it has ended a good number of executions, then kill it without warning
    import time

    deadline = time.time() + 60
    done = 0
    while time.time() < deadline and done < 200:
        time.sleep(0.2)
        with open_store(url, site="check") as s:
            done = s.count_executions(ExecutionFilter(status="completed"))
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    with open_store(url, site="check") as s:
        completed = s.list_executions(ExecutionFilter(status="completed"))
        assert len(completed) >= done >= 200
        # every ended execution has all its records
        ids = [e.id for e in completed]
        events = s.events(execution_ids=ids)
        assert len(events) == 3 * len(ids)
        assert len({m.execution_id for m in s.metrics(ids)}) == len(ids)
        # at most the one execution in flight is left running
        assert s.count_executions(ExecutionFilter(status="running")) <= 1
