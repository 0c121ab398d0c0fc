"""CPU time and resident memory of a process tree, read from kernel counters.

On Linux the tree is walked through ``/proc/<pid>/task/<tid>/children`` and each process is read
from one ``/proc/<pid>/stat`` (utime, stime, cutime, cstime, rss); the monitored process itself,
when it is the current one, is read with ``getrusage`` (microsecond resolution). Elsewhere, or
when the kernel lacks ``CONFIG_PROC_CHILDREN``, psutil is imported (lazily) and used instead.

Counting rule: a process's CPU time includes its reaped children (``cutime``/``cstime``), so a
child that exits and is reaped by a parent in the tree moves its time into that parent and is
counted once; so does a grandchild that its parent waited for before being reaped in the tree
(a shell running a command). A process that vanishes while its parent is not in the tree (the
monitored process itself exiting, or an orphan) keeps its last seen time, so the total never
goes backwards.
Limitation: a grandchild re-parented to init after its parent exits leaves the tree; its later
CPU time is not counted.
"""

from __future__ import annotations

import math
import os
import resource
import sys
import time
from dataclasses import dataclass
from typing import Any, Literal

from cmf_core.process import stat_fields

_LINUX = sys.platform.startswith("linux")
_TICK = os.sysconf("SC_CLK_TCK") if _LINUX else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if _LINUX else 4096


@dataclass(frozen=True, slots=True)
class TreeSample:
    """One reading of the tree: ``t`` is ``time.monotonic()``; ``cpu_s`` is cumulative."""

    t: float
    cpu_s: float
    rss_bytes: int
    pids: frozenset[int]
    alive: bool


def _read_stat(pid: int) -> tuple[float, int, int] | None:
    """(cpu seconds incl. reaped children, rss bytes, ppid) of ``pid``, or None if gone."""
    try:
        rest = stat_fields(pid)
    except OSError:
        return None
    if rest is None:
        return None
    cpu = (int(rest[11]) + int(rest[12]) + int(rest[13]) + int(rest[14])) / _TICK
    return cpu, int(rest[21]) * _PAGE, int(rest[1])


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as fh:
                out.extend(int(c) for c in fh.read().split())
        except OSError:
            continue
    return out


def _self_cpu() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


class ProcessTree:
    """Reads a process and its descendants; :meth:`sample` is cheap enough to call at 1 Hz."""

    def __init__(self, pid: int | None = None, reader: Literal["auto", "psutil"] = "auto") -> None:
        self.pid = os.getpid() if pid is None else pid
        self._lost = 0.0
        self._last: dict[int, tuple[float, int, int]] = {}
        self._procfs = (
            reader == "auto"
            and _LINUX
            and os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children")
        )
        self._psutil: Any = None

    def sample(self) -> TreeSample:
        current = self._read_procfs() if self._procfs else self._read_psutil()
        for pid, (cpu, _rss, ppid) in self._last.items():
            if pid not in current and not self._reaped_in_tree(pid, ppid, current):
                self._lost += cpu  # exited and not reaped inside the tree: keep its last time
        self._last = current
        return TreeSample(
            t=time.monotonic(),
            # rounded to the microsecond (the finest counter, rusage's): a child's time that
            # moves into its parent's on reaping must not read as a float-rounding decrease
            cpu_s=round(math.fsum(v[0] for v in current.values()) + self._lost, 6),
            rss_bytes=sum(v[1] for v in current.values()),
            pids=frozenset(current),
            alive=self.pid in current,
        )

    def _reaped_in_tree(
        self, pid: int, ppid: int, current: dict[int, tuple[float, int, int]]
    ) -> bool:
        """Whether the time of ``pid`` (gone since the last sample) now shows in the reaped-children
        time of a process still in the tree: its parent is in the tree, or it is gone from the
        system and its parent, gone too, was reaped in the tree in turn (a shell that waited for
        its command, then exited). A process still running elsewhere (re-parented) was not."""
        seen = {pid}
        while ppid not in current:
            if ppid not in self._last or ppid in seen or self._exists(pid):
                return False
            seen.add(ppid)
            pid, ppid = ppid, self._last[ppid][2]
        return True

    def _exists(self, pid: int) -> bool:
        if self._procfs:
            return os.path.exists(f"/proc/{pid}")
        return self._psutil is not None and bool(self._psutil.pid_exists(pid))

    def _read_procfs(self) -> dict[int, tuple[float, int, int]]:
        current: dict[int, tuple[float, int, int]] = {}
        root = _read_stat(self.pid)
        if root is None:
            return current
        if self.pid == os.getpid():
            root = (_self_cpu(), root[1], root[2])
        current[self.pid] = root
        todo = _children(self.pid)
        while todo:
            pid = todo.pop()
            if pid in current:
                continue
            stat = _read_stat(pid)
            if stat is not None:
                current[pid] = stat
                todo.extend(_children(pid))
        return current

    def _read_psutil(self) -> dict[int, tuple[float, int, int]]:
        if self._psutil is None:
            import psutil  # only where /proc lacks what we need

            self._psutil = psutil
        psutil = self._psutil
        current: dict[int, tuple[float, int, int]] = {}
        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return current
        for proc in procs:
            try:
                with proc.oneshot():
                    c = proc.cpu_times()
                    cpu = c.user + c.system + c.children_user + c.children_system
                    current[proc.pid] = (cpu, proc.memory_info().rss, proc.ppid())
            except psutil.Error:
                continue
        return current
