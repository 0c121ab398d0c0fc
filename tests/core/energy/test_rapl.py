"""RAPL reader and meter against a temp folder laid out like /sys/class/powercap.

This machine has no RAPL (no /sys/class/powercap at all), so the counters are files we write:
``intel-rapl:N/{name,energy_uj,max_energy_range_uj}``, replaced atomically as the kernel's are.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from cmf_core.config import load_settings
from cmf_core.energy import EnergyMonitor, MeterUnavailable
from cmf_core.energy.proctree import TreeSample
from cmf_core.energy.rapl import RaplMeter, RaplReader, busy_cpu_s

MAX_UJ = 1_000_000


def _write(path: Path, value: int | str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{value}\n")
    os.replace(tmp, path)


def _zone(root: Path, n: int, name: str, energy_uj: int, max_uj: int = MAX_UJ) -> Path:
    zone = root / f"intel-rapl:{n}"
    zone.mkdir(parents=True)
    _write(zone / "name", name)
    _write(zone / "energy_uj", energy_uj)
    _write(zone / "max_energy_range_uj", max_uj)
    return zone


def _proc_stat(path: Path, busy_ticks: int) -> None:
    _write(path, f"cpu  {busy_ticks} 0 0 1000 0 0 0 0 0 0")


def _snap(cpu_s: float) -> TreeSample:
    return TreeSample(time.monotonic(), cpu_s, 0, frozenset({os.getpid()}), True)


def test_reader_sums_packages_and_handles_wrap_around(tmp_path: Path) -> None:
    pkg0 = _zone(tmp_path, 0, "package-0", 900_000)
    pkg1 = _zone(tmp_path, 1, "package-1", 10_000)
    _zone(tmp_path / "intel-rapl:0", 0, "core", 5)  # sub-zone: inside the package, not added
    _zone(tmp_path, 2, "psys", 0)  # not a package
    reader = RaplReader(tmp_path)
    assert [z.name for z in reader.zones] == ["package-0", "package-1"]
    _write(pkg0 / "energy_uj", 100_000)  # wrapped: 100k left before max, 100k after
    _write(pkg1 / "energy_uj", 60_000)
    assert reader.read() == pytest.approx(0.2 + 0.05)
    _write(pkg0 / "energy_uj", 400_000)
    assert reader.read() == pytest.approx(0.2 + 0.05 + 0.3)
    assert sum(z.wraps for z in reader.zones) == 1


def test_meter_attributes_by_share_of_busy_cpu_time(tmp_path: Path) -> None:
    pkg = _zone(tmp_path / "powercap", 0, "package-0", 0)
    stat = tmp_path / "stat"
    _proc_stat(stat, 1000)
    meter = RaplMeter(tmp_path / "powercap", stat)
    meter.start(_snap(10.0))
    _write(pkg / "energy_uj", 800_000)
    meter.sample(_snap(10.5))
    _write(pkg / "energy_uj", 200_000)  # wrap: 0.2 J to max, then 0.2 J
    _proc_stat(stat, 1000 + 4 * os.sysconf("SC_CLK_TCK"))  # machine busy 4 s
    reading = meter.stop(_snap(11.0))  # task busy 1 s of those 4
    assert reading.method == "rapl"
    assert reading.details["package_j"] == pytest.approx(1.2)
    assert reading.details["share"] == pytest.approx(0.25)
    assert reading.joules == pytest.approx(0.3)
    assert reading.details["wraps"] == 1


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ("missing", "does not exist"),
        ("no-package", "no RAPL package zone"),
        ("unreadable", "cannot read RAPL counter"),
    ],
)
def test_unusable_rapl_is_reported(tmp_path: Path, layout: str, message: str) -> None:
    root = tmp_path / "powercap"
    if layout == "no-package":
        _zone(root, 0, "psys", 1)
    elif layout == "unreadable":
        zone = _zone(root, 0, "package-0", 1)
        (zone / "energy_uj").unlink()
        (zone / "energy_uj").mkdir()  # stands in for a counter we may not read
    with pytest.raises(MeterUnavailable, match=message):
        RaplReader(root)


def test_monitor_uses_rapl_when_readable_and_watches_wraps(tmp_path: Path) -> None:
    root = tmp_path / "powercap"
    pkg = _zone(root, 0, "package-0", MAX_UJ - 5_000)
    written = 0
    done = threading.Event()

    def kernel() -> None:  # 50 W package: 2,500 uJ every 50 ms; wraps at the second step
        nonlocal written
        value = MAX_UJ - 5_000
        while not done.is_set():
            time.sleep(0.05)
            value = (value + 2_500) % MAX_UJ
            written += 2_500
            _write(pkg / "energy_uj", value)

    settings = load_settings(energy_sample_hz=20, cpu_watts_per_core=10.0)
    writer = threading.Thread(target=kernel)
    with EnergyMonitor(settings, powercap=root) as monitor:
        writer.start()
        t0 = time.monotonic()
        while time.monotonic() - t0 < 1.5 or written < 10 * 2_500:
            sum(range(100_000))
        done.set()
        writer.join()
    m = monitor.measurement
    assert m is not None
    cpu = m.components["cpu"]
    assert cpu.method == "rapl", m.notes
    assert cpu.details["package_j"] == pytest.approx(written / 1e6)
    assert cpu.details["wraps"] >= 1
    assert 0 < cpu.details["share"] <= 1
    assert cpu.joules == pytest.approx(cpu.details["package_j"] * cpu.details["share"])
    assert cpu.details["model_j"] == pytest.approx(m.cpu_time_s * 10.0, rel=0.01)


def test_rapl_failing_mid_run_falls_back_to_the_model(tmp_path: Path) -> None:
    root = tmp_path / "powercap"
    pkg = _zone(root, 0, "package-0", 0)
    settings = load_settings(energy_sample_hz=20, cpu_watts_per_core=10.0)
    with EnergyMonitor(settings, powercap=root) as monitor:
        (pkg / "energy_uj").unlink()  # counter vanishes (driver unloaded)
        time.sleep(0.2)
    m = monitor.measurement
    assert m is not None
    assert m.components["cpu"].method == "model"
    assert any("rapl failed" in n for n in m.notes)


def test_busy_cpu_reads_this_machines_proc_stat() -> None:
    assert busy_cpu_s() > 0


def test_a_drop_that_a_wrap_cannot_explain_is_a_reset_never_negative_energy(
    tmp_path: Path,
) -> None:
    # fake powercap folder: the counter (900,000 uJ) is above the range the zone reports
    # (500,000 uJ), then reads 100,000: no wrap gives that, the counter was reset
    pkg = _zone(tmp_path, 0, "package-0", 900_000, max_uj=500_000)
    reader = RaplReader(tmp_path)
    _write(pkg / "energy_uj", 100_000)
    assert reader.read() == pytest.approx(0.1)  # counted from the reset
    _write(pkg / "energy_uj", 300_000)
    assert reader.read() == pytest.approx(0.3)
    assert reader.zones[0].wraps == 0


def test_a_drop_that_only_an_impossible_power_could_wrap_is_a_reset(tmp_path: Path) -> None:
    """A real-sized counter (262 kJ range) read once a second: a drop from 100 kJ to 5 J would
    be a wrap only at 162 kW, so it is a reset (a driver reload); from 100 J below the top to
    50 J it is a wrap (150 W)."""
    real_max = 262_143_328_850
    now = [0.0]

    def clock() -> float:
        now[0] += 1.0
        return now[0]

    for n, (first, then, joules, resets, wraps) in enumerate([
            (100_000_000_000, 5_000_000, 5.0, 1, 0),
            (real_max - 100_000_000, 50_000_000, 150.0, 0, 1)]):
        pkg = _zone(tmp_path / str(n), 0, "package-0", first, max_uj=real_max)
        reader = RaplReader(tmp_path / str(n), clock=clock)
        _write(pkg / "energy_uj", then)
        assert reader.read() == pytest.approx(joules)
        assert (reader.zones[0].resets, reader.zones[0].wraps) == (resets, wraps)


def test_a_stalled_sampler_that_may_have_missed_whole_wraps_says_so(tmp_path: Path) -> None:
    """Two sockets, fake powercap folder (this machine has no RAPL) with real-sized counters
    (262 kJ). Package 0 draws 300 W for 30 minutes between two reads (one C call holding the
    GIL stalls the sampler): 540 kJ, two wraps, and the counter ends above where it was, so a
    reader sees none. 524 kJ are lost, which no reader can know; the reading must say it may be."""
    real_max = 262_143_328_850
    now = [0.0]
    pkg0 = _zone(tmp_path / "powercap", 0, "package-0", 0, max_uj=real_max)
    _zone(tmp_path / "powercap", 1, "package-1", 0, max_uj=real_max)
    stat = tmp_path / "stat"
    _proc_stat(stat, 1000)
    meter = RaplMeter(tmp_path / "powercap", stat, clock=lambda: now[0])
    meter.start(_snap(0.0))
    now[0] = 30.0  # a normal sampler read: nothing to say
    meter.sample(_snap(0.0))
    assert meter.reader is not None and meter.reader.missed_wrap_notes() == []
    now[0] += 1800.0
    _write(pkg0 / "energy_uj", 540_000_000_000 - 2 * real_max)
    _proc_stat(stat, 1000 + 1800 * os.sysconf("SC_CLK_TCK"))
    reading = meter.stop(_snap(1800.0))
    assert reading.details["wraps"] == 0
    assert reading.details["package_j"] == pytest.approx(540_000 - 2 * real_max / 1e6)
    assert reading.details["max_unread_s"] == pytest.approx(1800.0)
    (note,) = reading.notes  # one note for both packages: either may hide a wrap
    assert "package-0, package-1 went unread for up to 1800 s" in note
    assert "more than 146 W" in note and "under-counted" in note
