"""`make demo` leaves no server behind when it is killed, and its report's small readings.

The servers are real `cmf serve` processes on loopback, started by a real child process that is
then killed (SIGTERM as by `kill` or a CI timeout, SIGKILL as by the OOM killer).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# a stand-in for the demo: one site's `cmf serve`, started as the demo starts it, then wait
CHILD = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, sys.argv[1])
    import demo
    from hep.scenario import Site
    demo.stop_on_signals()
    site = Site("hpc", __import__("pathlib").Path(sys.argv[2]))
    site.home.mkdir(parents=True)
    site.open_store().close()
    site.start_server()
    try:
        site.wait_ready()
        print(site.server.pid, flush=True)
        time.sleep(600)
    finally:
        site.stop_server()
        print("stopped", flush=True)
""")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie of an exited server is not running
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return True


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.2)
    return not _alive(pid)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="signals and /proc: Linux")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name)
def test_killed_demo_leaves_no_server(tmp_path: Path, sig: signal.Signals) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMF_")}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(EXAMPLES), str(tmp_path / "hpc")],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env=env)
    server = 0
    try:
        line = child.stdout.readline()  # type: ignore[union-attr]
        assert line.strip().isdigit(), line + child.stdout.read()  # type: ignore[union-attr]
        server = int(line)
        assert _alive(server)
        child.send_signal(sig)
        rest = child.communicate(timeout=60)[0]
        if sig == signal.SIGTERM:  # left through its `finally`, as on Ctrl-C
            assert child.returncode == 128 + signal.SIGTERM and "stopped" in rest, rest
        # SIGKILL runs no `finally`: the kernel's parent-death signal stops the server
        assert _gone_within(server, 30), f"`cmf serve` {server} outlived the demo ({sig.name})"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if server and _alive(server):
            os.kill(server, signal.SIGKILL)


def test_finetune_reading_says_when_it_did_not_help() -> None:
    import demo

    worse = demo.finetune_reading({"auc_base": 0.9732, "auc_finetuned": 0.9669})
    assert "0.9732 (hpc model) -> 0.9669 (fine-tuned)" in worse
    assert "did not help" in worse
    better = demo.finetune_reading({"auc_base": 0.90, "auc_finetuned": 0.95})
    assert "did not help" not in better and "0.9000 (hpc model) -> 0.9500" in better


def test_cmf_command_is_one_that_runs(tmp_path: Path) -> None:
    import demo

    cmd = demo.cmf_command()
    # the printed command works from where the demo was run (after `make demo`, `cmf` is
    # .venv/bin/cmf, which is not on PATH unless the environment is activated)
    proc = subprocess.run([*cmd.split(), "--help"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "lineage" in proc.stdout
