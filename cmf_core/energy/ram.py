"""RAM power model.

    ram_joules = ram_watts_per_gb x integral of RSS_GiB dt

RSS is the resident memory of the task's process tree (summed over processes, so shared pages
count once per process: an upper bound), read at start, at every sample and at stop, and
integrated with the trapezoid rule over the real sample timestamps. ``ram_watts_per_gb``
(``CMF_RAM_WATTS_PER_GB``, default 0.375 W, i.e. 3 W per 8 GiB DIMM, the figure CodeCarbon uses)
counts memory the task holds, busy or not, so a sleeping task still reports RAM energy.
"""

from __future__ import annotations

from cmf_core.energy.base import Meter, Reading
from cmf_core.energy.proctree import TreeSample

GIB = float(1 << 30)


class RamModel(Meter):
    """Per-GiB model of memory power over the task's resident set."""

    kind = "ram-model"
    component = "ram"

    def __init__(self, watts_per_gb: float) -> None:
        self.watts_per_gb = watts_per_gb
        self._gib_s = 0.0
        self._last: TreeSample | None = None
        self._peak = 0

    def start(self, snap: TreeSample) -> None:
        self._gib_s, self._last, self._peak = 0.0, snap, snap.rss_bytes

    def sample(self, snap: TreeSample) -> None:
        last = self._last
        if last is not None and snap.t > last.t:
            self._gib_s += (last.rss_bytes + snap.rss_bytes) / 2 / GIB * (snap.t - last.t)
        self._last = snap
        self._peak = max(self._peak, snap.rss_bytes)

    def stop(self, snap: TreeSample) -> Reading:
        self.sample(snap)
        return Reading(
            "ram",
            self._gib_s * self.watts_per_gb,
            "model",
            {
                "watts_per_gb": self.watts_per_gb,
                "gib_s": self._gib_s,
                "peak_rss_bytes": self._peak,
            },
        )
