"""Analytic cost of a Wan DiT forward (REFERENCE section 4) and model FLOP utilisation."""

from __future__ import annotations

from typing import Any

from causvid_perf.pipeline.stream_attention import Window
from causvid_perf.specs import TEXT_TOKENS

# Dense bf16 tensor-core peaks (TFLOP/s) by GPU name fragment, most specific first. MFU is
# reported against these datasheet figures; None where the GPU is not listed.
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),
    ("H200", 989.0),
    ("H20", 148.0),
    ("B200", 2250.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("RTX 4090", 165.0),
)


def forward_flops(
    tokens: int,
    transformer: dict[str, Any],
    text_tokens: int = TEXT_TOKENS,
    *,
    key_tokens: int | None = None,
    text_kv: bool = True,
) -> float:
    """Matmul FLOPs of one DiT forward: 8Ld^2 + 4LKd + 4Ld^2 + 4Td^2 + 4LTd + 4Ldf per layer, with
    K = L keys (a streaming chunk's queries see K cached keys instead) and the prompt's key/value
    projections 4Td^2 left out when they are cached (``text_kv=False``)."""
    L, T = tokens, text_tokens
    K = tokens if key_tokens is None else key_tokens
    d = transformer["num_attention_heads"] * transformer["attention_head_dim"]
    f = transformer["ffn_dim"]
    per_layer = 8 * L * d**2 + 4 * L * K * d + 4 * L * d**2 + 4 * L * T * d + 4 * L * d * f
    if text_kv:
        per_layer += 4 * T * d**2
    return float(per_layer * transformer["num_layers"])


def stream_chunk_flops(
    window: Window,
    chunk_frames: int,
    tokens_per_frame: int,
    steps: int,
    transformer: dict[str, Any],
    text_tokens: int = TEXT_TOKENS,
) -> list[float]:
    """FLOPs spent between one chunk's frames and the next: the previous chunk's cache-writing call,
    this chunk's denoising calls (their keys grow with the cache until a window fills) and, in the
    first chunk, the prompt's key/value projections, computed once."""
    tokens = chunk_frames * tokens_per_frame

    def call(chunk_end: int) -> float:
        keys = window.visible_frames(chunk_end) * tokens_per_frame
        return forward_flops(tokens, transformer, text_tokens, key_tokens=keys, text_kv=False)

    ends = range(chunk_frames, window.total_frames + 1, chunk_frames)
    text_kv = forward_flops(0, transformer, text_tokens)  # no video tokens: only the 4Td^2 terms
    return [steps * call(end) + (call(end - chunk_frames) if end > chunk_frames else text_kv) for end in ends]


def step_tflop(tokens: int, transformer: dict[str, Any], uses_cfg: bool) -> float:
    """TFLOP of one sampling step: one forward, two with classifier-free guidance."""
    return forward_flops(tokens, transformer) * (2 if uses_cfg else 1) / 1e12


def peak_tflops(gpu_name: str | None) -> float | None:
    if not gpu_name:
        return None
    for fragment, peak in PEAK_BF16_TFLOPS:
        if fragment.lower() in gpu_name.lower():
            return peak
    return None


def mfu(tflop_per_step: float, s_per_step: float | None, gpu_name: str | None) -> tuple[float | None, float | None]:
    """(achieved TFLOP/s, MFU) on a known GPU; (None, None) on CPU or an unlisted GPU."""
    peak = peak_tflops(gpu_name)
    if not s_per_step or peak is None:
        return None, None
    achieved = tflop_per_step / s_per_step
    return achieved, achieved / peak
