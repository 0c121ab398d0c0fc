"""Process-tree counters: /proc reader and the psutil reader used elsewhere agree."""

from __future__ import annotations

import json
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


# The scenario runs in a fresh Python process, whose tree holds only what it starts: the test
# worker's own tree also holds the servers earlier tests left running (PostgreSQL, Prefect's),
# which come and go and burn CPU that no rusage of ours counts (under pytest-xdist especially).
_REAPED_GRANDCHILD = """
import json, resource, subprocess, sys
from cmf_core.energy.proctree import ProcessTree

def rusage_cpu():
    me, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

tree = ProcessTree()
cpu0, first = rusage_cpu(), tree.sample()
busy = "import time\\nwhile time.process_time() < 0.6: pass\\nprint(flush=True)\\ntime.sleep(0.3)"
shell = subprocess.Popen(["sh", "-c", f"{sys.executable} -c '{busy}'; true"],
                         stdout=subprocess.PIPE)
shell.stdout.readline()  # the grandchild has burned its 0.6 s
during = tree.sample()
shell.wait()
after, cpu1 = tree.sample(), rusage_cpu()
print(json.dumps({"pids_during": len(during.pids), "shell_in_tree": shell.pid in during.pids,
                  "during": during.cpu_s - first.cpu_s, "after": after.cpu_s - first.cpu_s,
                  "rusage": cpu1 - cpu0}))
"""


def test_grandchild_reaped_by_a_child_that_the_tree_reaped_is_counted_once() -> None:
    # sh runs python (the grandchild), waits for it, then exits and is reaped by the tree's root,
    # all between two samples: the grandchild's time reaches the root's reaped-children time
    # through sh's, so its last seen time must not be kept as well.
    out = subprocess.run([sys.executable, "-c", _REAPED_GRANDCHILD], capture_output=True,
                         text=True, check=True)
    seen = json.loads(out.stdout.splitlines()[-1])
    assert seen["pids_during"] == 3 and seen["shell_in_tree"]  # root, sh, the grandchild
    assert seen["during"] >= 0.55
    assert seen["after"] == pytest.approx(seen["rusage"], abs=0.05)


def test_grandchild_left_running_after_its_parent_exits_keeps_its_time() -> None:
    tree = ProcessTree()
    first = tree.sample()
    busy = "import time\nwhile time.process_time() < 0.4: pass\nprint(flush=True)\ntime.sleep(30)"
    shell = subprocess.Popen(
        ["sh", "-c", f"{sys.executable} -c '{busy}' & echo $!; wait"], stdout=subprocess.PIPE
    )
    assert shell.stdout is not None
    grandchild = int(shell.stdout.readline())
    try:
        shell.stdout.readline()  # the grandchild has burned its 0.4 s
        during = tree.sample()
        assert grandchild in during.pids
        shell.kill()  # the grandchild is re-parented out of the tree, still running
        shell.wait()
        after = tree.sample()
        assert grandchild not in after.pids
        assert after.cpu_s >= during.cpu_s >= first.cpu_s + 0.35
    finally:
        os.kill(grandchild, 9)
