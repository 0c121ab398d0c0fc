"""Where an execution runs: its process's host, pid and start time, and whether it is still there.

An execution started in this process records :func:`process_property` among its properties
(``cmf.process``: host, pid, the process's start time and, on Linux, the boot id, the start
time in clock ticks since boot and the pid namespace). The
``Cmf`` API does so for every execution; the orchestrator adapters do so for the START events
they build in the task's own process (never for events seen from outside, such as a watcher's
or an importer's, whose process is not the task's). Events from other OpenLineage producers
carry nothing of the kind.

:func:`process_state` tells, later and on the same host, whether that process is still running:
the pid alone is not enough, since the system hands a finished process's pid to a new one, so
the process's start time must match too. On Linux the machine is known by its boot id (host
names repeat across cloned machines, and the first pid namespace has the same inode on every
machine) and the start is compared in clock ticks since boot, exactly, which no change of
the wall clock moves. A process recorded on another host, another boot (another machine of
the same name, or this one before a restart) or another pid namespace, or an execution
without the property, is never judged: its state is ``unknown``.

An orchestrator may release a run's process while the run goes on (an Airflow try deferred to
its trigger, waiting for human input or rescheduled): the adapter that recorded the process
then records :func:`released_property` too (``cmf.process_released``: when, and why), and the
run, waiting without a process, is never judged either (see :func:`cmf_core.lost.judge`).
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import os
import socket
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_LINUX = sys.platform.startswith("linux")
_TICK = os.sysconf("SC_CLK_TCK") if _LINUX else 100

PROPERTY = "cmf.process"
"""Execution property holding the :class:`ProcessInfo` of the process that ran it."""

RELEASED = "cmf.process_released"
"""Execution property recorded when the orchestrator released the run's process while the run
goes on (it waits without a process): ``{"at": RFC 3339 time, "reason": text}``."""

START_TIME_TOLERANCE_S = 1.0
"""Where start times are compared in seconds (not on Linux, where clock ticks since boot are
compared exactly): a live pid whose start time differs from the recorded one by more than
this is another process (the pid was reused); a reused pid within that second counts as
alive, the safe side (an execution is never marked failed while its process may still
run)."""

MAX_PID = 2**31 - 1
"""Largest pid taken from recorded facts (a C ``int``; Linux allows at most 2**22)."""


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """One process, told apart from any later process that gets the same pid."""

    host: str
    pid: int
    create_time: float  # Unix seconds the process started (psutil's ``create_time``)
    pid_namespace: int | None = None  # Linux: inode of ``/proc/self/ns/pid``
    boot_id: str | None = None  # Linux: ``/proc/sys/kernel/random/boot_id``
    start_ticks: int | None = None  # Linux: start in clock ticks since boot (stat field 22)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"host": self.host, "pid": self.pid,
                                "create_time": self.create_time}
        for key in ("pid_namespace", "boot_id", "start_ticks"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        return data

    @classmethod
    def from_properties(cls, properties: Mapping[str, Any]) -> ProcessInfo | None:
        """The process recorded in execution ``properties``; None if absent or malformed."""
        data = properties.get(PROPERTY)
        if not isinstance(data, Mapping):
            return None
        host, pid, started = data.get("host"), data.get("pid"), data.get("create_time")
        ns, boot, ticks = data.get("pid_namespace"), data.get("boot_id"), data.get("start_ticks")
        if (not isinstance(host, str) or not host or not _is_int(pid) or not 0 < pid <= MAX_PID
                or not isinstance(started, (int, float)) or isinstance(started, bool)
                or (ns is not None and not _is_int(ns))
                or (boot is not None and (not isinstance(boot, str) or not boot))
                or (ticks is not None and (not _is_int(ticks) or ticks < 0))):
            return None
        return cls(host, pid, float(started), ns, boot, ticks)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class ProcessState(enum.StrEnum):
    """What is known, here, about a recorded process."""

    ALIVE = "alive"
    GONE = "gone"  # no such process (or a zombie), or its pid now belongs to another process
    UNKNOWN = "unknown"  # another host or pid namespace, nothing recorded, or released


def host_name() -> str:
    """This machine's host name, as processes record it."""
    return socket.gethostname()


def _pid_namespace() -> int | None:
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:  # not Linux, or /proc not mounted
        return None


@functools.cache
def _boot_id() -> str | None:
    """Linux: this boot's id (a new one at every start of the machine)."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as fh:
            return fh.read().strip() or None
    except OSError:
        return None


@functools.cache
def _boot_time() -> float:
    """Linux: Unix seconds the machine booted (``btime`` of ``/proc/stat``, as psutil reads)."""
    with open("/proc/stat", "rb") as fh:
        for line in fh:
            if line.startswith(b"btime "):
                return float(line.split()[1])
    raise OSError("/proc/stat has no btime line")


def stat_fields(pid: int) -> list[bytes] | None:
    """Linux: the fields of ``/proc/<pid>/stat`` from the 3rd (state) on, so field ``n`` of
    proc(5) is item ``n - 3``; None if there is no such process (it may end while being
    read). PermissionError when ``/proc`` hides the process (another user's, ``hidepid``)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            text = fh.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text[text.rfind(b")") + 2:].split() or None  # the name may hold spaces and ")"


def _proc_stat(pid: int) -> tuple[str, int | None] | None:
    """Linux: (state letter, start in clock ticks since boot) of ``pid``; None if there is no
    such process. A process that ``/proc`` hides gives ``("?", None)``."""
    try:
        rest = stat_fields(pid)
    except PermissionError:
        try:
            os.kill(pid, 0)  # signal 0: only asks whether the pid exists
        except ProcessLookupError:
            return None
        except PermissionError:  # it exists: another user's process
            pass
        return "?", None
    return None if rest is None else (rest[0].decode(), int(rest[19]))


def _psutil_stat(pid: int) -> tuple[str, float | None] | None:
    """Elsewhere: (state, start time in Unix seconds) through psutil (``"Z"`` for a
    zombie)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        zombie = proc.status() == psutil.STATUS_ZOMBIE
        return ("Z" if zombie else "R"), proc.create_time()
    except psutil.NoSuchProcess:
        return None
    except psutil.Error:  # access denied: it exists
        return "?", None


def describe(pid: int) -> ProcessInfo:
    """The facts that tell process ``pid`` of this machine apart; OSError if it cannot be
    read (no such process, or its start time is hidden)."""
    # /proc on Linux: psutil's import alone costs tens of milliseconds in a task's start
    if _LINUX:
        stat = _proc_stat(pid)
        ticks = stat[1] if stat is not None else None
        if ticks is None:
            raise OSError(f"cannot read the start time of process {pid}")
        return ProcessInfo(host_name(), pid, _boot_time() + ticks / _TICK, _pid_namespace(),
                           _boot_id(), ticks)
    found = _psutil_stat(pid)
    if found is None or found[1] is None:
        raise OSError(f"cannot read the start time of process {pid}")
    return ProcessInfo(host_name(), pid, found[1])


@functools.lru_cache(maxsize=4)
def _described(pid: int) -> ProcessInfo:
    return describe(pid)


def this_process() -> ProcessInfo:
    """This process (looked up once per pid: a forked child gets its own)."""
    return _described(os.getpid())


def process_property() -> dict[str, Any]:
    """``{"cmf.process": ...}`` for this process, to merge into an execution's properties;
    empty if the process cannot be described (tracking never fails because of it)."""
    try:
        return {PROPERTY: this_process().to_dict()}
    except Exception:  # its start time cannot be read: the execution is just not judged
        return {}


def released_property(reason: str, at: float | None = None) -> dict[str, Any]:
    """``{"cmf.process_released": ...}``: the run's process was released by the orchestrator
    at ``at`` (Unix seconds, default now) for ``reason`` (e.g. ``deferred``), and the run waits
    without a process; merged into its properties, it is never judged lost."""
    when = time.time() if at is None else at
    return {RELEASED: {"at": dt.datetime.fromtimestamp(when, dt.UTC).isoformat(
        timespec="microseconds"), "reason": str(reason)}}


def is_released(properties: Mapping[str, Any]) -> bool:
    """Whether execution ``properties`` say the run's process was released (any recorded value
    counts: a run is never guessed lost)."""
    return properties.get(RELEASED) is not None


def process_state(info: ProcessInfo | None) -> ProcessState:
    """Whether the process ``info`` describes is still running, seen from here. Never raises:
    what cannot be read is ``unknown``."""
    if info is None:
        return ProcessState.UNKNOWN
    try:
        return _state(info, this_process())
    except Exception:  # this process cannot be described, or /proc answered oddly
        return ProcessState.UNKNOWN


def _state(info: ProcessInfo, here: ProcessInfo) -> ProcessState:
    if info.host != here.host or info.pid_namespace != here.pid_namespace \
            or info.boot_id != here.boot_id:
        return ProcessState.UNKNOWN
    if _LINUX and (here.boot_id is None or info.start_ticks is None):
        return ProcessState.UNKNOWN  # the machine or the start cannot be told for sure
    found = _proc_stat(info.pid) if _LINUX else _psutil_stat(info.pid)
    if found is None:
        return ProcessState.GONE
    state, started = found
    if state in ("Z", "X"):  # ended, and its parent has not waited for it yet
        return ProcessState.GONE
    if started is None:  # it exists, but its start time cannot be read: it may be the one
        return ProcessState.ALIVE
    if _LINUX:
        same = started == info.start_ticks
    else:
        same = abs(started - info.create_time) <= START_TIME_TOLERANCE_S
    return ProcessState.ALIVE if same else ProcessState.GONE  # else: the pid was reused
