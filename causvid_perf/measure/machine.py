"""Machine state recorded with every result: GPU, driver, versions, clocks, heat, throttling."""

from __future__ import annotations

import os
import platform
import re
import socket
from typing import Any

import diffusers
import pynvml
import torch
import transformers

from causvid_perf.metrics import GIB


def gpu_class(device_name: str | None) -> str:
    """Baseline key for a device: 'NVIDIA H100 80GB HBM3' -> 'h100-80gb-hbm3', CPU -> 'cpu'."""
    if not device_name:
        return "cpu"
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
        "other_processes": lambda: _other_processes(handle),
    }
    for key, read in readers.items():
        try:
            value = read()
            state[key] = value.decode() if isinstance(value, bytes) else value
        except Exception:
            state[key] = None
    return state


def _other_processes(handle: Any) -> list[dict[str, Any]]:
    """Processes on the GPU besides this one: their presence makes a run unfit for a baseline."""
    procs = pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
    return [{"pid": p.pid, "used_gib": (p.usedGpuMemory or 0) / GIB} for p in procs if p.pid != os.getpid()]


def machine_info(device: str) -> dict[str, Any]:
    """Everything a result needs to be compared fairly with another one."""
    name = device_name(device)
    info: dict[str, Any] = {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
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
    return info
