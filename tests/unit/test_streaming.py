"""The streaming generator against a full-sequence forward of the same transformer.

For every transformer call the generator makes (each denoising step of each chunk, and each
cache-writing call at t = 0), the reference runs diffusers' stock WanTransformer3DModel forward on
the whole prefix of the video: the clean chunks made so far followed by the call's own input,
with a per-token timestep (0 on the clean chunks) and a block-causal (optionally windowed) boolean
mask given to diffusers' own attention processor. The chunk's output must match to float32
tolerance. The VAE's chunk-by-chunk decode must equal one decode of the whole latent video.
"""

from __future__ import annotations

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from causvid_perf.config import RunConfig
from causvid_perf.measure import flops
from causvid_perf.pipeline.loading import load_pipeline
from causvid_perf.pipeline.stream_attention import KVCache, Window, block_causal_mask
from causvid_perf.pipeline.stream_decode import ChunkDecoder, pixel_frames, unnormalize_latents
from causvid_perf.pipeline.streaming import StreamingGenerator, StreamSettings
from causvid_perf.specs import TEXT_TOKENS as PROMPT_TOKENS
from causvid_perf.specs import TRANSFORMER_TINY

H = W = 32  # 4 x 4 = 16 latent pixels, 4 tokens per latent frame after 2 x 2 patches
LATENT_HW = (4, 4)
TEXT_TOKENS = 24  # any prompt length works; short keeps the reference cheap


@pytest.fixture(scope="module")
def tiny():
    return load_pipeline(
        RunConfig(model="self-forcing-1.3b", weights="tiny", height=H, width=W, frames=33, device="cpu").resolve()
    )


@pytest.fixture(scope="module")
def prompt_embeds(tiny):
    generator = torch.Generator().manual_seed(7)
    return torch.randn(1, TEXT_TOKENS, tiny.pipe.transformer.config.text_dim, generator=generator)


class MaskedProcessor:
    """diffusers' own attention processor, handed a fixed attention mask."""

    def __init__(self, inner, mask):
        self.inner, self.mask = inner, mask

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, rotary_emb=None):
        return self.inner(attn, hidden_states, encoder_hidden_states, self.mask, rotary_emb)


def reference_forward(transformer, latents, timestep, prompt_embeds, mask, chunk_start):
    """Stock forward over latent frames [0, end): the clean prefix is at t = 0, the chunk at `timestep`."""
    tokens_per_frame = latents.shape[-1] * latents.shape[-2] // 4
    length = latents.shape[2] * tokens_per_frame
    timesteps = torch.zeros(1, length)
    timesteps[:, chunk_start * tokens_per_frame :] = timestep
    saved = [block.attn1.processor for block in transformer.blocks]
    for block in transformer.blocks:
        block.attn1.set_processor(
            MaskedProcessor(block.attn1.processor, None if mask is None else mask[:length, :length])
        )
    try:
        return transformer(
            hidden_states=latents, timestep=timesteps, encoder_hidden_states=prompt_embeds, return_dict=False
        )[0]
    finally:
        for block, processor in zip(transformer.blocks, saved, strict=True):
            block.attn1.set_processor(processor)


def stream_with_calls(transformer, settings, latent_frames, prompt_embeds, seed=0):
    """The chunks the generator yields, and every transformer call it made: (input, t, output)."""
    generator = StreamingGenerator(
        transformer, settings, (1, 16, latent_frames, *LATENT_HW), device="cpu", dtype=torch.float32
    )
    calls = []

    def record(module, args, kwargs, output):
        calls.append((kwargs["hidden_states"].clone(), float(kwargs["timestep"][0]), output[0].clone()))

    handle = transformer.register_forward_hook(record, with_kwargs=True)
    try:
        with torch.inference_mode():
            chunks = list(generator.generate(prompt_embeds, torch.Generator().manual_seed(seed)))
    finally:
        handle.remove()
    return generator, chunks, calls


SELF_FORCING = StreamSettings(3, (1000, 750, 500, 250), 5.0, warp=True)
CAUSVID = StreamSettings(3, (1000, 757, 522), 8.0, warp=False)
# 4 chunks of 3 frames; a 6-frame window with 1 sink frame leaves a ring of 5, so chunk 3 wraps.
WINDOWED = StreamSettings(3, (1000, 750, 500, 250), 5.0, warp=True, window_frames=6, sink_frames=1)
CASES = {"causvid": (CAUSVID, 9), "self-forcing-chunk-2": (StreamSettings(2, (1000, 500), 5.0, True), 6)}
CASES["window-6-sink-1"] = (WINDOWED, 12)


@pytest.mark.parametrize("name", list(CASES))
def test_every_call_equals_a_masked_full_sequence_forward(tiny, prompt_embeds, name):
    settings, latent_frames = CASES[name]
    transformer = tiny.pipe.transformer
    generator, chunks, calls = stream_with_calls(transformer, settings, latent_frames, prompt_embeds)
    steps = len(settings.timesteps)
    assert len(calls) == generator.calls == len(chunks) * (steps + 1) - 1
    window = Window(latent_frames, settings.window_frames, settings.sink_frames)
    mask = block_causal_mask(window, settings.chunk_frames, tokens_per_frame=4)
    unmasked_differs = []
    with torch.inference_mode():
        for index, (latents, timestep, output) in enumerate(calls):
            chunk, step = divmod(index, steps + 1)
            start, end = chunk * settings.chunk_frames, (chunk + 1) * settings.chunk_frames
            expected_t = 0.0 if step == steps else settings.sigmas[step] * 1000.0
            assert timestep == pytest.approx(expected_t)
            prefix = torch.cat([c.latents for c in chunks[:chunk]] + [latents], dim=2)
            reference = reference_forward(transformer, prefix, timestep, prompt_embeds, mask, start)
            torch.testing.assert_close(output, reference[:, :, start:end], rtol=1e-4, atol=1e-5)
            if chunk:
                plain = reference_forward(transformer, prefix, timestep, prompt_embeds, None, start)
                unmasked_differs.append(not torch.allclose(output, plain[:, :, start:end], rtol=1e-4, atol=1e-5))
    # the check can fail: without the mask, later chunks would see the future (the noisy chunk)
    assert all(unmasked_differs)


@pytest.mark.parametrize("settings", [CAUSVID, SELF_FORCING], ids=["causvid", "self-forcing"])
def test_each_step_predicts_x0_and_renoises_it_with_fresh_noise(tiny, prompt_embeds, settings):
    """x0 = x - sigma * flow; the next step's input is (1 - sigma') x0 + sigma' noise, the noise drawn
    from the seeded CPU generator in order (the chunk's start noise, then one draw per later step)."""
    _, chunks, calls = stream_with_calls(tiny.pipe.transformer, settings, 6, prompt_embeds, seed=5)
    noise = torch.Generator().manual_seed(5)
    sigmas, steps = settings.sigmas, len(settings.sigmas)
    for chunk in chunks:
        first = chunk.index * (steps + 1)
        torch.testing.assert_close(calls[first][0], torch.randn(1, 16, 3, *LATENT_HW, generator=noise))
        for step in range(steps):
            latents, _, flow = calls[first + step]
            x0 = latents - sigmas[step] * flow
            if step + 1 < steps:
                fresh = torch.randn(1, 16, 3, *LATENT_HW, generator=noise)
                expected = (1 - sigmas[step + 1]) * x0 + sigmas[step + 1] * fresh
                torch.testing.assert_close(calls[first + step + 1][0], expected)
        torch.testing.assert_close(chunk.latents, x0)
        if chunk.index + 1 < len(chunks):  # the cache call sees the clean chunk at t = 0
            torch.testing.assert_close(calls[first + steps][0], x0)
    assert settings.sigmas[0] == 1.0  # t = 1000 is pure noise either way


def test_warping_maps_the_steps_through_the_shifted_schedule():
    # Self-Forcing's (1000, 750, 500, 250) at shift 5 is Krea's published (1000, 937.5, 833.3, 625)
    assert [round(1000 * s, 1) for s in SELF_FORCING.sigmas] == [1000.0, 937.5, 833.3, 625.0]
    assert CAUSVID.sigmas == [1.0, 0.757, 0.522]  # CausVid uses its timesteps as written


def test_same_seed_same_video_and_processors_restored(tiny, prompt_embeds):
    transformer = tiny.pipe.transformer
    before = [(b.attn1.processor, b.attn2.processor) for b in transformer.blocks]
    _, first, _ = stream_with_calls(transformer, CAUSVID, 9, prompt_embeds, seed=3)
    _, again, _ = stream_with_calls(transformer, CAUSVID, 9, prompt_embeds, seed=3)
    _, other, _ = stream_with_calls(transformer, CAUSVID, 9, prompt_embeds, seed=4)
    assert all(torch.equal(a.latents, b.latents) for a, b in zip(first, again, strict=True))
    assert not torch.allclose(first[0].latents, other[0].latents)
    assert [(b.attn1.processor, b.attn2.processor) for b in transformer.blocks] == before


# -- the visibility rule ---------------------------------------------------------------------------


def test_block_causal_mask_by_hand():
    # 4 frames, chunks of 2, one token per frame: chunk 0 sees frames 0-1, chunk 1 sees 0-3
    mask = block_causal_mask(Window(4), 2, 1).int().tolist()
    assert mask == [[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1]]
    # window 3 with 1 sink: chunk [4, 6) sees frame 0 and frames 4-5 (6 - (3 - 1) = 4)
    windowed = block_causal_mask(Window(6, 3, 1), 2, 1).int().tolist()
    assert windowed[4] == [1, 0, 0, 0, 1, 1]
    assert windowed[2] == [1, 0, 1, 1, 0, 0]


def test_ring_slots_hold_exactly_the_visible_frames():
    window = Window(total_frames=20, window_frames=6, sink_frames=1)
    for end in range(3, 21, 3):
        held = {window.slot(f): f for f in range(end)}  # later frames overwrite earlier ones
        visible = {f for f in range(end) if window.visible(f, end)}
        assert set(held.values()) == visible
        assert len(held) == min(end, window.capacity_frames)


# -- the KV cache's memory -------------------------------------------------------------------------


def cache_shape(transformer):
    config = transformer.config
    return dict(layers=config.num_layers, heads=config.num_attention_heads, head_dim=config.attention_head_dim)


def test_kv_cache_bytes_equal_the_analytic_size(tiny, prompt_embeds):
    transformer = tiny.pipe.transformer
    generator, _, _ = stream_with_calls(transformer, CAUSVID, 9, prompt_embeds)
    shape = cache_shape(transformer)
    by_hand = shape["layers"] * 2 * (9 * 4) * shape["heads"] * shape["head_dim"] * 4  # float32
    assert generator.cache.nbytes == generator.kv_cache_bytes() == by_hand
    # full size, bf16 (REFERENCE section 7): 30 layers x 2 x 32,760 tokens x 1,536 values = 5.62 GiB
    full = KVCache.analytic_bytes(
        Window(21), layers=30, heads=12, head_dim=128, tokens_per_frame=1560, batch=1, dtype=torch.bfloat16
    )
    assert full == 30 * 2 * 32760 * 1536 * 2 and round(full / 2**30, 2) == 5.62


def filled_bytes_by_chunk(transformer, settings, latent_frames, prompt_embeds):
    generator = StreamingGenerator(
        transformer, settings, (1, 16, latent_frames, *LATENT_HW), device="cpu", dtype=torch.float32
    )
    filled = []
    with torch.inference_mode():
        for _ in generator.generate(prompt_embeds, torch.Generator().manual_seed(0)):
            filled.append(generator.cache.filled_bytes)
    return generator.cache.nbytes, filled


def test_with_a_window_memory_stops_growing_once_the_window_is_full(tiny, prompt_embeds):
    transformer = tiny.pipe.transformer
    per_frame = 2 * cache_shape(transformer)["layers"] * 4 * 2 * 12 * 4  # K+V x layers x tokens x heads x dim x 4 B
    short_bytes, short = filled_bytes_by_chunk(transformer, WINDOWED, 12, prompt_embeds)
    long_bytes, long = filled_bytes_by_chunk(transformer, WINDOWED, 24, prompt_embeds)
    assert short_bytes == long_bytes == 6 * per_frame  # a longer video allocates nothing more
    assert long[:3] == [3 * per_frame, 6 * per_frame, 6 * per_frame]
    assert set(long[1:]) == {6 * per_frame}  # full after two chunks, then flat for six more
    global_bytes, global_filled = filled_bytes_by_chunk(transformer, SELF_FORCING, 24, prompt_embeds)
    assert global_bytes == 24 * per_frame and global_filled == [3 * per_frame * (k + 1) for k in range(8)]
    assert short == long[:4]


# -- chunk-by-chunk VAE decode ---------------------------------------------------------------------


@pytest.mark.parametrize("sizes", [(3, 3, 3), (1, 4, 2, 2)])
def test_chunk_by_chunk_decode_equals_one_decode(tiny, sizes):
    vae = tiny.pipe.vae
    latents = torch.randn(1, 16, sum(sizes), *LATENT_HW, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        whole = vae.decode(unnormalize_latents(vae, latents), return_dict=False)[0]
        decoder, parts, start = ChunkDecoder(vae), [], 0
        for size in sizes:
            part = decoder.decode(latents[:, :, start : start + size])
            first, last = pixel_frames(start, start + size)
            assert part.shape[2] == last - first
            parts.append(part)
            start += size
    torch.testing.assert_close(torch.cat(parts, dim=2), whole, rtol=1e-5, atol=1e-6)
    assert whole.shape[2] == 4 * sum(sizes) - 3


# -- the analytic cost -----------------------------------------------------------------------------


@pytest.mark.parametrize("settings, latent_frames", [(CAUSVID, 9), (WINDOWED, 12)], ids=["global", "window"])
def test_stream_flops_match_a_measured_count(tiny, settings, latent_frames):
    """The per-chunk analytic FLOPs (keys growing with the cache, the prompt's K/V once) sum to what
    torch's FLOP counter sees in the DiT blocks over a whole streaming generation."""
    transformer = tiny.pipe.transformer
    text = torch.randn(1, PROMPT_TOKENS, transformer.config.text_dim, generator=torch.Generator().manual_seed(2))
    generator = StreamingGenerator(
        transformer, settings, (1, 16, latent_frames, *LATENT_HW), device="cpu", dtype=torch.float32
    )
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode(), sdpa_kernel(SDPBackend.MATH):
        for _ in generator.generate(text, torch.Generator().manual_seed(0)):
            pass
    per_module = counter.get_flop_counts()
    blocks = [name for name in per_module if name.count(".") == 2 and ".blocks." in name]
    measured = sum(sum(per_module[name].values()) for name in blocks)
    analytic = flops.stream_chunk_flops(
        generator.window, settings.chunk_frames, 4, len(settings.timesteps), TRANSFORMER_TINY["1.3b"]
    )
    assert measured == sum(analytic)
    later = analytic[1:]  # the first chunk also pays the prompt's K/V
    if settings.window_frames is None:
        assert later == sorted(set(later))  # attention grows with the cache
    else:
        assert later[1:] == [later[1]] * (len(later) - 1)  # flat once the window is full
