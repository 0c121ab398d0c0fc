"""The energy meter contract.

A :class:`Meter` measures one component (``cpu``, ``ram`` or ``gpu``) of one task's process tree
and says how it did it. Each meter lives in its own module and sets:

* ``kind``: its name (``rapl``, ``tdp-model``, ``ram-model``, ``nvml``);
* ``component``: the component it measures.

The :class:`~cmf_core.energy.monitor.EnergyMonitor` drives every meter the same way:

1. ``start(snap)`` in the caller's thread, with the first :class:`TreeSample`. It must be fast
   (the whole start is budgeted at a few milliseconds) and may raise :class:`MeterUnavailable`,
   naming why; the monitor then falls back to another meter and records the reason.
2. ``prepare()`` once in the background sampler thread, for slow set-up (loading NVML).
3. ``sample(snap)`` from the sampler thread at ``energy_sample_hz``: reads counters (watching
   for wrap-around) or integrates power, using the real ``snap.t`` timestamps, never assumed
   intervals, so a stalled sampler (a busy thread holding the GIL) loses resolution, not energy.
4. ``stop(snap) -> Reading`` in the caller's thread, with the last sample.
5. ``close()`` once in the sampler thread when it ends.

``sample`` and ``stop`` are never called concurrently (the monitor holds a lock). Any exception a
meter raises is caught by the monitor, which falls back and records it in the reading's notes;
nothing reaches the task.

A meter whose reads can hang (NVML on a failing GPU) sets ``may_hang``: its ``stop`` then runs in
a daemon thread bounded by ``hook_timeout_s``. When that read, or a ``sample`` the sampler is stuck
in, overruns, the monitor calls ``counted(snap, why)`` instead, which must return the energy
counted so far without any read that could hang, and say so; the stuck thread is left behind
(a daemon) and the meter is not closed.

Methods written into each :class:`Reading` (and so into every ``EnergyRecord``):
``rapl`` (RAPL package counters), ``nvml-counter`` (NVML total-energy counter), ``nvml-power``
(NVML power samples integrated over time), ``model`` (a documented model), ``none`` (not
measured; the notes say why).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from cmf_core.energy.proctree import TreeSample
from cmf_core.errors import CmfError

JOULES_PER_KWH = 3.6e6
METHODS = ("rapl", "nvml-counter", "nvml-power", "model", "none")


class MeterUnavailable(CmfError):
    """A meter cannot measure on this machine; the message says why and how to enable it."""


@dataclass(frozen=True, slots=True)
class Reading:
    """Energy of one component over one task, with the method behind the number."""

    component: str
    joules: float
    method: str
    details: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def kwh(self) -> float:
        return self.joules / JOULES_PER_KWH


class Meter(ABC):
    """Base of every meter; see the module docstring for the contract."""

    kind: ClassVar[str]
    component: ClassVar[str]
    may_hang: ClassVar[bool] = False

    @abstractmethod
    def start(self, snap: TreeSample) -> None:
        """Take the first reading; raise :class:`MeterUnavailable` if this meter cannot work."""

    def prepare(self) -> None:  # noqa: B027 - optional hook
        """Slow set-up, run in the sampler thread before the first :meth:`sample`."""

    def sample(self, snap: TreeSample) -> None:  # noqa: B027 - optional hook
        """Periodic reading from the sampler thread."""

    @abstractmethod
    def stop(self, snap: TreeSample) -> Reading:
        """Last reading; return the task's energy for this component."""

    def counted(self, snap: TreeSample, why: str) -> Reading:
        """The reading from what was counted so far, reading nothing: a read is hung (``why``)."""
        return Reading(self.component, 0.0, "none", {}, (f"{self.kind} stopped answering ({why}); "
                                                         "not measured",))

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources, in the sampler thread, after the last sample."""
