"""Process-tree counters: /proc reader and the psutil reader used elsewhere agree."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from cmf_core.energy.proctree import ProcessTree


@pytest.mark.parametrize("reader", ["auto", "psutil"])
def test_tree_includes_live_children_and_keeps_time_of_reaped_ones(reader: str) -> None:
    tree = ProcessTree(reader=reader)  # type: ignore[arg-type]
    first = tree.sample()
    busy = "import time\nwhile time.process_time() < 0.4: pass\nprint(flush=True)\ntime.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", busy], stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None
        child.stdout.readline()  # the child has burned its 0.4 s of CPU
        during = tree.sample()
        assert child.pid in during.pids and os.getpid() in during.pids
        assert during.cpu_s - first.cpu_s >= 0.35  # /proc counts in 10 ms ticks
        assert during.rss_bytes > first.rss_bytes
    finally:
        child.kill()
        child.wait()
    after = tree.sample()
    assert child.pid not in after.pids
    assert after.cpu_s >= during.cpu_s  # reaped: its time moved into ours, never lost


def test_readers_agree_on_this_process() -> None:
    procfs, ps = ProcessTree(), ProcessTree(reader="psutil")
    a, b = procfs.sample(), ps.sample()
    assert a.alive and b.alive
    assert a.cpu_s == pytest.approx(b.cpu_s, abs=0.05)
    assert a.rss_bytes == pytest.approx(b.rss_bytes, rel=0.05)


def test_reaped_child_time_never_reads_as_a_decrease() -> None:
    # the readers' numbers are fed in directly: 0.1 + 0.2 is 0.30000000000000004 in floats,
    # and when the child (pid 2) is reaped its 0.2 s reads as part of the parent's 0.3 s
    readings = iter([{1: (0.1, 10, 0), 2: (0.2, 10, 1)}, {1: (0.3, 10, 0)}])

    class Fed(ProcessTree):
        def _read_psutil(self) -> dict[int, tuple[float, int, int]]:
            return next(readings)

    tree = Fed(pid=1, reader="psutil")
    during, after = tree.sample(), tree.sample()
    assert during.pids == {1, 2} and after.pids == {1}
    assert after.cpu_s >= during.cpu_s == 0.3
