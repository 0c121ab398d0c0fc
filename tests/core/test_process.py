"""Process facts of an execution, and whether that process still runs (real processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import psutil
import pytest

from cmf_core.process import (
    PROPERTY,
    ProcessInfo,
    ProcessState,
    describe,
    host_name,
    process_property,
    process_state,
    this_process,
)

LINUX = sys.platform.startswith("linux")


def test_this_process_is_told_apart_by_its_start_time() -> None:
    here = this_process()
    assert (here.host, here.pid) == (host_name(), os.getpid())
    assert here.create_time == pytest.approx(psutil.Process().create_time(), abs=0.01)
    assert process_property() == {PROPERTY: here.to_dict()}
    assert ProcessInfo.from_properties(process_property()) == here
    assert process_state(here) is ProcessState.ALIVE
    if LINUX:  # the machine by its boot id, the start in clock ticks since boot
        with open("/proc/sys/kernel/random/boot_id") as fh:
            assert here.boot_id == fh.read().strip()
        assert isinstance(here.start_ticks, int) and here.start_ticks > 0


def test_a_killed_process_is_gone_even_before_its_parent_waits() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    info = describe(child.pid)
    assert info.create_time == pytest.approx(psutil.Process(child.pid).create_time(), abs=0.01)
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
    reused = replace(here, create_time=here.create_time - 60,
                     start_ticks=None if here.start_ticks is None else here.start_ticks - 6000)
    assert process_state(reused) is ProcessState.GONE
    if LINUX:  # ticks since boot are compared exactly: a wall-clock step changes nothing
        stepped = replace(here, create_time=here.create_time + 3600)
        assert process_state(stepped) is ProcessState.ALIVE


def _gone_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize("edit", [
    lambda here: None,
    lambda here: replace(here, host="another-host"),
    lambda here: replace(here, pid_namespace=1),  # another pid namespace (container)
    # the same host name and namespace on another machine (cloned images), or before a restart
    lambda here: replace(here, boot_id="0f0f0f0f-another-boot"),
    # a Linux record without the boot id and start ticks: the machine cannot be told for sure
    lambda here: replace(here, boot_id=None, start_ticks=None) if LINUX else None,
], ids=["nothing-recorded", "another-host", "another-pid-namespace", "another-boot",
        "no-boot-facts"])
def test_processes_seen_from_elsewhere_are_never_judged(edit: object) -> None:
    info = edit(replace(this_process(), pid=_gone_pid()))  # type: ignore[operator]
    assert process_state(info) is ProcessState.UNKNOWN


@pytest.mark.parametrize("value", [
    None, "x", {}, {"host": "h", "pid": 0, "create_time": 1.0},
    {"host": "h", "pid": True, "create_time": 1.0}, {"host": "", "pid": 3, "create_time": 1.0},
    {"host": "h", "pid": 3, "create_time": "1"},
    {"host": "h", "pid": 3, "create_time": 1.0, "pid_namespace": "ns"},
    {"host": "h", "pid": 2**40, "create_time": 1.0},  # os.kill would overflow
    {"host": "h", "pid": 3, "create_time": 1.0, "boot_id": ""},
    {"host": "h", "pid": 3, "create_time": 1.0, "start_ticks": -1},
])
def test_malformed_process_facts_are_no_facts(value: object) -> None:
    assert ProcessInfo.from_properties({PROPERTY: value}) is None
