"""A real process that starts an execution through the ``Cmf`` API and keeps it running, so a
test can kill it outright (as the out-of-memory killer would) or leave it alive."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from dataclasses import dataclass

_CHILD = textwrap.dedent("""
    import sys, time
    from cmf_core import Cmf

    cmf = Cmf(pipeline_name=sys.argv[2], store=sys.argv[1], site="hpc", measure_energy=False)
    ex = cmf.create_execution(sys.argv[3], params={"lr": 0.1})
    while cmf.store.get_execution(ex.id) is None:  # its "running" row is written after 0.5 s
        time.sleep(0.05)
    print(ex.id, flush=True)
    time.sleep(600)
""")


@dataclass
class RunningChild:
    """The child process and the id of the execution it keeps running."""

    proc: subprocess.Popen[str]
    execution_id: str

    def kill(self) -> None:
        """SIGKILL, as the out-of-memory killer sends it; waits for the child to be gone."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.kill()


def start_execution(store_url: str, pipeline: str = "oom", stage: str = "train") -> RunningChild:
    """Start a child process that records a running execution in ``store_url`` and waits."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMF_") or k == "CMF_HOME"}
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, store_url, pipeline, stage],
                            stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line:
        proc.kill()
        raise AssertionError(f"the child exited ({proc.wait()}) before starting its execution")
    return RunningChild(proc, line)
