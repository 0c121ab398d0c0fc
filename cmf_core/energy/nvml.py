"""GPU energy from NVML (nvidia-ml-py, the ``gpu`` extra), for every GPU NVML can see.

``pynvml`` is imported only here, and only in :meth:`NvmlMeter.prepare`, which runs in the
sampler thread: importing ``cmf_core.energy`` never loads it, and ``nvmlInit`` (0.1-1 s without
persistence mode) never delays the task. Readings begin when NVML is ready; the gap between the
task's start and the first reading is filled with the first power reading (``gap_s``).

Method, per GPU:

* ``nvml-counter``: ``nvmlDeviceGetTotalEnergyConsumption`` (mJ, Volta and newer); energy is
  the counter's delta.
* ``nvml-power``: on older GPUs (the counter call fails), ``nvmlDeviceGetPowerUsage`` (mW)
  sampled at ``energy_sample_hz`` and integrated with the trapezoid rule over the real sample
  times. Raise ``energy_sample_hz`` for bursty loads on such GPUs.

Share of each interval's energy given to the task:

1. ``process-utilisation``: SM utilisation of the task's PIDs / SM utilisation of all PIDs, from
   ``nvmlDeviceGetProcessUtilization`` samples taken since the previous reading;
2. ``running-processes``: when the GPU was idle or (1) is unsupported, the task's PIDs among the
   processes holding the GPU (compute and graphics) / all of them (0 when none is the task's);
3. ``whole-device``: when neither query works, the whole GPU, with a note.

Inside a container NVML reports host PIDs, which differ from the task's; the share is then 0 and
a note says so. Each GPU's whole energy is recorded too (``device_j``), so the attribution can
be checked.

Faults: if the counter fails mid-run that GPU switches to power sampling; if power fails, that
GPU's measurement ends at its last good reading. Both are noted; nothing raises into the task.
NVML calls can also hang on a failing GPU (as ``nvidia-smi`` does): the meter remembers which
GPU (or set-up step) its call is for, and :meth:`NvmlMeter.counted` gives the energy
counted up to each GPU's last good reading without calling NVML, naming the GPU that stopped
answering. The monitor uses it when a call overruns ``hook_timeout_s``. A hung call is left
behind in its thread, and every later call would hang too: each NVML call in progress is known
process-wide (:func:`hung_call`), and while one has not returned after ``hang_after_s``, a new
meter makes no NVML call at all (``GPU not measured: NVML stopped answering earlier in this
process ...``), so a long-lived process leaks no thread per task. Once the call returns, GPUs are
measured again.

``nvml`` accepts any object with pynvml's function names; tests pass a fake one standing in for
a GPU that the test machine does not have.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from cmf_core.energy.base import Meter, Reading
from cmf_core.energy.proctree import TreeSample

Mode = Literal["auto", "counter", "power"]


# NVML calls in progress in this process, per NVML interface (the key of :func:`_key`):
# {token: (what, monotonic start, wall-clock start)}
_IN_FLIGHT: dict[Any, dict[object, tuple[str, float, float]]] = {}
_IN_FLIGHT_LOCK = threading.Lock()


def _key(nvml: Any) -> Any:
    """Whose calls these are: the injected interface, or the real library (``None``)."""
    return "pynvml" if nvml is None else nvml


def hung_call(nvml: Any = None, after_s: float = 5.0) -> str | None:
    """Why NVML is not to be called in this process now: the oldest call to ``nvml`` (``None``:
    pynvml) in progress for at least ``after_s`` seconds, named with when it was made; ``None``
    when there is none."""
    now = time.monotonic()
    with _IN_FLIGHT_LOCK:
        calls = [c for c in _IN_FLIGHT.get(_key(nvml), {}).values() if now - c[1] >= after_s]
    if not calls:
        return None
    what, t, wall = min(calls, key=lambda c: c[1])
    at = datetime.fromtimestamp(wall, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return (f"NVML stopped answering earlier in this process: {what}, called at {at}, has not "
            f"returned after {now - t:.1f} s")


class _Unreadable(Exception):
    """A GPU that NVML lists but can read neither way."""


@dataclass(slots=True)
class _Gpu:
    index: int
    handle: Any
    name: str
    method: str
    t: float
    mj: float = 0.0
    mw: float = 0.0
    util_ts: int = 0
    pending_j: float = 0.0
    gap_s: float = 0.0
    device_j: float = 0.0
    task_j: float = 0.0
    methods: set[str] = field(default_factory=set)
    shares: set[str] = field(default_factory=set)
    error: str | None = None


class NvmlMeter(Meter):
    """Energy of all NVML-visible GPUs, attributed to the task's processes."""

    kind = "nvml"
    component = "gpu"
    may_hang = True

    def __init__(self, nvml: Any = None, mode: Mode = "auto",
                 hang_after_s: float | None = None) -> None:
        self._nvml = nvml
        self._key = _key(nvml)
        self._mode = mode
        self._hang_after_s = hang_after_s  # None: never skip NVML for a call hung elsewhere
        self._skip: str | None = None  # why this meter makes no NVML call
        self._gpus: list[_Gpu] = []
        self._notes: list[str] = []
        self._ready = False
        self._initialised = False
        self._count = 0
        self._t0 = 0.0
        self._wall0 = 0.0
        self._pids: frozenset[int] = frozenset()
        self._step = "NVML"  # what prepare() waits on ("" once it returned), for the notes
        self._step_t = 0.0
        self._busy: _Gpu | None = None  # the GPU whose reading is in progress

    def start(self, snap: TreeSample) -> None:
        self._t0, self._wall0, self._pids = snap.t, time.time(), snap.pids
        if self._hang_after_s is not None:
            self._skip = hung_call(self._nvml, self._hang_after_s)
        if self._skip:  # calling NVML would leave one more thread stuck in it
            self._notes.append(f"GPU not measured: {self._skip}; no NVML call was made for this "
                               "task")
            self._step = ""  # nothing to wait for: stop() gives this note

    def prepare(self) -> None:
        try:
            if self._skip:
                return
            self._prepare()
        finally:
            self._step = ""

    def _gpu_call(self, gpu: _Gpu, fn: str, *args: Any) -> Any:
        return self._call(f"GPU {gpu.index} ({gpu.name})", fn, gpu.handle, *args)

    def _call(self, on: str, fn: str, *args: Any) -> Any:
        """``nvml.<fn>(*args)``, known process-wide while it is in progress (``on``: the GPU it
        is about, or ``fn`` itself)."""
        token = object()
        what = fn if on == fn else f"{fn} on {on}"
        with _IN_FLIGHT_LOCK:
            _IN_FLIGHT.setdefault(self._key, {})[token] = (what, time.monotonic(), time.time())
        try:
            return getattr(self._nvml, fn)(*args)
        finally:
            with _IN_FLIGHT_LOCK:
                calls = _IN_FLIGHT.get(self._key, {})
                calls.pop(token, None)
                if not calls:
                    _IN_FLIGHT.pop(self._key, None)

    def _wait_on(self, step: str) -> None:
        self._step, self._step_t = step, time.monotonic()

    def _prepare(self) -> None:
        if self._nvml is None:
            try:
                import pynvml
            except ImportError:
                self._notes.append(
                    "GPU not measured: nvidia-ml-py is not installed "
                    "(pip install 'cmf-foundation[gpu]')"
                )
                return
            self._nvml = pynvml
        try:
            self._wait_on("nvmlInit")
            self._call("nvmlInit", "nvmlInit")
            self._initialised = True
            self._wait_on("nvmlDeviceGetCount")
            count = self._count = int(self._call("nvmlDeviceGetCount", "nvmlDeviceGetCount"))
        except Exception as e:
            self._notes.append(f"GPU not measured: NVML unavailable ({e!r})")
            return
        gpus = []
        for index in range(count):
            self._wait_on(f"GPU {index}")
            try:
                gpus.append(self._open(index))
            except Exception as e:
                why = str(e) if isinstance(e, _Unreadable) else repr(e)
                self._notes.append(f"GPU {index} not measured: {why}")
        self._gpus = gpus
        self._ready = True

    def _open(self, index: int) -> _Gpu:
        on = f"GPU {index}"
        handle = self._call(on, "nvmlDeviceGetHandleByIndex", index)
        name = self._call(on, "nvmlDeviceGetName", handle)
        name = name.decode() if isinstance(name, bytes) else str(name)
        mj: float | None = None
        if self._mode != "power":
            try:
                mj = float(self._call(on, "nvmlDeviceGetTotalEnergyConsumption", handle))
            except Exception:
                if self._mode == "counter":
                    raise
        try:
            mw: float | None = float(self._call(on, "nvmlDeviceGetPowerUsage", handle))
        except Exception as e:
            if mj is None:
                raise _Unreadable(
                    f"{name} reads neither the total-energy counter nor power ({e!r})"
                ) from e
            mw = None
        now = time.monotonic()
        gpu = _Gpu(index, handle, name, "nvml-counter" if mj is not None else "nvml-power", now)
        gpu.mj, gpu.mw = mj or 0.0, mw or 0.0
        gpu.methods.add(gpu.method)
        gpu.util_ts = int(self._wall0 * 1e6)
        gpu.gap_s = max(0.0, now - self._t0)
        if mw is None:
            self._notes.append(f"GPU {index}: no power reading; first {gpu.gap_s:.3f} s uncounted")
        else:
            gpu.pending_j = mw / 1000.0 * gpu.gap_s
        return gpu

    def sample(self, snap: TreeSample) -> None:
        if self._ready:
            self._pids = snap.pids
            for gpu in self._gpus:
                if gpu.error is None:
                    self._read(gpu, snap.pids)

    def _read(self, gpu: _Gpu, pids: frozenset[int]) -> None:
        self._busy = gpu
        try:
            self._read_gpu(gpu, pids)
        finally:
            self._busy = None

    def _read_gpu(self, gpu: _Gpu, pids: frozenset[int]) -> None:
        now = time.monotonic()
        dt = max(0.0, now - gpu.t)
        delta: float
        if gpu.method == "nvml-counter":
            try:
                mj = float(self._gpu_call(gpu, "nvmlDeviceGetTotalEnergyConsumption"))
                if mj < gpu.mj:
                    raise ValueError(f"energy counter went back from {gpu.mj} to {mj} mJ")
                delta, gpu.mj = (mj - gpu.mj) / 1000.0, mj
            except Exception as e:
                self._notes.append(
                    f"GPU {gpu.index}: energy counter failed after "
                    f"{now - self._t0:.1f} s ({e!r}); switched to power sampling"
                )
                gpu.method = "nvml-power"  # written into methods once a power reading works
                gpu.mw = -1.0  # no previous power: hold the next reading over this interval
        if gpu.method == "nvml-power":
            try:
                mw = float(self._gpu_call(gpu, "nvmlDeviceGetPowerUsage"))
            except Exception as e:
                gpu.error = (
                    f"GPU {gpu.index}: NVML power reading failed after {now - self._t0:.1f} s "
                    f"({e!r}); energy after that is not counted"
                )
                self._notes.append(gpu.error)
                return
            before = mw if gpu.mw < 0 else gpu.mw
            delta, gpu.mw = (before + mw) / 2000.0 * dt, mw
            gpu.methods.add(gpu.method)
        gpu.t = now
        share, how = self._share(gpu, pids)
        gpu.shares.add(how)
        delta += gpu.pending_j
        gpu.pending_j = 0.0
        gpu.device_j += delta
        gpu.task_j += delta * share

    def _share(self, gpu: _Gpu, pids: frozenset[int]) -> tuple[float, str]:
        try:
            samples = list(self._gpu_call(gpu, "nvmlDeviceGetProcessUtilization", gpu.util_ts))
        except Exception:  # NVML_ERROR_NOT_FOUND (no samples) or not supported
            samples = []
        if samples:
            gpu.util_ts = max(gpu.util_ts, *(int(s.timeStamp) for s in samples))
            total = sum(s.smUtil for s in samples)
            if total > 0:
                return sum(s.smUtil for s in samples if s.pid in pids) / total, (
                    "process-utilisation"
                )
        holders: set[int] = set()
        found = False
        for fn in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
            try:
                holders.update(p.pid for p in self._gpu_call(gpu, fn))
                found = True
            except Exception:
                continue
        if not found:
            return 1.0, "whole-device"
        if not holders:
            return 0.0, "running-processes"
        return len(holders & pids) / len(holders), "running-processes"

    def stop(self, snap: TreeSample) -> Reading:
        if not self._ready:
            return self._not_ready(snap)
        for gpu in self._gpus:
            if gpu.error is None:
                self._read(gpu, snap.pids)
        return self._reading([])

    def counted(self, snap: TreeSample, why: str) -> Reading:
        """The energy counted so far, without calling NVML: a call is hung (``why`` says how
        long it was waited for). The GPU it was reading gets ``error``; each GPU counts up to its
        last good reading."""
        if not self._ready:
            return self._not_ready(snap, why)
        gpu = self._busy
        if gpu is None:
            return self._reading([f"NVML stopped answering ({why}); GPU energy counted up to "
                                  "the last sample"])
        gpu.error = (
            f"GPU {gpu.index} ({gpu.name}) stopped answering NVML ({why}); energy after its last "
            f"good reading, {gpu.t - self._t0:.2f} s into the task, is not counted"
        )
        others = " (the other GPUs up to their last reading)" if len(self._gpus) > 1 else ""
        return self._reading([gpu.error + others])

    def _not_ready(self, snap: TreeSample, why: str = "") -> Reading:
        step = self._step
        if not step:  # prepare() returned: its notes say why
            return Reading("gpu", 0.0, "none", {"gpus": []}, tuple(self._notes))
        note = (f"GPU not measured: NVML was not ready when the task ended after "
                f"{snap.t - self._t0:.2f} s")
        if step != "NVML":  # prepare() is in an NVML call (which may hang on a failing GPU)
            note += (f" ({step} did not answer: {why})" if why else
                     f" ({step} had not answered after {time.monotonic() - self._step_t:.2f} s)")
        return Reading("gpu", 0.0, "none", {"gpus": []}, (*self._notes, note))

    def _reading(self, extra: list[str]) -> Reading:
        notes = [*self._notes, *extra]
        for gpu in self._gpus:
            if "whole-device" in gpu.shares:
                notes.append(f"GPU {gpu.index}: no per-process data from NVML; whole GPU counted")
            if gpu.device_j > 0 and gpu.task_j == 0 and "running-processes" in gpu.shares:
                notes.append(
                    f"GPU {gpu.index}: {gpu.device_j:.1f} J not attributed, no process of the "
                    "task ran on it (if one did: inside a container NVML reports host PIDs)"
                )
        methods = sorted({m for gpu in self._gpus for m in gpu.methods})
        if not self._count:
            notes.append("GPU not measured: NVML sees no GPU")
        return Reading(
            "gpu",
            sum(gpu.task_j for gpu in self._gpus),
            "+".join(methods) or "none",
            {
                "device_j": sum(gpu.device_j for gpu in self._gpus),
                "gpus": [
                    {
                        "index": gpu.index,
                        "name": gpu.name,
                        "method": "+".join(sorted(gpu.methods)),
                        "task_j": gpu.task_j,
                        "device_j": gpu.device_j,
                        "share": sorted(gpu.shares),
                        "gap_s": gpu.gap_s,
                        "error": gpu.error,
                    }
                    for gpu in self._gpus
                ],
            },
            tuple(notes),
        )

    def close(self) -> None:
        if self._initialised:
            self._initialised = False
            try:
                self._call("nvmlShutdown", "nvmlShutdown")
            except Exception as e:
                self._notes.append(f"nvmlShutdown failed: {e!r}")
