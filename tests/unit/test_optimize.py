"""An --optim recipe on the real tiny Wan pipeline: each part takes hold with its evidence, a part
that hooks nothing is one line (never a silent plain run), a cache's skip ratio is the count of the
forwards it served (counted here by hooks of the test's own), and regional compilation runs, with a
shape change recompiling inside a round, which makes that round unfit."""

from __future__ import annotations

import re

import pytest
import torch

from causvid_perf.cli import main as cli
from causvid_perf.config import RunConfig
from causvid_perf.errors import ExitCode, OptimizationError
from causvid_perf.judge.validity import run_validity
from causvid_perf.measure.runner import run_case
from causvid_perf.optim_recipe import package_available
from causvid_perf.pipeline.loading import load_pipeline

CLI_TINY = ["--weights", "tiny", "--frames", "9", "--height", "32", "--width", "32", "--device", "cpu"]
TINY = RunConfig(model="causvid-1.3b", weights="tiny", height=32, width=32, frames=9, device="cpu")


def _load(recipe: str, **changes):
    return load_pipeline(TINY.replace(optim=recipe, **changes).resolve())


# Each cache, the modules it serves forwards of, and the layer of theirs that runs only when they compute.
CACHES = [
    ("pab", r"blocks.\d+.attn1$", "to_out.0"),
    ("fbc:10", r"blocks.\d+$", "ffn.net.2"),
    ("taylorseer-attn:2", r"blocks.\d+.attn\d$", "to_out.0"),
    ("magcache:10", r"blocks.\d+$", "ffn.net.2"),
]


@pytest.mark.parametrize("recipe, modules, layer", CACHES, ids=[c[0] for c in CACHES])
def test_a_caches_skip_ratio_is_the_share_of_forwards_it_served(recipe, modules, layer):
    loaded = _load(recipe)
    evidence = loaded.details["optim"]["cache"]
    assert evidence["hooked_modules"] > 0 and evidence["counted_modules"] > 0
    calls, computed = [0], [0]
    for name, module in loaded.pipe.transformer.named_modules():
        if re.fullmatch(modules, name):
            module.register_forward_pre_hook(lambda m, a: calls.__setitem__(0, calls[0] + 1))
            module.get_submodule(layer).register_forward_pre_hook(lambda m, a: computed.__setitem__(0, computed[0] + 1))
    result = run_case(loaded, include_load=False, keep_frames=False)
    skipped = calls[0] - computed[0]
    assert calls[0] > 0 and skipped > 0, (calls, computed)  # the cache served some: the test can fail
    assert result.optim is not None
    assert (result.optim["cache_calls"], result.optim["cache_skipped"]) == (calls[0], skipped)
    assert result.metrics.cache_skip_ratio == pytest.approx(skipped / calls[0])
    assert result.output.finite


@pytest.mark.parametrize(
    "recipe, message",
    [
        (
            "taylorseer",
            "cache=taylorseer:5 took no hold: it hooked no module on Wan's transformer; its default module "
            "patterns match no module of Wan's transformer; use cache=taylorseer-attn",
        ),
        ("textkv", "cache=textkv took no hold: it hooked no module on Wan's transformer;"),
    ],
    ids=["taylorseer", "textkv"],
)
def test_a_part_that_hooks_nothing_is_one_line_not_a_plain_run(recipe, message, capsys):
    with pytest.raises(OptimizationError, match=message):
        _load(recipe)
    code = cli.main(["run", *CLI_TINY, "--quiet", "--optim", recipe])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert code == ExitCode.USAGE and len(errors) == 1 and message in errors[0]


def test_storage_attention_offload_and_vae_parts_take_hold_together():
    loaded = _load("attn=_native_math+quant=fp8-storage+offload=group:1+vae=tiling")
    optim = loaded.details["optim"]
    assert optim["recipe"] == "attn=_native_math+quant=fp8-storage+offload=group:1+vae=tiling"
    assert optim["attn"]["backend"] == "_native_math" and optim["attn"]["modules"] == 4  # 2 blocks x 2
    assert optim["quant"]["fp8_parameters"] > 0
    assert optim["offload"]["offloaded_modules"] > 0 and optim["vae"] == {"name": "tiling", "use_tiling": True}
    stored = [p for p in loaded.pipe.transformer.parameters() if p.dtype == torch.float8_e4m3fn]
    assert len(stored) == optim["quant"]["fp8_parameters"]
    result = run_case(loaded, include_load=False, keep_frames=False)
    assert result.output.finite and result.weights_details["optim"] == optim
    assert result.optim == {
        "compiles": 0,
        "compile_s": 0.0,
        "cache_calls": None,
        "cache_skipped": None,
        "cache_skip_ratio": None,
    }


@pytest.mark.skipif(not package_available("torchao"), reason="torchao (the 'quant' extra) is not installed")
def test_torchao_int8_weight_only_quantizes_the_transformers_linear_weights():
    loaded = _load("quant=int8wo")
    quant = loaded.details["optim"]["quant"]
    linears = [m for m in loaded.pipe.transformer.modules() if isinstance(m, torch.nn.Linear)]
    assert quant["quantized_parameters"] == sum(type(m.weight).__name__ == "Int8Tensor" for m in linears) > 0
    assert run_case(loaded, include_load=False, keep_frames=False).output.finite


@pytest.mark.slow
def test_regional_compilation_with_inductor_compiles_in_the_first_round_and_keeps_the_video():
    """compile_repeated_blocks with inductor, as a GPU user runs it: code generated for each block,
    once. The slow tier of `make test` (about 20 s on 2 cores, 16 s of it inductor compiling on a cold
    cache). The compiled video matches the eager one to within float rounding."""
    eager = run_case(_load("none"), include_load=False, keep_frames=True)
    loaded = _load("compile=blocks:inductor")
    assert loaded.details["optim"]["compile"]["compiled_regions"] == 2
    first = run_case(loaded, include_load=False, keep_frames=True)
    assert first.compiles >= 1 and 0 < first.metrics.compile_s < first.metrics.sampling_s
    warm = run_case(loaded, include_load=False, keep_frames=True)
    assert warm.compiles == 0 and warm.metrics.compile_s == 0.0
    assert run_validity({}, compiles=warm.compiles).fit
    for result in (first, warm):
        difference = abs(result.frames.astype(int) - eager.frames.astype(int)).max()
        assert result.output.finite and difference <= 2.0, difference  # uint8 levels


def test_regional_compilation_compiles_once_and_a_new_shape_recompiles_inside_the_round():
    """compile_repeated_blocks with the eager backend: dynamo captures each block's graph (what
    recompiles on a new shape) without inductor's code generation, which takes minutes on a CPU. With
    a cache beside it: the warm rounds compile nothing (the skip counters are no guard of dynamo's)."""
    loaded = _load("pab+compile=blocks:eager")
    assert loaded.details["optim"]["compile"]["compiled_regions"] == 2  # the tiny transformer's two blocks
    first = run_case(loaded, include_load=False, keep_frames=False)  # a warm-up round compiles
    assert first.compiles >= 1 and first.metrics.compile_s > 0
    assert first.metrics.compile_s < first.metrics.sampling_s  # reported apart, spent inside sampling
    warm = [run_case(loaded, include_load=False, keep_frames=False) for _ in range(2)]
    assert [r.compiles for r in warm] == [0, 0] and warm[-1].metrics.compile_s == 0.0
    assert [r.metrics.cache_skip_ratio for r in warm] == [first.metrics.cache_skip_ratio] * 2
    assert first.metrics.cache_skip_ratio > 0
    assert run_validity({}, compiles=sum(r.compiles for r in warm)).fit  # the compile rule alone, not this CPU's
    reshaped = run_case(loaded, TINY.replace(optim="pab+compile=blocks:eager", height=48).resolve(), include_load=False)
    assert reshaped.compiles >= 1
    validity = run_validity({}, compiles=sum(r.compiles for r in (*warm, reshaped)))
    assert not validity.fit and "torch compiled" in validity.describe()
