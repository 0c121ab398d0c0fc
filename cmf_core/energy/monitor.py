"""EnergyMonitor: measures one task's process tree between start() and stop().

Time and CPU come from counters, never from summing sample intervals: duration is the
``time.monotonic()`` difference, CPU time the difference of the tree's kernel CPU counters, RAPL
and NVML energy the difference of their energy counters. A stalled sampler (a busy thread holding
the GIL) therefore costs resolution, not correctness.

The background sampler thread (daemon, ``cmf-energy-sampler``) runs at ``energy_sample_hz``
(at least once a minute while RAPL is used, to catch counter wrap) to watch RAPL counters,
integrate GPU power, integrate memory and find child processes. It catches ``BaseException``
and records a note; :meth:`EnergyMonitor.start` and :meth:`EnergyMonitor.stop` never raise.
Each fallback (no RAPL, no GPU, a meter failing mid-run, the process exiting early) is written
into the measurement's notes, and each component says which method measured it.

``stop()`` returns within about ``hook_timeout_s`` even when NVML hangs (a failing GPU): it waits
that long for a sampler tick in progress, reads the GPUs in a bounded daemon thread
(:func:`cmf_core.guard.run_bounded`), and on overrun takes the GPU energy counted up to the last
good reading (:meth:`~cmf_core.energy.base.Meter.counted`), with a note naming the GPU. The
stuck thread is a daemon and is left behind. ``start()`` makes no NVML call. While an NVML call
in this process has not returned after ``hook_timeout_s``, later monitors make none either: their
GPU is not measured, with a note naming that call (see :func:`cmf_core.energy.nvml.hung_call`).

Start plus stop costs about a millisecond and imports nothing heavy: no pynvml (unless a GPU is
requested or ``/dev/nvidiactl`` exists, and then only in the sampler thread), no numpy, no
psutil on Linux, and no network.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from cmf_core.energy.base import JOULES_PER_KWH, Meter, MeterUnavailable, Reading
from cmf_core.energy.nvml import NvmlMeter
from cmf_core.energy.proctree import ProcessTree, TreeSample
from cmf_core.energy.ram import RamModel
from cmf_core.energy.rapl import POWERCAP, RaplMeter
from cmf_core.energy.tdp_model import TdpModel
from cmf_core.errors import InvalidInputError
from cmf_core.guard import Timeout, run_bounded

if TYPE_CHECKING:
    from cmf_core.carbon import IntensityProvider
    from cmf_core.config import Settings
    from cmf_core.model.energy import EnergyRecord

RAPL_MAX_PERIOD_S = 60.0
_JOIN_S = 0.05


@dataclass(frozen=True, slots=True)
class Measurement:
    """What one task used, per component, with the method behind each number."""

    pid: int
    started_at: float
    duration_s: float
    cpu_time_s: float
    components: Mapping[str, Reading] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    samples: int = 0

    @property
    def it_joules(self) -> float:
        return sum(r.joules for r in self.components.values())

    @property
    def it_kwh(self) -> float:
        """Energy of the IT equipment (before PUE), in kWh."""
        return self.it_joules / JOULES_PER_KWH

    @property
    def methods(self) -> dict[str, str]:
        return {name: r.method for name, r in self.components.items()}

    def details(self) -> dict[str, Any]:
        """The measurement part of an ``EnergyRecord.details`` mapping."""
        return {
            "components": {
                name: {"kwh": r.kwh, "method": r.method, **r.details}
                for name, r in self.components.items()
            },
            "it_kwh": self.it_kwh,
            "duration_s": self.duration_s,
            "cpu_time_s": self.cpu_time_s,
            "started_at": self.started_at,
            "pid": self.pid,
            "samples": self.samples,
            "notes": list(self.notes),
        }

    def to_record(
        self,
        execution_id: str,
        settings: Settings | None = None,
        *,
        provider: IntensityProvider | None = None,
    ) -> EnergyRecord:
        """Apply PUE and grid intensity (see :mod:`cmf_core.carbon.carbon`) into a record."""
        from cmf_core.carbon import footprint, resolve_intensity
        from cmf_core.model.energy import MEASURED_KEY, EnergyRecord

        if settings is None:
            from cmf_core.config import load_settings

            settings = load_settings()
        grid, carbon_notes = resolve_intensity(settings, provider)
        fp = footprint(self.it_kwh, settings.pue, grid.g_per_kwh)
        details = self.details()
        details["notes"] = [*details["notes"], *carbon_notes]
        if not self.components:  # the monitor read nothing: 0 kWh would be a false measurement
            details[MEASURED_KEY] = False
        details.update(
            pue=settings.pue,
            intensity_g_per_kwh=grid.g_per_kwh,
            intensity_source=grid.source,
            intensity_year=grid.year,
            region=grid.region,
            grid=grid.grid,
            renewable_share=grid.renewable_share,
            renewable_share_source=grid.renewable_source,
        )
        return EnergyRecord(execution_id, settings.site, fp.energy_kwh, fp.co2e_kg, details)


class EnergyMonitor:
    """Measure a task: ``with EnergyMonitor(settings) as m: ...`` then ``m.measurement``.

    ``pid`` is the root of the measured process tree (default: this process). ``gpu``: ``True``
    measures NVML GPUs, ``False`` never, ``None`` when ``/dev/nvidiactl`` exists. ``nvml`` (an
    object with pynvml's function names) and ``powercap`` (the sysfs powercap folder) replace
    the system's, for tests and unusual mounts. Without ``settings`` the config is loaded here
    (pydantic, ~0.5 s cold): integrations pass the Settings they already hold.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        pid: int | None = None,
        gpu: bool | None = None,
        *,
        nvml: Any = None,
        powercap: str | os.PathLike[str] = POWERCAP,
    ) -> None:
        if pid is not None and (isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0):
            raise InvalidInputError(f"pid must be a positive process id, got {pid!r}")
        if settings is None:
            from cmf_core.config import load_settings

            settings = load_settings()
        self.settings = settings
        self.pid = os.getpid() if pid is None else pid
        self.measurement: Measurement | None = None
        self._gpu = gpu if gpu is not None or nvml is None else True
        self._nvml = nvml
        self._powercap = Path(powercap)
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self._meters: dict[str, Meter] = {}
        self._failed: dict[str, str] = {}
        self._hung: set[str] = set()  # meters whose read at stop never answered: not closed
        self._busy: str | None = None  # what the sampler is reading now
        self._notes: list[str] = []
        self._model: TdpModel | None = None
        self._tree: ProcessTree | None = None
        self._first: TreeSample | None = None
        self._last: TreeSample | None = None
        self._wall0 = 0.0
        self._samples = 0
        self._state = "new"

    # public API ------------------------------------------------------------------------------
    def start(self) -> EnergyMonitor:
        """Begin measuring. Never raises; problems become notes in the measurement."""
        try:
            self._start()
        except Exception as e:
            self._note(f"energy monitor could not start ({e!r}); nothing measured")
            self._state = "broken"
        return self

    def stop(self) -> Measurement:
        """End measuring and return the measurement (also kept in ``self.measurement``)."""
        if self.measurement is not None:
            return self.measurement
        try:
            m = self._stop()
        except Exception as e:
            self._note(f"energy monitor failed at stop ({e!r}); nothing measured")
            m = self._empty()
        self.measurement = m
        return m

    def __enter__(self) -> EnergyMonitor:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # start ------------------------------------------------------------------------------------
    def _start(self) -> None:
        if self._state != "new":
            self._note("start() called twice; the second call was ignored")
            return
        self._state = "running"
        self._wall0 = time.time()
        if not self.settings.energy:
            self._state = "disabled"
            self._note("energy measurement is off (CMF_ENERGY=false)")
            return
        self._tree = ProcessTree(self.pid)
        snap = self._tree.sample()
        self._first = self._last = snap
        if not snap.alive:
            self._note(f"process {self.pid} does not exist; nothing to measure")
        self._model = TdpModel(self.settings.cpu_watts_per_core)
        self._model.start(snap)
        cpu: Meter = self._model
        rapl = RaplMeter(self._powercap)
        try:
            rapl.start(snap)
            cpu = rapl
        except MeterUnavailable as e:
            self._note(f"{e}; CPU energy from the model")
        ram = RamModel(self.settings.ram_watts_per_gb)
        ram.start(snap)
        self._meters = {"cpu": cpu, "ram": ram}
        if self._want_gpu():
            gpu = NvmlMeter(self._nvml, hang_after_s=self.settings.hook_timeout_s)
            gpu.start(snap)
            self._meters["gpu"] = gpu
        period = 1.0 / self.settings.energy_sample_hz
        if cpu is rapl:
            period = min(period, RAPL_MAX_PERIOD_S)
        self._thread = threading.Thread(
            target=self._run, args=(period,), name="cmf-energy-sampler", daemon=True
        )
        self._thread.start()

    def _want_gpu(self) -> bool:
        if self._gpu is not None:
            return self._gpu
        return os.path.exists("/dev/nvidiactl")

    # sampler thread ---------------------------------------------------------------------------
    def _run(self, period: float) -> None:
        try:
            for name, meter in list(self._meters.items()):
                self._guard(name, "prepare", meter.prepare)
            while not self._halt.wait(period):
                with self._lock:
                    if self._halt.is_set():
                        break
                    self._tick()
        except BaseException as e:  # the sampler must never raise into the task
            self._note(f"energy sampler stopped ({e!r}); totals come from counters read at stop")
            self._halt.wait()  # keep the meters open (NVML) for that read; close after stop
        finally:
            with self._lock:
                for name, meter in list(self._meters.items()):
                    if name not in self._hung:  # its reading thread may still be in a call
                        self._guard(name, "close", meter.close)

    def _tick(self) -> None:
        assert self._tree is not None
        try:
            self._busy = "the process tree"
            snap = self._tree.sample()
            if self._last is not None and self._last.alive and not snap.alive:
                self._note(f"process {self.pid} exited before stop; counted up to its exit")
            self._last = snap
            self._samples += 1
            for name, meter in self._meters.items():
                if name not in self._failed:
                    self._busy = name
                    self._guard(name, "sample", lambda m=meter: m.sample(snap))
        finally:
            self._busy = None

    def _guard(self, name: str, stage: str, fn: Any) -> None:
        try:
            fn()
        except Exception as e:
            what = f"{self._meters[name].kind} failed in {stage} ({e!r})"
            if stage == "close":
                self._note(f"{name}: {what}")
            else:  # the component's reading at stop carries the note and the fallback
                self._failed[name] = what

    # stop -------------------------------------------------------------------------------------
    def _stop(self) -> Measurement:
        if self._state in ("new", "broken", "disabled"):
            if self._state == "new":
                self._note("stop() called without start(); nothing measured")
            return self._empty()
        assert self._tree is not None and self._first is not None
        readings: dict[str, Reading] = {}
        timeout = self.settings.hook_timeout_s
        deadline = time.monotonic() + timeout
        # wait for a tick in progress, but not for ever: an NVML call can hang on a failing GPU
        locked = self._lock.acquire(timeout=timeout)
        try:
            self._halt.set()  # under the lock: the sampler closes the meters after this read
            stuck = None if locked else self._busy
            snap = self._tree.sample()
            if self._last is not None and self._last.alive and not snap.alive:
                self._note(f"process {self.pid} exited before stop; counted up to its exit")
            why = f"no answer within {timeout:g} s at stop"
            if not locked and stuck not in self._meters:
                self._note(f"energy sampler stuck reading {stuck or 'a meter'} ({why})")
            for name, meter in self._meters.items():
                if not locked and (meter.may_hang or name == stuck):
                    # the sampler is stuck in a call: no read that could race with it or hang
                    readings[name] = self._counted(name, meter, snap, why)
                else:
                    readings[name] = self._finish(name, meter, snap, deadline, why)
        finally:
            if locked:
                self._lock.release()
        if self._thread is not None:
            self._thread.join(_JOIN_S)
        notes = list(self._notes)
        for reading in readings.values():
            notes.extend(f"{reading.component}: {n}" for n in reading.notes)
        return Measurement(
            pid=self.pid,
            started_at=self._wall0,
            duration_s=snap.t - self._first.t,
            cpu_time_s=max(0.0, snap.cpu_s - self._first.cpu_s),
            components=readings,
            notes=tuple(dict.fromkeys(notes)),
            samples=self._samples,
        )

    def _finish(
        self, name: str, meter: Meter, snap: TreeSample, deadline: float, why: str
    ) -> Reading:
        if name not in self._failed:
            try:
                if meter.may_hang:  # at least a tenth of the bound, however long the lock took
                    left = max(deadline - time.monotonic(), self.settings.hook_timeout_s / 10)
                    reading = run_bounded(lambda: meter.stop(snap), left, f"energy-{name}-stop")
                else:
                    reading = meter.stop(snap)
                if meter is not self._model and name == "cpu" and self._model is not None:
                    model_j = self._model.stop(snap).joules
                    reading = Reading(
                        reading.component,
                        reading.joules,
                        reading.method,
                        {**reading.details, "model_j": model_j},
                        reading.notes,
                    )
                return reading
            except Timeout:
                self._hung.add(name)
                return self._counted(name, meter, snap, why)
            except Exception as e:
                self._failed[name] = f"{meter.kind} failed in stop ({e!r})"
        why = self._failed[name]
        if name == "cpu" and self._model is not None and meter is not self._model:
            model = self._model.stop(snap)
            return Reading("cpu", model.joules, "model", model.details, (f"{why}; used the model",))
        return Reading(name, 0.0, "none", {}, (f"{why}; not measured",))

    def _counted(self, name: str, meter: Meter, snap: TreeSample, why: str) -> Reading:
        try:
            return meter.counted(snap, why)
        except Exception as e:  # state changed under it by the thread that came back: rare
            return Reading(name, 0.0, "none", {}, (f"{meter.kind} stopped answering ({why}); "
                                                   f"not measured ({e!r})",))

    # helpers ----------------------------------------------------------------------------------
    def _note(self, text: str) -> None:
        self._notes.append(text)

    def _empty(self) -> Measurement:
        return Measurement(
            pid=self.pid,
            started_at=self._wall0 or time.time(),
            duration_s=0.0,
            cpu_time_s=0.0,
            notes=tuple(dict.fromkeys(self._notes)),
        )


@contextmanager
def measure(
    settings: Settings | None = None, pid: int | None = None, gpu: bool | None = None, **kwargs: Any
) -> Iterator[EnergyMonitor]:
    """``with measure(settings) as m: work()``; afterwards ``m.measurement`` is set."""
    monitor = EnergyMonitor(settings, pid, gpu, **kwargs)
    monitor.start()
    try:
        yield monitor
    finally:
        monitor.stop()
