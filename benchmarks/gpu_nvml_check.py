"""Check the NVML meter on a real NVIDIA GPU: counter mode vs power sampling vs nvidia-smi.

    PYTHONPATH=/path/to/repo python benchmarks/gpu_nvml_check.py [--seconds 20] [--hz 1]

Needs only the ``cmf_core`` package on PYTHONPATH and nvidia-ml-py (``pynvml``); torch is
optional. With torch, GPU 0 runs ~``--seconds`` of large matrix multiplications from this
process; without it the GPUs idle for that long. Both NVML modes measure the same window, and
``nvidia-smi --query-gpu`` (power.draw and any energy field it offers) is read before and after.
Prints one JSON document: per GPU, the device energy by each mode, the ratio power/counter, the
share attributed to this process, and the nvidia-smi readings.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import threading
import time
import types
from pathlib import Path
from typing import Any


def _import_meters() -> tuple[Any, Any]:
    """NvmlMeter and ProcessTree, without needing the rest of cmf_core's dependencies."""
    try:
        from cmf_core.energy.nvml import NvmlMeter
        from cmf_core.energy.proctree import ProcessTree
    except ImportError:
        # cmf_core/__init__ imports the store (SQLAlchemy, ...); the energy modules need only
        # the standard library, so load them under a bare package object instead.
        for name in [m for m in sys.modules if m == "cmf_core" or m.startswith("cmf_core.")]:
            del sys.modules[name]
        spec = importlib.util.find_spec("cmf_core")
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit("cmf_core is not on PYTHONPATH") from None
        package = types.ModuleType("cmf_core")
        package.__path__ = list(spec.submodule_search_locations)
        sys.modules["cmf_core"] = package
        NvmlMeter = importlib.import_module("cmf_core.energy.nvml").NvmlMeter
        ProcessTree = importlib.import_module("cmf_core.energy.proctree").ProcessTree
    return NvmlMeter, ProcessTree


def smi(fields: list[str]) -> list[dict[str, str]] | str:
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError) as e:
        return f"nvidia-smi failed: {e}"
    return [dict(zip(fields, (v.strip() for v in line.split(",")), strict=False))
            for line in out.strip().splitlines()]


def smi_fields() -> list[str]:
    fields = ["index", "name", "power.draw"]
    try:
        help_text = subprocess.run(
            ["nvidia-smi", "--help-query-gpu"], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return fields
    for line in help_text.splitlines():
        token = line.strip().strip('"')
        if "energy" in token and " " not in token and token not in fields:
            fields.append(token)
    return fields


def load(seconds: float) -> str:
    try:
        import torch
    except ImportError:
        time.sleep(seconds)
        return "idle (torch not importable)"
    if not torch.cuda.is_available():
        time.sleep(seconds)
        return "idle (torch sees no CUDA device)"
    a = torch.randn(8192, 8192, device="cuda:0")
    b = torch.randn(8192, 8192, device="cuda:0")
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        a @ b
        n += 1
        if n % 10 == 0:
            torch.cuda.synchronize()
    torch.cuda.synchronize()
    return f"torch matmul 8192x8192 on cuda:0, {n} products"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--hz", type=float, default=1.0, help="sampling rate (product default 1)")
    args = parser.parse_args()
    import pynvml

    nvml_meter, process_tree = _import_meters()
    tree = process_tree(os.getpid())
    counter = nvml_meter(pynvml, mode="counter")
    power = nvml_meter(pynvml, mode="power")
    fields = smi_fields()
    smi_before = smi(fields)
    first = tree.sample()
    for meter in (counter, power):
        meter.start(first)
        meter.prepare()
    halt = threading.Event()

    def sampler() -> None:
        while not halt.wait(1.0 / args.hz):
            snap = tree.sample()
            counter.sample(snap)
            power.sample(snap)

    thread = threading.Thread(target=sampler, daemon=True)
    thread.start()
    t0 = time.monotonic()
    what = load(args.seconds)
    halt.set()
    thread.join()
    last = tree.sample()
    by_counter, by_power = counter.stop(last), power.stop(last)
    duration = time.monotonic() - t0
    smi_after = smi(fields)
    for meter in (counter, power):
        meter.close()
    gpus = []
    for c, p in zip(by_counter.details["gpus"], by_power.details["gpus"], strict=False):
        gpus.append({
            "index": c["index"],
            "name": c["name"],
            "counter_device_j": c["device_j"],
            "power_device_j": p["device_j"],
            "power_over_counter": p["device_j"] / c["device_j"] if c["device_j"] else None,
            "counter_task_j": c["task_j"],
            "task_share_counter": c["task_j"] / c["device_j"] if c["device_j"] else None,
            "share_methods": c["share"],
            "mean_w_counter": c["device_j"] / duration,
        })
    print(json.dumps({
        "host": os.uname().nodename,
        "script": str(Path(__file__).name),
        "load": what,
        "duration_s": duration,
        "sample_hz": args.hz,
        "gpus": gpus,
        "counter_method": by_counter.method,
        "power_method": by_power.method,
        "notes": list(by_counter.notes) + list(by_power.notes),
        "nvidia_smi_fields": fields,
        "nvidia_smi_before": smi_before,
        "nvidia_smi_after": smi_after,
    }, indent=2))


if __name__ == "__main__":
    main()
