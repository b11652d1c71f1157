"""The metrics a run reports: name, label, unit and which way is better, defined once.

Everything that shows, stores or judges a metric (result JSON, baselines, tables, report, A/B)
looks its facts up here. Default tolerances are the judge's business (judge/tolerances.py).

The catalogue owns the list of a run's metrics: `records/result.Metrics` has one field per run
metric and the run result schema one property (tests/unit/test_catalogue.py holds both equal to
`RUN_METRICS`); an entry's `ab_run` puts it in every A/B run's record (`AB_RUN_METRICS`) and its
`summary` in the terminal summary's line per case (`SUMMARY_METRICS`).
"""

from __future__ import annotations

from dataclasses import dataclass

GIB = 2**30  # bytes in a GiB, the unit of every memory metric
GB = 1e9  # bytes in a (decimal) GB, the unit the study states VRAM in

LOWER_IS_BETTER = "lower_is_better"
HIGHER_IS_BETTER = "higher_is_better"
DIRECTIONS = (LOWER_IS_BETTER, HIGHER_IS_BETTER)


@dataclass(frozen=True)
class Metric:
    name: str
    label: str  # for people, e.g. "per-step time"
    unit: str
    direction: str = LOWER_IS_BETTER
    kind: str = "time"  # time, rate, memory, compute or quality
    ab_run: bool = False  # kept in each run's record of an A/B report (experiments/ab_session.py)
    summary: str = ""  # its text in the terminal summary, "{}" standing for the median; "" = not shown

    @property
    def lower_is_better(self) -> bool:
        return self.direction == LOWER_IS_BETTER

    @property
    def title(self) -> str:
        """The label with its unit, for table rows: "sampling time (s)"."""
        return f"{self.label} ({self.unit})" if self.unit else self.label


_RUN = (
    Metric("load_s", "load", "s"),
    Metric("text_encode_s", "text encode", "s", ab_run=True),
    Metric("sampling_s", "sampling time", "s", ab_run=True, summary="sampling {} s"),
    Metric("s_per_it", "per-step time", "s/it", ab_run=True, summary="s/it {}"),
    Metric("decode_s", "decode", "s", ab_run=True),
    Metric("frames_out_s", "frames out", "s"),
    Metric("prompt_to_output_s", "prompt-to-output", "s", ab_run=True, summary="prompt-to-output {} s"),
    Metric("peak_vram_allocated_gib", "peak VRAM allocated", "GiB", kind="memory", ab_run=True),
    Metric("peak_vram_reserved_gib", "peak VRAM reserved", "GiB", kind="memory"),
    Metric("peak_vram_device_gib", "peak VRAM device", "GiB", kind="memory", ab_run=True, summary="peak VRAM {} GiB"),
    Metric("tflop_per_step", "compute per step", "TFLOP", kind="compute"),
    Metric("achieved_tflops", "achieved", "TFLOP/s", HIGHER_IS_BETTER, "compute"),
    Metric("mfu", "MFU", "", HIGHER_IS_BETTER, "compute"),
    # Streaming (autoregressive) runs only; None for a bidirectional run.
    Metric("first_frames_s", "time to first frames", "s", ab_run=True),
    Metric("steady_chunk_s", "chunk time (steady state)", "s"),
    Metric("stream_fps", "FPS after the first chunk", "frames/s", HIGHER_IS_BETTER, "rate", ab_run=True),
    Metric("overall_fps", "FPS overall", "frames/s", HIGHER_IS_BETTER, "rate"),
    Metric("kv_cache_gib", "KV cache", "GiB", kind="memory"),
    # Runs with an optimization recipe (--optim) only; None otherwise. The skip ratio: forwards of the
    # modules a cache hooked that it served from the cache, over all their forwards. The compile
    # time: seconds torch spent compiling inside this run (part of its sampling time; 0 once warm).
    Metric("cache_skip_ratio", "cache skip ratio", "", HIGHER_IS_BETTER, "compute", ab_run=True),
    Metric("compile_s", "compile (inside sampling)", "s", ab_run=True),
)
STREAM_METRICS = ("first_frames_s", "steady_chunk_s", "stream_fps", "overall_fps", "kv_cache_gib")
# Not stored in a result: the device-level peak where NVML read one, else the allocator's.
PEAK_VRAM = Metric("peak_vram_gib", "peak VRAM", "GiB", kind="memory", ab_run=True)
_QUALITY = (
    Metric("flicker_score", "flicker", "", kind="quality"),
    Metric("mean_frame_difference", "mean frame difference", "", kind="quality"),
    Metric("output_ms_ssim", "output MS-SSIM", "", HIGHER_IS_BETTER, "quality"),
    Metric("psnr_vs_teacher", "PSNR vs teacher", "dB", HIGHER_IS_BETTER, "quality"),
    Metric("ssim_vs_teacher", "SSIM vs teacher", "", HIGHER_IS_BETTER, "quality"),
    Metric("ms_ssim_vs_teacher", "MS-SSIM vs teacher", "", HIGHER_IS_BETTER, "quality"),
    # change into a chunk's first frame over the change at latent transitions inside chunks
    Metric("chunk_boundary_ratio", "chunk boundary change ratio", "", kind="quality"),
)
METRICS: dict[str, Metric] = {m.name: m for m in (*_RUN, PEAK_VRAM, *_QUALITY)}

# The scalar metrics every RunResult carries (None where not measurable, e.g. VRAM on CPU).
RUN_METRICS: tuple[str, ...] = tuple(m.name for m in _RUN)
# Kept in every run's record of an A/B report (besides the per-step times, the VRAM source and finite).
AB_RUN_METRICS: tuple[str, ...] = tuple(m.name for m in METRICS.values() if m.ab_run)
# Shown, each as its `summary` text, on the terminal summary's line per case, in catalogue order.
SUMMARY_METRICS: tuple[Metric, ...] = tuple(m for m in METRICS.values() if m.summary)
# Guarded by baselines and by --compare-to: medians over a case's measured rounds.
GUARDED_METRICS = (
    "sampling_s",
    "s_per_it",
    "prompt_to_output_s",
    "peak_vram_allocated_gib",
    "peak_vram_device_gib",
    "first_frames_s",
    "stream_fps",
)
# Guarded for streaming models only: a bidirectional run has no chunks.
STREAM_GUARDED = ("first_frames_s", "stream_fps")


def guarded_metrics(streaming: bool) -> tuple[str, ...]:
    """The guarded metrics of a case of a streaming or a bidirectional model."""
    return GUARDED_METRICS if streaming else tuple(m for m in GUARDED_METRICS if m not in STREAM_GUARDED)


# Kept per case in the history besides the guarded ones.
REPORTED_METRICS = GUARDED_METRICS + (
    "text_encode_s",
    "decode_s",
    "peak_vram_reserved_gib",
    "tflop_per_step",
    "achieved_tflops",
    "mfu",
    "steady_chunk_s",
    "overall_fps",
    "kv_cache_gib",
)
# Times whose rounds a Mann-Whitney test can judge.
TIME_METRICS = ("sampling_s", "s_per_it", "prompt_to_output_s", "first_frames_s")


def metric(name: str) -> Metric | None:
    """The catalogue entry, or one inferred from the name: ``*_gib`` is memory, ``*_s`` a time
    (``*_per_s`` is a rate, which the caller must describe); None otherwise."""
    if name in METRICS:
        return METRICS[name]
    if name.endswith("_gib"):
        return Metric(name, name, "GiB", kind="memory")
    if name.endswith("_s") and not name.endswith("_per_s"):
        return Metric(name, name, "s")
    return None


def is_timing(name: str) -> bool:
    """A time or a rate: what a busy machine can push out of tolerance for a while."""
    found = metric(name)
    return found is not None and found.kind in ("time", "rate")


def unit(name: str) -> str:
    found = metric(name)
    return found.unit if found else ""
