"""On a GPU a stage's work is queued: its time and memory are only known after the final
``torch.cuda.synchronize()``. A fake CUDA whose synchronize takes 50 ms (on a fake clock) and
lands 2 GiB of queued allocations shows that a stage's seconds include the wait and its memory
peaks are read after it. CPU tests cannot see this otherwise: there ``sync()`` does nothing."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from pytest_benchmark.utils import load_timer

from causvid_perf.measure import instruments
from causvid_perf.metrics import GIB

SYNC_S = 0.050  # what the queued work takes, paid at synchronize
BODY_S = 0.010  # what the Python side of the stage takes
QUEUED_BYTES = 2 * GIB


class FakeCuda:
    """torch.cuda as Meter uses it, on a fake clock: launching queues time and memory that
    synchronize() pays and lands."""

    def __init__(self) -> None:
        self.now = 100.0
        self.queued_s = 0.0
        self.queued_bytes = 0
        self.allocated = GIB  # the model, before the stage
        self.peak = GIB
        self.synchronize_calls: list[str] = []

    def launch(self, seconds: float, nbytes: int) -> None:
        self.now += BODY_S  # the host returns at once, after its own bookkeeping
        self.queued_s += seconds
        self.queued_bytes += nbytes

    def is_available(self) -> bool:
        return True

    def is_initialized(self) -> bool:
        return True

    def synchronize(self, device: str | None = None) -> None:
        self.synchronize_calls.append(str(device))
        self.now += self.queued_s
        self.peak = max(self.peak, self.allocated + self.queued_bytes)
        self.queued_s, self.queued_bytes = 0.0, 0

    def reset_peak_memory_stats(self, device: str | None = None) -> None:
        self.peak = self.allocated

    def max_memory_allocated(self, device: str | None = None) -> int:
        return self.peak

    def max_memory_reserved(self, device: str | None = None) -> int:
        return self.peak + GIB // 2


class FakeNvml:
    """NVML's device-level "used" memory: what the card holds once the queued work has run."""

    def __init__(self, cuda: FakeCuda) -> None:
        self.cuda = cuda

    def nvmlDeviceGetMemoryInfo(self, handle: object) -> SimpleNamespace:
        return SimpleNamespace(used=self.cuda.peak + GIB)  # + the CUDA context


@pytest.fixture
def cuda(monkeypatch) -> FakeCuda:
    fake = FakeCuda()
    monkeypatch.setattr(instruments, "torch", SimpleNamespace(cuda=fake))
    monkeypatch.setattr(instruments, "time", SimpleNamespace(perf_counter=lambda: fake.now))
    monkeypatch.setattr(instruments, "nvml_handle", lambda device: "handle")
    monkeypatch.setattr(instruments, "pynvml", FakeNvml(fake))
    return fake


def test_a_stage_includes_the_final_synchronize(cuda):
    with instruments.Meter("cuda:0") as meter, meter.stage("sampling"):
        cuda.launch(SYNC_S, QUEUED_BYTES)
    assert meter.stages["sampling"].seconds == pytest.approx(BODY_S + SYNC_S), (
        "the stage clock was read before the final synchronize: the queued work is left out"
    )
    assert cuda.synchronize_calls == ["cuda:0", "cuda:0"]  # before the start, and before the clock stops
    assert cuda.queued_s == 0


def test_memory_peaks_are_read_after_the_final_synchronize(cuda):
    with instruments.Meter("cuda:0") as meter, meter.stage("decode"):
        cuda.launch(SYNC_S, QUEUED_BYTES)
    record = meter.stages["decode"]
    assert record.peak_allocated_gib == pytest.approx(3.0)  # the model's 1 GiB + the stage's 2 GiB
    assert record.peak_reserved_gib == pytest.approx(3.5)
    assert record.peak_device_gib == pytest.approx(4.0)
    assert meter.vram_peaks() == pytest.approx((3.0, 3.5, 4.0))


def test_work_queued_before_a_stage_is_not_its_time(cuda):
    meter = instruments.Meter("cuda:0")
    cuda.launch(1.0, 0)  # the previous stage's leftovers: paid by the sync at the start
    with meter.stage("frames_out"):
        cuda.launch(SYNC_S, 0)
    assert meter.stages["frames_out"].seconds == pytest.approx(BODY_S + SYNC_S)


def test_on_cpu_there_is_nothing_to_synchronize(cuda):
    with instruments.Meter("cpu") as meter, meter.stage("sampling"):
        cuda.now += BODY_S
    assert cuda.synchronize_calls == []
    assert meter.stages["sampling"].seconds == pytest.approx(BODY_S)
    assert meter.vram_peaks() == (None, None, None)


def test_the_perf_cases_clock_waits_for_queued_work_and_pytest_benchmark_loads_it(cuda):
    start = instruments.synced_perf_counter()
    cuda.launch(SYNC_S, 0)
    assert instruments.synced_perf_counter() - start == pytest.approx(BODY_S + SYNC_S)
    # the plugin hands SYNCED_TIMER to --benchmark-timer, which pytest-benchmark imports by its dotted name
    assert load_timer(instruments.SYNCED_TIMER).target is instruments.synced_perf_counter
