"""Machine state recorded with every result: GPU, driver, versions, clocks, heat, throttling; the
CPU's model and thread count (its class), its load and steal time."""

from __future__ import annotations

import os
import platform
import re
import socket
import time
from collections.abc import Mapping
from typing import Any

import diffusers
import pynvml
import torch
import transformers

from causvid_perf.judge.baselines import cpu_class
from causvid_perf.judge.validity import machine_validity, other_memory_gib
from causvid_perf.metrics import GIB

CPUINFO, LOADAVG, STAT = "/proc/cpuinfo", "/proc/loadavg", "/proc/stat"
# /proc/stat's aggregate "cpu" line, in its order (jiffies since boot, over every CPU).
_STAT_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def cpu_model() -> str:
    """The processor's model name ('AMD EPYC'): /proc/cpuinfo's first "model name" (or, on ARM,
    "Model"/"Hardware"), else what platform knows."""
    try:
        with open(CPUINFO, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                field, _, value = line.partition(":")
                value = value.strip()
                # x86's "model" is a number and its "model name" comes first; ARM has "Model" or "Hardware".
                if field.strip().lower() in ("model name", "model", "hardware") and value and not value.isdigit():
                    return value
    except OSError:  # not Linux: machine state is best effort
        pass
    return platform.processor() or platform.machine() or "unknown"


def cpu_threads() -> int:
    """The hardware threads this process may run on (its affinity, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def cpu_snapshot() -> dict[str, Any]:
    """What the CPU was doing up to now: the load averages (/proc/loadavg), the jiffies of every CPU
    by kind (/proc/stat, steal included), this process's own CPU time and the clock. A reading that
    fails (not Linux) is left out: machine state is best effort."""
    user, system = os.times()[:2]
    snapshot: dict[str, Any] = {"clock_s": time.monotonic(), "process_cpu_s": user + system}
    try:
        with open(LOADAVG, encoding="ascii") as handle:
            snapshot["loadavg"] = [float(x) for x in handle.read().split()[:3]]
        with open(STAT, encoding="ascii") as handle:
            values = handle.readline().split()
        if values and values[0] == "cpu":
            snapshot["jiffies"] = dict(zip(_STAT_FIELDS, (int(v) for v in values[1:]), strict=False))
    except (OSError, ValueError):
        pass
    return snapshot


def cpu_load(start: Mapping[str, Any], end: Mapping[str, Any], workers: int = 1) -> dict[str, Any]:
    """The CPU's load over a case, between two `cpu_snapshot`s: the 1-minute load average at its start
    and end, the hardware threads other processes kept busy on average (all CPU time but idle, iowait
    and steal, less this process's own), the fraction of CPU time the hypervisor stole, and the
    pytest-xdist workers of this run measuring side by side. None where a reading is missing."""
    load: dict[str, Any] = {
        "threads": cpu_threads(),
        "load_start": (start.get("loadavg") or [None])[0],
        "load_end": (end.get("loadavg") or [None])[0],
        "other_threads": None,
        "steal_fraction": None,
        "workers": workers,
    }
    before, after = start.get("jiffies"), end.get("jiffies")
    wall = float(end.get("clock_s", 0.0)) - float(start.get("clock_s", 0.0))
    if isinstance(before, Mapping) and isinstance(after, Mapping) and wall > 0:
        delta = {name: after.get(name, 0) - before.get(name, 0) for name in _STAT_FIELDS}
        total = sum(delta.values())
        if total > 0:
            busy = (total - delta["idle"] - delta["iowait"] - delta["steal"]) / os.sysconf("SC_CLK_TCK")
            own = float(end.get("process_cpu_s", 0.0)) - float(start.get("process_cpu_s", 0.0))
            load["other_threads"] = max(0.0, busy - own) / wall
            load["steal_fraction"] = delta["steal"] / total
    return load


def gpu_class(device_name: str | None) -> str:
    """Baseline key for a device: 'NVIDIA H100 80GB HBM3' -> 'h100-80gb-hbm3'; without a GPU the
    CPU's class, e.g. 'cpu:AMD EPYC x2' (judge/baselines.py spells it)."""
    if not device_name:
        return cpu_class(cpu_model(), cpu_threads())
    name = re.sub(r"^nvidia\s+", "", device_name.strip(), flags=re.IGNORECASE)
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def device_name(device: str) -> str | None:
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return None


def nvml_handle(device: str) -> Any | None:
    """NVML handle of the torch device. Matched by UUID, because torch's index counts only the
    GPUs in CUDA_VISIBLE_DEVICES while NVML's counts them all."""
    if not device.startswith("cuda"):
        return None
    try:
        pynvml.nvmlInit()
        props = torch.cuda.get_device_properties(torch.device(device).index or 0)
        uuid = getattr(props, "uuid", None)
        if uuid is not None:
            text = str(uuid)
            return pynvml.nvmlDeviceGetHandleByUUID(text if text.startswith("GPU-") else f"GPU-{text}")
        return pynvml.nvmlDeviceGetHandleByIndex(torch.device(device).index or 0)
    except Exception:  # no NVML library, no permission: machine state is best effort
        return None


def _throttle_reasons(handle: Any) -> list[str]:
    mask = pynvml.nvmlDeviceGetCurrentClocksThrottleReasons(handle)
    names = []
    for attr in dir(pynvml):
        if attr.startswith("nvmlClocksThrottleReason") and attr not in (
            "nvmlClocksThrottleReasonNone",
            "nvmlClocksThrottleReasonAll",
        ):
            bit = getattr(pynvml, attr)
            if isinstance(bit, int) and bit and mask & bit:
                names.append(attr.removeprefix("nvmlClocksThrottleReason"))
    return sorted(set(names))


def gpu_state(device: str) -> dict[str, Any]:
    """Live NVML readings; empty on CPU or without NVML."""
    handle = nvml_handle(device)
    if handle is None:
        return {}
    state: dict[str, Any] = {}
    readers = {
        "driver": lambda: pynvml.nvmlSystemGetDriverVersion(),
        "sm_clock_mhz": lambda: pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM),
        "mem_clock_mhz": lambda: pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_MEM),
        "max_sm_clock_mhz": lambda: pynvml.nvmlDeviceGetMaxClockInfo(handle, pynvml.NVML_CLOCK_SM),
        "temperature_c": lambda: pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU),
        "power_w": lambda: pynvml.nvmlDeviceGetPowerUsage(handle) / 1000.0,
        "throttle_reasons": lambda: _throttle_reasons(handle),
        "memory_total_gib": lambda: pynvml.nvmlDeviceGetMemoryInfo(handle).total / GIB,
        "memory_used_gib": lambda: pynvml.nvmlDeviceGetMemoryInfo(handle).used / GIB,
        "gpu_processes": lambda: _gpu_processes(handle),
    }
    for key, read in readers.items():
        try:
            value = read()
            state[key] = value.decode() if isinstance(value, bytes) else value
        except Exception:
            state[key] = None
    return state


def _gpu_processes(handle: Any) -> list[dict[str, Any]]:
    """Every process NVML lists on the GPU, for the record. Whether others used it is judged from
    memory (judge/validity.py): in a container these are host pids, this process's among them."""
    procs = pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
    return [{"pid": p.pid, "used_gib": (p.usedGpuMemory or 0) / GIB} for p in procs]


def nvml_used_gib(device: str) -> float | None:
    """NVML's used memory of the device (everything on the card); None on CPU or without NVML."""
    handle = nvml_handle(device)
    if handle is None:
        return None
    try:
        return float(pynvml.nvmlDeviceGetMemoryInfo(handle).used) / GIB
    except Exception:  # NVML refused: machine state is best effort
        return None


def memory_state(device: str, used_gib: float | None) -> dict[str, Any]:
    """This process's allocator at this moment and the memory on the card that is not its own."""
    cuda = device.startswith("cuda") and torch.cuda.is_available()
    allocated = torch.cuda.memory_allocated(device) / GIB if cuda else None
    reserved = torch.cuda.memory_reserved(device) / GIB if cuda else None
    return {
        "torch_allocated_gib": allocated,
        "torch_reserved_gib": reserved,
        "other_memory_gib": other_memory_gib(used_gib, reserved),
    }


def machine_info(device: str) -> dict[str, Any]:
    """Everything a result needs to be compared fairly with another one."""
    name = device_name(device)
    info: dict[str, Any] = {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cpu_count": cpu_threads(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "device": device,
        "gpu": name,
        "gpu_class": gpu_class(name),
        "cpu_threads": torch.get_num_threads(),
    }
    if name:
        props = torch.cuda.get_device_properties(torch.device(device))
        info["gpu_memory_gib"] = props.total_memory / GIB
        info["gpu_sm_count"] = props.multi_processor_count
        info["compute_capability"] = f"{props.major}.{props.minor}"
        info.update(gpu_state(device))
        info.update(memory_state(device, info.get("memory_used_gib")))
    return info


def current_machine(device: str) -> dict[str, Any]:
    """`machine_info` with whether the machine is fit to record a baseline on, and why not."""
    info = machine_info(device)
    validity = machine_validity(info)
    info["fit_for_baseline"], info["unfit_reason"] = validity.fit, "; ".join(validity.reasons)
    return info


def gpu_class_of_this_machine() -> str:
    """The class of the first GPU, or "cpu" on a machine without one."""
    if torch.cuda.is_available():
        return gpu_class(torch.cuda.get_device_name(0))
    return "cpu"
