"""CPU power model, used where RAPL counters cannot be read.

    cpu_joules = cpu_time_s x watts_per_core

``cpu_time_s`` is the user + system CPU time of the task's process tree (reaped children
included) between start and stop, from kernel counters; ``watts_per_core`` is, in this order:

1. the ``cpu_watts_per_core`` setting (``CMF_CPU_WATTS_PER_CORE``);
2. TDP / physical cores of the CPU model, from the bundled ``tdp_cpu.csv`` (sources in its
   header), matched against the CPU model name;
3. 12 W per core, the Green Algorithms default for an unknown CPU (Lannelongue et al. 2021).

A task that sleeps costs ~0 CPU energy; one busy core for 20 s costs 20 s x watts_per_core. The
model ignores idle and uncore power and counts each hyper-thread as a core, so it under-counts
idle machines and over-counts SMT-heavy work; records say ``method: model`` so it can be told
apart from RAPL.
"""

from __future__ import annotations

import csv
import functools
import re
from pathlib import Path

from cmf_core.energy.base import Meter, Reading
from cmf_core.energy.proctree import TreeSample

DEFAULT_WATTS_PER_CORE = 12.0
TABLE = Path(__file__).with_name("tdp_cpu.csv")


def _normalise(name: str) -> str:
    name = re.sub(r"\((r|tm)\)|\bcpu\b|\bprocessor\b|@.*$", " ", name.lower())
    return " ".join(name.split())


@functools.cache
def cpu_model_name() -> str:
    """The CPU model name from /proc/cpuinfo (first entry only, a cheap read), else ''."""
    try:
        with open("/proc/cpuinfo", "rb") as fh:
            head = fh.read(4096).decode(errors="replace")
    except OSError:
        import platform

        return platform.processor()
    for line in head.splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return ""


@functools.cache
def _table() -> tuple[tuple[str, float, int], ...]:
    with TABLE.open(encoding="utf-8") as fh:
        rows = csv.DictReader(line for line in fh if not line.startswith("#"))
        return tuple((_normalise(r["model"]), float(r["tdp_w"]), int(r["cores"])) for r in rows)


def lookup_tdp(model_name: str) -> tuple[float, int, str] | None:
    """(tdp_w, cores, matched model) for a CPU model name, or None when not in the table."""
    name = _normalise(model_name)
    rows = (r for r in _table() if re.search(re.escape(r[0]) + r"(?! v\d)", name))  # v3 != v1
    best = max(rows, key=lambda r: len(r[0]), default=None)
    return None if best is None else (best[1], best[2], best[0])


def watts_per_core(configured: float | None = None, model_name: str | None = None) -> tuple[
    float, str
]:
    """(watts per busy core, where the number came from)."""
    if configured is not None:
        return configured, "setting cpu_watts_per_core"
    name = cpu_model_name() if model_name is None else model_name
    found = lookup_tdp(name)
    if found is not None:
        tdp, cores, key = found
        return tdp / cores, f"tdp table: {key} {tdp:g} W / {cores} cores"
    return DEFAULT_WATTS_PER_CORE, f"default for unknown CPU {name or '?'!r} (Green Algorithms)"


class TdpModel(Meter):
    """CPU energy from CPU time x per-core power."""

    kind = "tdp-model"
    component = "cpu"

    def __init__(self, watts: float | None = None) -> None:
        self._configured = watts
        self._cpu0 = 0.0

    def start(self, snap: TreeSample) -> None:
        self._cpu0 = snap.cpu_s

    def stop(self, snap: TreeSample) -> Reading:
        watts, source = watts_per_core(self._configured)
        cpu = max(0.0, snap.cpu_s - self._cpu0)
        return Reading(
            "cpu",
            cpu * watts,
            "model",
            {"watts_per_core": watts, "watts_source": source, "cpu_time_s": cpu},
        )
