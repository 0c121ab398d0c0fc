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
