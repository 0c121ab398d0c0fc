"""Energy of a task's process tree: CPU (RAPL or a TDP model), RAM (model), GPU (NVML).

    from cmf_core.energy import EnergyMonitor
    with EnergyMonitor(settings) as monitor:
        run_task()
    record = monitor.measurement.to_record(execution_id, settings)

One file per meter (``rapl.py``, ``tdp_model.py``, ``ram.py``, ``nvml.py``), each following the
contract in ``base.py`` and naming its method in every reading. Importing this package loads
neither pynvml, numpy nor psutil, and touches no network.
"""

from cmf_core.energy.base import Meter, MeterUnavailable, Reading
from cmf_core.energy.monitor import EnergyMonitor, Measurement, measure

__all__ = [
    "EnergyMonitor",
    "Measurement",
    "Meter",
    "MeterUnavailable",
    "Reading",
    "measure",
]
