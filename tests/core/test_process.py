"""Process facts of an execution, and whether that process still runs (real processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from cmf_core.process import (
    PROPERTY,
    ProcessInfo,
    ProcessState,
    host_name,
    process_property,
    process_state,
    this_process,
)


def test_this_process_is_told_apart_by_its_start_time() -> None:
    here = this_process()
    assert (here.host, here.pid) == (host_name(), os.getpid())
    assert here.create_time == pytest.approx(psutil.Process().create_time(), abs=0.01)
    assert process_property() == {PROPERTY: here.to_dict()}
    assert ProcessInfo.from_properties(process_property()) == here
    assert process_state(here) is ProcessState.ALIVE


def test_a_killed_process_is_gone_even_before_its_parent_waits() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    info = ProcessInfo(host_name(), child.pid, psutil.Process(child.pid).create_time(),
                       this_process().pid_namespace)
    assert process_state(info) is ProcessState.ALIVE
    os.kill(child.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE:  # not waited for yet
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert process_state(info) is ProcessState.GONE
    child.wait()
    assert process_state(info) is ProcessState.GONE


def test_a_reused_pid_is_another_process() -> None:
    # pid reuse, simulated: this live pid, with a start time that is not this process's
    here = this_process()
    reused = ProcessInfo(here.host, here.pid, here.create_time - 60, here.pid_namespace)
    assert process_state(reused) is ProcessState.GONE


@pytest.mark.parametrize("info", [
    None,
    ProcessInfo("another-host", 1, 0.0),
    ProcessInfo(host_name(), 1, 0.0, pid_namespace=1),  # another pid namespace (container)
], ids=["nothing-recorded", "another-host", "another-pid-namespace"])
def test_processes_seen_from_elsewhere_are_never_judged(info: ProcessInfo | None) -> None:
    assert process_state(info) is ProcessState.UNKNOWN


@pytest.mark.parametrize("value", [
    None, "x", {}, {"host": "h", "pid": 0, "create_time": 1.0},
    {"host": "h", "pid": True, "create_time": 1.0}, {"host": "", "pid": 3, "create_time": 1.0},
    {"host": "h", "pid": 3, "create_time": "1"},
    {"host": "h", "pid": 3, "create_time": 1.0, "pid_namespace": "ns"},
])
def test_malformed_process_facts_are_no_facts(value: object) -> None:
    assert ProcessInfo.from_properties({PROPERTY: value}) is None
