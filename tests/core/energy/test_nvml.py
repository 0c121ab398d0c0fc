# ruff: noqa: N802 - the fake keeps pynvml's function names
"""NVML meter through an injected NVML interface.

This machine has no NVIDIA GPU, so :class:`FakeNvml` stands in for ``pynvml`` on a machine that
has them: same function names, a GPU drawing a constant power whose energy counter advances with
real time, per-process utilisation samples, and faults that can be switched on mid-run.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from cmf_core.config import load_settings
from cmf_core.energy import EnergyMonitor, Measurement
from cmf_core.energy.nvml import NvmlMeter, hung_call
from cmf_core.energy.proctree import TreeSample


class NVMLError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(f"NVML error {value}")
        self.value = value


@dataclass
class Sample:
    pid: int
    timeStamp: int
    smUtil: int


@dataclass
class Proc:
    pid: int


@dataclass
class FakeGpu:
    name: str
    watts: float
    has_counter: bool = True
    utilisation: dict[int, int] = field(default_factory=dict)  # pid -> SM %
    holders: list[int] = field(default_factory=list)
    counter_fails: bool = False
    power_fails: bool = False
    t0: float = field(default_factory=time.monotonic)


class FakeNvml:
    """The subset of pynvml the meter calls, for GPUs that cannot exist on this test machine."""

    def __init__(self, *gpus: FakeGpu) -> None:
        self.gpus = list(gpus)
        self.initialised = False
        self.shut_down = False

    def nvmlInit(self) -> None:
        self.initialised = True

    def nvmlShutdown(self) -> None:
        self.shut_down = True

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeGpu:
        return self.gpus[index]

    def nvmlDeviceGetName(self, gpu: FakeGpu) -> bytes:
        return gpu.name.encode()

    def nvmlDeviceGetTotalEnergyConsumption(self, gpu: FakeGpu) -> int:
        if not gpu.has_counter:
            raise NVMLError(3)  # NVML_ERROR_NOT_SUPPORTED, as on pre-Volta GPUs
        if gpu.counter_fails:
            raise NVMLError(15)  # NVML_ERROR_GPU_IS_LOST
        return int(gpu.watts * (time.monotonic() - gpu.t0) * 1000)  # mJ

    def nvmlDeviceGetPowerUsage(self, gpu: FakeGpu) -> int:
        if gpu.power_fails:
            raise NVMLError(15)
        return int(gpu.watts * 1000)  # mW

    def nvmlDeviceGetProcessUtilization(self, gpu: FakeGpu, since_us: int) -> list[Sample]:
        if not gpu.utilisation:
            raise NVMLError(6)  # NVML_ERROR_NOT_FOUND: no samples
        now = int(time.time() * 1e6)
        return [Sample(pid, now, sm) for pid, sm in gpu.utilisation.items()]

    def nvmlDeviceGetComputeRunningProcesses(self, gpu: FakeGpu) -> list[Proc]:
        return [Proc(pid) for pid in gpu.holders]

    def nvmlDeviceGetGraphicsRunningProcesses(self, gpu: FakeGpu) -> list[Proc]:
        return []


ME = os.getpid()
OTHER = 999_999


def _run(
    nvml: FakeNvml, seconds: float, during: Callable[[], None] | None = None
) -> tuple[Measurement, float]:
    monitor = EnergyMonitor(load_settings(energy_sample_hz=20), nvml=nvml).start()
    t0 = time.monotonic()
    time.sleep(seconds / 2)
    if during is not None:
        during()
    time.sleep(seconds / 2)
    m = monitor.stop()
    duration = time.monotonic() - t0
    return m, duration


def test_counter_mode_on_all_gpus_with_process_utilisation_share() -> None:
    nvml = FakeNvml(
        FakeGpu("A100", 200.0, utilisation={ME: 60, OTHER: 20}),
        FakeGpu("A100", 100.0, holders=[OTHER]),  # used by someone else only
    )
    m, duration = _run(nvml, 1.0)
    gpu = m.components["gpu"]
    assert gpu.method == "nvml-counter"
    first, second = gpu.details["gpus"]
    assert first["device_j"] == pytest.approx(200.0 * duration, rel=0.05)
    assert first["task_j"] == pytest.approx(0.75 * first["device_j"], rel=1e-6)
    assert first["share"] == ["process-utilisation"]
    assert second["device_j"] == pytest.approx(100.0 * duration, rel=0.05)
    assert second["task_j"] == 0.0
    assert gpu.joules == pytest.approx(first["task_j"])
    assert any("GPU 1:" in n and "not attributed" in n for n in m.notes)
    deadline = time.monotonic() + 2
    while not nvml.shut_down and time.monotonic() < deadline:  # the sampler thread closes NVML
        time.sleep(0.01)
    assert nvml.shut_down


def test_power_sampling_mode_on_gpus_without_an_energy_counter() -> None:
    nvml = FakeNvml(FakeGpu("Tesla P100", 150.0, has_counter=False, holders=[ME]))
    m, duration = _run(nvml, 1.0)
    gpu = m.components["gpu"]
    assert gpu.method == "nvml-power"
    assert gpu.joules > 0  # never a silent 0
    assert gpu.joules == pytest.approx(150.0 * duration, rel=0.05)
    assert gpu.details["gpus"][0]["share"] == ["running-processes"]


def test_counter_error_mid_run_switches_to_power_sampling() -> None:
    card = FakeGpu("V100", 250.0, holders=[ME])
    m, duration = _run(FakeNvml(card), 1.0, during=lambda: setattr(card, "counter_fails", True))
    gpu = m.components["gpu"]
    assert gpu.method == "nvml-counter+nvml-power"
    assert gpu.joules == pytest.approx(250.0 * duration, rel=0.05)
    assert any("switched to power sampling" in n for n in m.notes)


def test_power_error_mid_run_keeps_energy_up_to_the_last_good_reading() -> None:
    card = FakeGpu("P100", 100.0, has_counter=False, holders=[ME])
    m, duration = _run(FakeNvml(card), 1.0, during=lambda: setattr(card, "power_fails", True))
    gpu = m.components["gpu"]
    assert 0.35 * 100.0 * duration < gpu.joules < 0.65 * 100.0 * duration
    assert any("energy after that is not counted" in n for n in m.notes)


def test_nvml_init_failure_is_reported() -> None:
    class Broken(FakeNvml):
        def nvmlInit(self) -> None:
            raise NVMLError(9)  # NVML_ERROR_DRIVER_NOT_LOADED

    m, _ = _run(Broken(), 0.2)
    assert m.components["gpu"].method == "none"
    assert any("NVML unavailable" in n for n in m.notes)


def test_gap_before_nvml_is_ready_is_filled_with_the_first_power_reading() -> None:
    meter = NvmlMeter(FakeNvml(FakeGpu("H100", 300.0, holders=[ME])), mode="power")
    start = TreeSample(time.monotonic(), 0.0, 0, frozenset({ME}), True)
    meter.start(start)
    time.sleep(0.2)  # NVML loading, in the sampler thread
    meter.prepare()
    time.sleep(0.2)
    reading = meter.stop(TreeSample(time.monotonic(), 0.0, 0, frozenset({ME}), True))
    elapsed = time.monotonic() - start.t
    assert reading.details["gpus"][0]["gap_s"] >= 0.2
    assert reading.joules == pytest.approx(300.0 * elapsed, rel=0.05)


def test_without_per_process_data_the_whole_gpu_is_counted_and_noted() -> None:
    class NoProcessData(FakeNvml):
        def nvmlDeviceGetProcessUtilization(self, gpu: FakeGpu, since_us: int) -> list[Sample]:
            raise NVMLError(3)

        def nvmlDeviceGetComputeRunningProcesses(self, gpu: FakeGpu) -> list[Proc]:
            raise NVMLError(3)

        def nvmlDeviceGetGraphicsRunningProcesses(self, gpu: FakeGpu) -> list[Proc]:
            raise NVMLError(3)

    m, duration = _run(NoProcessData(FakeGpu("T4", 70.0)), 0.6)
    assert m.components["gpu"].joules == pytest.approx(70.0 * duration, rel=0.05)
    assert any("whole GPU counted" in n for n in m.notes)


def test_sampler_thread_catches_base_exceptions_and_the_task_goes_on() -> None:
    class ExitsInSampler(FakeNvml):
        def nvmlDeviceGetTotalEnergyConsumption(self, gpu: FakeGpu) -> int:
            if threading.current_thread().name == "cmf-energy-sampler":
                raise SystemExit("NVML binding called sys.exit")
            return super().nvmlDeviceGetTotalEnergyConsumption(gpu)

    m, _ = _run(ExitsInSampler(FakeGpu("A10", 150.0, holders=[ME])), 0.5)
    assert any("energy sampler stopped" in n and "SystemExit" in n for n in m.notes)
    assert m.components["cpu"].method == "model" and m.duration_s >= 0.5


class ShutsDownForReal(FakeNvml):
    """Like pynvml after ``nvmlShutdown``: every device call raises NVML_ERROR_UNINITIALIZED.

    ``stall_once``: the next process-utilisation query in the sampler thread takes 0.3 s (a slow
    NVML call), so stop() is called while the sampler is in the middle of a tick.
    """

    stall_once = False

    def __getattribute__(self, name: str) -> object:
        if name.startswith("nvmlDevice") and object.__getattribute__(self, "shut_down"):

            def uninitialised(*args: object) -> None:
                raise NVMLError(1)  # NVML_ERROR_UNINITIALIZED

            return uninitialised
        return object.__getattribute__(self, name)

    def nvmlDeviceGetProcessUtilization(self, gpu: FakeGpu, since_us: int) -> list[Sample]:
        if self.stall_once and threading.current_thread().name == "cmf-energy-sampler":
            self.stall_once = False
            time.sleep(0.3)
        return super().nvmlDeviceGetProcessUtilization(gpu, since_us)


def test_stop_during_a_sampler_tick_reads_the_gpu_before_nvml_is_shut_down() -> None:
    nvml = ShutsDownForReal(FakeGpu("A100", 200.0, utilisation={ME: 100}))
    monitor = EnergyMonitor(load_settings(energy_sample_hz=20), nvml=nvml).start()
    t0 = time.monotonic()
    time.sleep(0.2)
    nvml.stall_once = True
    time.sleep(0.1)  # the sampler is now inside its slow NVML call, holding the lock
    m = monitor.stop()
    duration = time.monotonic() - t0
    gpu = m.components["gpu"]
    assert gpu.details["gpus"][0]["error"] is None, m.notes
    assert gpu.method == "nvml-counter"
    assert gpu.joules == pytest.approx(200.0 * duration, rel=0.05)


def test_after_the_sampler_dies_the_gpu_counter_is_still_read_at_stop() -> None:
    class ExitsLater(ShutsDownForReal):
        exit_now = False

        def nvmlDeviceGetTotalEnergyConsumption(self, gpu: FakeGpu) -> int:
            if self.exit_now and threading.current_thread().name == "cmf-energy-sampler":
                raise SystemExit("NVML binding called sys.exit")
            return super().nvmlDeviceGetTotalEnergyConsumption(gpu)

    nvml = ExitsLater(FakeGpu("A100", 200.0, utilisation={ME: 100}))
    m, duration = _run(nvml, 0.6, during=lambda: setattr(nvml, "exit_now", True))
    gpu = m.components["gpu"]
    assert any("energy sampler stopped" in n for n in m.notes)
    assert gpu.details["gpus"][0]["error"] is None, m.notes
    assert gpu.joules == pytest.approx(200.0 * duration, rel=0.05)


def test_a_gpu_readable_neither_way_is_named_not_reported_as_no_gpu() -> None:
    # fake NVML (no GPU here): an old card where both the energy counter and power usage answer
    # NVML_ERROR_NOT_SUPPORTED, next to a readable one
    old = FakeGpu("GeForce GTX 770", 100.0, has_counter=False, holders=[ME])
    old_power = FakeNvml.nvmlDeviceGetPowerUsage

    class NoPower(FakeNvml):
        def nvmlDeviceGetPowerUsage(self, gpu: FakeGpu) -> int:
            if gpu is old:
                raise NVMLError(3)  # NVML_ERROR_NOT_SUPPORTED
            return old_power(self, gpu)

    m, _ = _run(NoPower(old), 0.3)
    assert m.components["gpu"].method == "none"
    assert "gpu: GPU 0 not measured: GeForce GTX 770 reads neither the total-energy counter " \
        "nor power (NVMLError('NVML error 3'))" in m.notes
    assert not any("sees no GPU" in n for n in m.notes), m.notes  # it sees one
    m, _ = _run(NoPower(FakeGpu("A100", 200.0, holders=[ME]), old), 0.3)
    assert m.components["gpu"].method == "nvml-counter"
    assert [g["name"] for g in m.components["gpu"].details["gpus"]] == ["A100"]
    assert any("GPU 1 not measured: GeForce GTX 770" in n for n in m.notes)
    m, _ = _run(FakeNvml(), 0.2)
    assert any("NVML sees no GPU" in n for n in m.notes)


def test_a_gpu_lost_mid_run_is_not_said_to_be_power_sampled() -> None:
    # fake NVML: the GPU falls off the bus (Xid 79): every device call answers
    # NVML_ERROR_GPU_IS_LOST from then on, so no power reading ever replaced the counter
    card = FakeGpu("A100", 200.0, utilisation={ME: 100})

    class Lost(FakeNvml):
        lost = False

        def __getattribute__(self, name: str) -> object:
            if name.startswith("nvmlDevice") and object.__getattribute__(self, "lost"):

                def gone(*args: object) -> None:
                    raise NVMLError(15)  # NVML_ERROR_GPU_IS_LOST

                return gone
            return object.__getattribute__(self, name)

    nvml = Lost(card)
    m, duration = _run(nvml, 1.0, during=lambda: setattr(nvml, "lost", True))
    gpu = m.components["gpu"]
    assert gpu.method == "nvml-counter"
    (one,) = gpu.details["gpus"]
    assert one["method"] == "nvml-counter"
    assert one["error"] is not None and "energy after that is not counted" in one["error"]
    assert 0.35 * 200.0 * duration < gpu.joules < 0.65 * 200.0 * duration


# A GPU that stops answering ----------------------------------------------------------------
# No GPU here, so FakeNvml stands in again: on a failing GPU NVML calls can hang (as nvidia-smi
# does); here they block on a threading.Event that the test releases at its end. The energy
# counter is set by the test (no power draw, so nothing is added for the start-up gap): what
# was counted before the hang is then known exactly.


class Hangs(FakeNvml):
    """While ``hang`` is set, GPU 0 stops answering: every ``nvmlDevice*`` call about it, or about
    no GPU in particular (``nvmlDeviceGetCount``), blocks until ``release`` is set. With
    ``in_sampler``, calls from the sampler thread are still answered."""

    def __init__(self, *gpus: FakeGpu) -> None:
        super().__init__(*gpus)
        self.mj = 0
        self.hang = False
        self.in_sampler = False
        self.release = threading.Event()
        self.stuck = threading.Event()  # a call is blocked now
        self.blocked = 0  # calls blocked so far
        self.seen: list[tuple[int, int]] = []  # (GPU, counter value) the sampler read
        self.calls: list[str] = []  # every NVML function looked up, so called

    def __getattribute__(self, name: str) -> object:
        attr = object.__getattribute__(self, name)
        if not name.startswith("nvml") or not callable(attr):
            return attr
        object.__getattribute__(self, "calls").append(name)
        if not name.startswith("nvmlDevice"):
            return attr

        def call(*args: object) -> object:
            sampler = threading.current_thread().name == "cmf-energy-sampler"
            about_gpu0 = not args or args[0] is self.gpus[0] or args[0] == 0
            if self.hang and about_gpu0 and not (self.in_sampler and sampler):
                self.blocked += 1
                self.stuck.set()
                self.release.wait()
            return attr(*args)

        return call

    def nvmlDeviceGetTotalEnergyConsumption(self, gpu: FakeGpu) -> int:
        value = self.mj
        if threading.current_thread().name == "cmf-energy-sampler":
            self.seen.append((self.gpus.index(gpu), value))
        return value

    def nvmlDeviceGetPowerUsage(self, gpu: FakeGpu) -> int:
        return 0


def _wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30  # a safety net against a hung test, not a timing check
    while not condition():
        assert time.monotonic() < deadline, "the sampler never got there"
        time.sleep(0.01)


def _hung_monitor(nvml: Hangs) -> EnergyMonitor:
    monitor = EnergyMonitor(load_settings(energy_sample_hz=50, hook_timeout_s=0.2), nvml=nvml)
    monitor.start()
    nvml.mj = 7000  # 7 J since the first reading
    _wait_for(lambda: nvml.seen.count((0, 7000)) >= 2)  # the first of these readings is complete
    return monitor


def test_a_gpu_hanging_in_the_sampler_does_not_hang_the_task() -> None:
    nvml = Hangs(FakeGpu("A100", 0.0, utilisation={ME: 100}), FakeGpu("A100", 0.0))
    try:
        monitor = _hung_monitor(nvml)
        nvml.hang = True  # the sampler's next call about GPU 0 blocks, holding the monitor's lock
        assert nvml.stuck.wait(30)

        def users_task() -> str:
            with monitor:
                pass
            return "done"

        assert users_task() == "done"
        m = monitor.measurement
        assert m is not None
        record = m.to_record(str(uuid.uuid4()), load_settings())
        gpu = record.details["components"]["gpu"]
        assert gpu["kwh"] == pytest.approx(7.0 / 3.6e6)  # the 7 J counted before the hang
        assert gpu["method"] == "nvml-counter"
        first, second = gpu["gpus"]
        assert first["task_j"] == pytest.approx(7.0) and second["task_j"] == 0.0
        assert "stopped answering" in (first["error"] or "")
        assert any(n.startswith("gpu: GPU 0 (A100) stopped answering NVML") for n in m.notes), \
            m.notes
        assert record.details["components"]["cpu"]["method"] == "model"  # the rest is measured
        hung = [t for t in threading.enumerate() if t.name.startswith("cmf-energy")]
        assert hung and all(t.daemon for t in hung)  # left behind, never keeping the process up

        # the next task, on the same hung GPU, is not held up either: it skips the GPU
        nxt = EnergyMonitor(load_settings(energy_sample_hz=50, hook_timeout_s=0.2), nvml=nvml)
        with nxt:
            pass
        assert nxt.measurement is not None
        assert nxt.measurement.components["gpu"].method == "none"
        assert any("NVML stopped answering earlier in this process" in n
                   for n in nxt.measurement.notes), nxt.measurement.notes
        assert nvml.blocked == 1
    finally:
        nvml.release.set()


def test_after_nvml_hangs_later_tasks_of_the_process_make_no_nvml_call() -> None:
    # a long-lived process (a worker running task after task) whose fake NVML (no GPU here)
    # stopped answering in one task: each later task would leave one more thread stuck in NVML
    nvml = Hangs(FakeGpu("A100", 0.0, utilisation={ME: 100}))
    settings = load_settings(energy_sample_hz=50, hook_timeout_s=0.2)
    try:
        monitor = _hung_monitor(nvml)
        nvml.hang = True
        assert nvml.stuck.wait(30)
        first = monitor.stop()
        assert any("GPU 0 (A100) stopped answering NVML" in n for n in first.notes), first.notes
        calls = len(nvml.calls)
        samplers = {t for t in threading.enumerate() if t.name == "cmf-energy-sampler"}
        for _ in range(3):
            with EnergyMonitor(settings, nvml=nvml) as later:
                pass
            m = later.measurement
            assert m is not None
            assert m.components["gpu"].method == "none" and m.components["gpu"].joules == 0.0
            assert m.components["cpu"].method == "model"  # the rest is still measured
            notes = [n for n in m.notes if "NVML stopped answering earlier in this process" in n]
            assert len(notes) == 1, m.notes
            assert notes[0].startswith("gpu: GPU not measured: ")
            assert " on GPU 0 (A100), called at 20" in notes[0]  # which call, and when
            assert notes[0].endswith("no NVML call was made for this task")
        assert len(nvml.calls) == calls  # no NVML call at all ...
        assert nvml.blocked == 1
        # ... so each later sampler thread ends; only the first task's stays stuck
        _wait_for(lambda: {t for t in threading.enumerate()
                           if t.name == "cmf-energy-sampler"} <= samplers)
    finally:
        nvml.release.set()
    # once the hung call returns, the GPU is measured again
    nvml.hang = False
    _wait_for(lambda: hung_call(nvml, 0.0) is None)
    read = len(nvml.seen)
    with EnergyMonitor(settings, nvml=nvml) as again:
        _wait_for(lambda: len(nvml.seen) > read)  # its sampler reads the GPU
    assert again.measurement is not None
    assert again.measurement.components["gpu"].method == "nvml-counter"


def test_a_gpu_hanging_in_the_final_read_at_stop_keeps_what_was_counted() -> None:
    nvml = Hangs(FakeGpu("H100", 0.0, utilisation={ME: 100}))
    try:
        monitor = _hung_monitor(nvml)
        nvml.in_sampler = True  # the sampler's reads are answered, stop()'s own read is not
        nvml.hang = True
        m = monitor.stop()
        assert nvml.stuck.is_set()  # stop() did reach the hung call
        gpu = m.components["gpu"]
        assert gpu.joules == pytest.approx(7.0)
        assert gpu.details["gpus"][0]["error"] is not None
        assert any(n.startswith("gpu: GPU 0 (H100) stopped answering NVML") for n in m.notes), \
            m.notes
    finally:
        nvml.release.set()


def test_nvml_init_hanging_holds_up_neither_start_nor_stop() -> None:
    class InitHangs(FakeNvml):
        release = threading.Event()
        entered = threading.Event()

        def nvmlInit(self) -> None:
            self.entered.set()
            self.release.wait()
            super().nvmlInit()

    nvml = InitHangs(FakeGpu("A100", 200.0, holders=[ME]))
    try:
        with EnergyMonitor(load_settings(hook_timeout_s=0.2), nvml=nvml) as monitor:
            assert nvml.entered.wait(30)
        m = monitor.measurement
        assert m is not None and m.components["gpu"].method == "none"
        assert any("GPU not measured" in n and "nvmlInit had not answered after" in n
                   for n in m.notes), m.notes
    finally:
        InitHangs.release.set()


def test_a_hung_gpu_never_keeps_the_interpreter_from_exiting(tmp_path) -> None:
    # a child process whose fake NVML (no GPU here) hangs for good in the middle of the task
    script = tmp_path / "hung.py"
    script.write_text(
        "import threading, time\n"
        "from cmf_core.config import load_settings\n"
        "from cmf_core.energy import EnergyMonitor\n"
        "class Forever:\n"
        "    hang = False\n"
        "    def nvmlInit(self): pass\n"
        "    def nvmlShutdown(self): pass\n"
        "    def nvmlDeviceGetCount(self): return 1\n"
        "    def nvmlDeviceGetHandleByIndex(self, i): return i\n"
        "    def nvmlDeviceGetName(self, h): return 'A100'\n"
        "    def nvmlDeviceGetTotalEnergyConsumption(self, h):\n"
        "        if self.hang: threading.Event().wait()\n"
        "        return 0\n"
        "    def nvmlDeviceGetPowerUsage(self, h): return 0\n"
        "nvml = Forever()\n"
        "m = EnergyMonitor(load_settings(energy_sample_hz=50, hook_timeout_s=0.2), nvml=nvml)\n"
        "m.start(); time.sleep(0.3); nvml.hang = True; time.sleep(0.3)\n"
        "print(m.stop().notes)\n"
    )
    import subprocess
    import sys

    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "CMF_HOME": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    assert "GPU 0 (A100) stopped answering NVML" in out.stdout
