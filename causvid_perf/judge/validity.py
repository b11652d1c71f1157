"""Whether a run may become a reference: a baseline, or the run a later one is compared with.

A run is unfit when its numbers describe something other than the code at a quiet GPU:

- a slowdown was injected on purpose (`--inject-slowdown`, the gate study);
- its output holds NaN or Inf;
- another process used the GPU while it ran, judged from memory, not process ids (inside a
  container NVML reports host pids, so this process cannot find itself by pid): NVML's used memory
  minus this process's reserved pool and its CUDA context;
- the GPU throttled for heat or power;
- the CPU was shared while the case ran: other processes kept at least half a hardware thread (or a
  tenth of the machine's threads) busy on average, the hypervisor stole 5 % of the CPU time or more,
  or the case ran on a CPU beside other pytest-xdist workers of the same run (measure/machine.py
  reads /proc/stat and /proc/loadavg at the case's start and end);
- it kept too few rounds for a median to mean much;
- it ran tiny weights but carries a GPU's key (tiny timings describe the harness, not the GPU);
- torch compiled during a measured round (a new input shape, a guard that failed: an --optim recipe
  with compile=...): that round timed the compiler, so a shape change cannot pass as a slowdown.

Every stored case carries its `Validity`; `--update-baselines` refuses an unfit case, `--compare-to
latest` skips unfit runs, and the report marks them and keeps them out of trend lines.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from causvid_perf.judge.baselines import is_cpu_class

# This process's CUDA context and the driver's own use of the card, which NVML counts as "used"
# but torch's reserved pool does not (about 0.5 GiB on an H100): more than this is someone else's.
CONTEXT_ALLOWANCE_GIB = 1.0
# Memory of other processes that makes a run unfit (beyond the allowance above).
OTHER_MEMORY_LIMIT_GIB = 0.5
# A median of fewer rounds than this is not a reference.
MIN_REFERENCE_ROUNDS = 3
# Other processes' CPU use over a case that makes it unfit: this many hardware threads busy on
# average, or this fraction of the machine's threads where that is more (a big machine's
# background work leaves a one-thread case alone).
SHARED_CPU_THREADS = 0.5
SHARED_CPU_FRACTION = 0.1
# CPU time stolen by the hypervisor for other guests that makes a case unfit.
STEAL_LIMIT = 0.05
_IGNORED_THROTTLE = {"GpuIdle", "ApplicationsClocksSetting"}
_SLOWING_THROTTLE = {"HwSlowdown", "HwThermalSlowdown", "SwThermalSlowdown", "HwPowerBrakeSlowdown"}


@dataclass(frozen=True)
class Validity:
    """Fit to be a reference when there is no reason against it."""

    reasons: tuple[str, ...] = ()

    @property
    def fit(self) -> bool:
        return not self.reasons

    def describe(self) -> str:
        return "fit" if self.fit else "unfit: " + "; ".join(self.reasons)

    def to_dict(self) -> dict[str, Any]:
        return {"fit": self.fit, "reasons": list(self.reasons)}

    @classmethod
    def from_dict(cls, data: Any) -> Validity:
        reasons = data.get("reasons") if isinstance(data, Mapping) else None
        return cls(tuple(str(r) for r in reasons or ()))

    def __add__(self, other: Validity) -> Validity:
        return Validity(self.reasons + tuple(r for r in other.reasons if r not in self.reasons))


def other_memory_gib(used_gib: float | None, reserved_gib: float | None) -> float | None:
    """Memory on the card that is not this process's: NVML's used minus torch's reserved pool and the
    context allowance; None without an NVML reading."""
    if used_gib is None:
        return None
    return max(0.0, used_gib - (reserved_gib or 0.0) - CONTEXT_ALLOWANCE_GIB)


def machine_validity(machine: Mapping[str, Any]) -> Validity:
    """What the machine state recorded with a run says: other processes' memory, throttling."""
    reasons = []
    other = machine.get("other_memory_gib")
    if isinstance(other, (int, float)) and other > OTHER_MEMORY_LIMIT_GIB:
        reasons.append(f"{other:.2f} GiB of other processes' memory on the GPU")
    elif other is None and machine.get("other_processes"):  # recorded before memory was judged
        reasons.append(f"{len(machine['other_processes'])} other process(es) on the GPU")
    throttle = set(machine.get("throttle_reasons") or []) - _IGNORED_THROTTLE
    if throttle & _SLOWING_THROTTLE:
        reasons.append(f"GPU throttled: {', '.join(sorted(throttle))}")
    load = machine.get("cpu_load")
    if isinstance(load, Mapping):
        reasons += cpu_load_reasons(load, on_cpu=is_cpu_class(machine.get("gpu_class")))
    return Validity(tuple(reasons))


def cpu_load_reasons(load: Mapping[str, Any], *, on_cpu: bool) -> list[str]:
    """Why a case's CPU load (measure/machine.py's cpu_load) says the machine was shared; [] if not."""
    reasons = []
    threads, others, steal = load.get("threads"), load.get("other_threads"), load.get("steal_fraction")
    limit = max(SHARED_CPU_THREADS, SHARED_CPU_FRACTION * threads) if isinstance(threads, int) else SHARED_CPU_THREADS
    if isinstance(others, (int, float)) and others >= limit:
        averages = [load.get("load_start"), load.get("load_end")]
        shown = " -> ".join(f"{a:.2f}" for a in averages if isinstance(a, (int, float)))
        reasons.append(
            f"the CPU was shared: other processes kept {others:.2f} of {threads} hardware threads busy"
            + (f" (load average {shown})" if shown else "")
        )
    if isinstance(steal, (int, float)) and steal >= STEAL_LIMIT:
        reasons.append(f"the hypervisor stole {steal:.0%} of the CPU time")
    workers = load.get("workers")
    if on_cpu and isinstance(workers, int) and workers > 1:
        reasons.append(f"measured beside {workers - 1} other pytest-xdist worker(s) on the same CPU")
    return reasons


def run_validity(
    machine: Mapping[str, Any],
    *,
    slowdown: float = 1.0,
    finite: bool = True,
    first_bad_frame: int | None = None,
    rounds: int | None = None,
    weights: str | None = None,
    gpu_class: str | None = None,
    compiles: int = 0,
) -> Validity:
    """Every rule at once, for one measured case; `compiles`: torch's compilations inside its
    measured rounds (RunResult.compiles summed; the warm-up rounds' do not count)."""
    reasons = list(machine_validity(machine).reasons)
    if slowdown != 1.0:
        reasons.append(f"a x{slowdown:g} slowdown was injected")
    if not finite:
        where = f" from frame {first_bad_frame}" if first_bad_frame is not None else ""
        reasons.append(f"the output holds NaN or Inf{where}")
    if rounds is not None and rounds < MIN_REFERENCE_ROUNDS:
        reasons.append(f"{rounds} measured round(s), a reference needs {MIN_REFERENCE_ROUNDS}")
    if compiles:
        reasons.append(
            f"torch compiled {compiles} time(s) during the measured rounds (a new input shape or a failed guard): "
            "those rounds timed the compiler"
        )
    if weights == "tiny" and gpu_class is not None and not is_cpu_class(gpu_class):
        reasons.append(f"tiny weights on {gpu_class}: their times describe the harness, not the GPU")
    return Validity(tuple(reasons))
