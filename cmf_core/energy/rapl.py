"""CPU energy from RAPL package counters under /sys/class/powercap.

Zones: every top-level ``intel-rapl:<n>`` zone whose ``name`` starts with ``package`` (one per
socket; AMD Zen CPUs use the same driver and names). Sub-zones (core, uncore, dram) are not
added: core and uncore are inside the package, and RAM has its own model.

Counters: ``energy_uj`` counts microjoules and wraps to 0 after ``max_energy_range_uj``, so a
delta is ``cur - prev`` or, when ``cur < prev``, ``cur + max - prev``. The monitor's sampler
thread reads the counters at least once a minute (a wrap takes ``max / power``, about 15 minutes
for 262 kJ at 300 W), so at most one wrap happens between two reads, unless a C call that holds
the GIL stalls the sampler past a wrap: :meth:`RaplReader.missed_wrap_notes` then says that whole
wraps may have been missed. A drop that a wrap
explains only at more than :data:`MAX_PACKAGE_W` over the time since the last read (plus
:data:`SLACK_J`) is a reset of the counter (a driver reload): counted from 0, not as a wrap.

Attribution: the task gets ``package_joules x share`` with ``share = task_cpu_s / busy_cpu_s``,
where ``busy_cpu_s`` is the whole machine's non-idle CPU time (user, nice, system, irq, softirq
from /proc/stat) over the same interval, capped at 1 (the attribution Scaphandre uses). A task
alone on a machine therefore carries its package's idle power too; a sleeping task carries ~none.

Unreadable counters: since Linux 5.10 ``energy_uj`` is readable by root only (CVE-2020-8694).
Run as root or grant read access (a udev rule running ``chmod a+r`` on the ``energy_uj`` files);
until then the monitor falls back to the CPU model and says so in the record.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cmf_core.energy.base import Meter, MeterUnavailable, Reading
from cmf_core.energy.proctree import TreeSample

POWERCAP = Path("/sys/class/powercap")
PROC_STAT = Path("/proc/stat")
_ZONE = re.compile(r"^intel-rapl:\d+$")
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
#: more than any CPU package draws (the largest server parts peak well under 1 kW)
MAX_PACKAGE_W = 2000.0
#: energy a wrap may add beyond MAX_PACKAGE_W x interval (reads late by scheduling)
SLACK_J = 1000.0


@dataclass(slots=True)
class _Zone:
    name: str
    counter: Path
    max_uj: int
    last_uj: int
    read_at: float
    joules: float = 0.0
    wraps: int = 0
    resets: int = 0
    unread_s: float = 0.0  # the longest time between two reads


def _read_int(path: Path) -> int:
    try:
        return int(path.read_bytes())
    except PermissionError:
        raise MeterUnavailable(
            f"RAPL counter {path} is readable by root only (Linux >= 5.10, CVE-2020-8694); "
            "run as root or grant read access (udev rule: chmod a+r .../energy_uj)"
        ) from None
    except (OSError, ValueError) as e:
        raise MeterUnavailable(f"cannot read RAPL counter {path}: {e}") from None


class RaplReader:
    """Accumulates joules of every package zone, handling wrap-around."""

    def __init__(self, root: Path = POWERCAP,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        if not root.is_dir():
            raise MeterUnavailable(f"no RAPL: {root} does not exist (no powercap on this system)")
        self.zones: list[_Zone] = []
        for zone in sorted(root.iterdir()):
            if not _ZONE.match(zone.name):
                continue
            try:
                name = (zone / "name").read_text().strip()
            except OSError:
                continue
            if name.startswith("package"):
                counter = zone / "energy_uj"
                first = _read_int(counter)
                self.zones.append(
                    _Zone(name, counter, _read_int(zone / "max_energy_range_uj"), first,
                          clock())
                )
        if not self.zones:
            raise MeterUnavailable(f"no RAPL package zone (intel-rapl:N named package-*) in {root}")

    def read(self) -> float:
        """Joules consumed by all packages since this reader was opened."""
        for z in self.zones:
            cur, now = _read_int(z.counter), self.clock()
            wrapped = cur + z.max_uj - z.last_uj
            if cur >= z.last_uj:
                delta = cur - z.last_uj
            elif (z.last_uj > z.max_uj  # no wrap gives this drop, or only an impossible power
                  or wrapped / 1e6 > MAX_PACKAGE_W * (now - z.read_at) + SLACK_J):
                delta = cur  # a reset: count from 0
                z.resets += 1
            else:
                delta = wrapped
                z.wraps += 1
            z.unread_s = max(z.unread_s, now - z.read_at)
            z.last_uj, z.read_at = cur, now
            z.joules += delta / 1e6
        return sum(z.joules for z in self.zones)

    def missed_wrap_notes(self) -> list[str]:
        """A note when a zone went unread so long that a second wrap could hide in one gap.

        A reader sees at most one wrap per gap: after ``max_energy_range_uj`` of energy the
        counter reads the same again. The sampler reads at least once a minute, but a C call that
        holds the GIL stalls it for as long as the call runs, and whole wraps in such a gap are
        lost. Whether any were cannot be known; the note gives the power at which they would be.
        """
        risky = [z for z in self.zones
                 if z.unread_s > 0 and z.max_uj / 1e6 / z.unread_s < MAX_PACKAGE_W]
        if not risky:
            return []
        gap = max(z.unread_s for z in risky)
        range_j = min(z.max_uj for z in risky) / 1e6
        return [
            f"RAPL {', '.join(z.name for z in risky)} went unread for up to {gap:.0f} s (the "
            "sampler thread was stalled, as by a C call that holds the GIL); a counter wraps "
            f"every {range_j / 1000:.0f} kJ, so if a package averaged more than "
            f"{range_j / gap:.0f} W then, whole wraps were missed and its energy is under-counted"
        ]


def busy_cpu_s(path: Path = PROC_STAT) -> float:
    """Non-idle CPU seconds of the whole machine since boot (user+nice+system+irq+softirq)."""
    with path.open("rb") as fh:
        fields = fh.readline().split()
    user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in fields[1:8])
    return (user + nice + system + irq + softirq) / _TICK


class RaplMeter(Meter):
    """Package energy x the task's share of the machine's busy CPU time."""

    kind = "rapl"
    component = "cpu"

    def __init__(self, root: Path = POWERCAP, proc_stat: Path = PROC_STAT,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.root, self.proc_stat, self.clock = Path(root), Path(proc_stat), clock
        self.reader: RaplReader | None = None
        self._busy0 = self._cpu0 = 0.0

    def start(self, snap: TreeSample) -> None:
        self.reader = RaplReader(self.root, self.clock)
        try:
            self._busy0 = busy_cpu_s(self.proc_stat)
        except (OSError, ValueError) as e:
            raise MeterUnavailable(f"cannot read {self.proc_stat} for the CPU share: {e}") from e
        self._cpu0 = snap.cpu_s

    def sample(self, snap: TreeSample) -> None:
        if self.reader is not None:
            self.reader.read()

    def stop(self, snap: TreeSample) -> Reading:
        if self.reader is None:
            raise MeterUnavailable("RAPL meter stopped before it was started")
        package_j = self.reader.read()
        busy = busy_cpu_s(self.proc_stat) - self._busy0
        task = max(0.0, snap.cpu_s - self._cpu0)
        share = min(1.0, task / busy) if busy > 0 else (1.0 if task > 0 else 0.0)
        return Reading(
            "cpu",
            package_j * share,
            "rapl",
            {
                "package_j": package_j,
                "share": share,
                "busy_cpu_s": busy,
                "cpu_time_s": task,
                "zones": [z.name for z in self.reader.zones],
                "wraps": sum(z.wraps for z in self.reader.zones),
                "resets": sum(z.resets for z in self.reader.zones),
                "max_unread_s": max(z.unread_s for z in self.reader.zones),
            },
            tuple(self.reader.missed_wrap_notes()),
        )
