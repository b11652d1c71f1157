"""The `optim` recipe without a model: its grammar round-trips, unknown or clashing parts are one line
and exit 2 through the CLI, what a part needs is checked before anything loads, and two runs that
differ only in their recipe never share a baseline nor a "previous run"."""

from __future__ import annotations

import pytest
from fake_baselines import history_run, measured_provenance
from hypothesis import given
from hypothesis import strategies as st

from causvid_perf import optim_recipe
from causvid_perf.cli import main as cli
from causvid_perf.config import RunConfig
from causvid_perf.config_overrides import parse_overrides
from causvid_perf.errors import ConfigError, ExitCode
from causvid_perf.judge.baselines import (
    baseline_key,
    case_context,
    check_case,
    cpu_class,
    key_differences,
    normalize_key,
)
from causvid_perf.judge.baselines_file import load_baselines
from causvid_perf.judge.baselines_file import record as record_baseline
from causvid_perf.judge.validity import run_validity
from causvid_perf.optim_recipe import (
    KNOWN,
    SLOTS,
    Part,
    Recipe,
    check_recipe,
    matrix_recipes,
    parse_recipe,
    unsupported,
)
from causvid_perf.records.case import CaseRecord
from causvid_perf.records.lookup import previous_case
from causvid_perf.specs import PROFILES

TINY = ["--weights", "tiny", "--frames", "9", "--height", "32", "--width", "32", "--device", "cpu"]
CPU = cpu_class("AMD EPYC", 2)


# -- the grammar -----------------------------------------------------------------------------------


def _value(arg: optim_recipe.Arg) -> st.SearchStrategy:
    if arg.choices:
        return st.sampled_from(arg.choices)
    low = arg.minimum if arg.minimum is not None else 0
    if arg.kind is int:
        return st.integers(int(low), int(low) + 50)
    return st.floats(low, low + 10, allow_nan=False, allow_infinity=False)


@st.composite
def spelled_recipes(draw) -> tuple[str, Recipe]:
    """A recipe spelt as a user might (any part order, slot given or not, arguments given or left
    to their defaults) and the recipe it stands for."""
    slots = draw(st.lists(st.sampled_from(SLOTS), unique=True))
    parts, texts = [], []
    for slot in slots:
        known = draw(st.sampled_from([o for o in KNOWN if o.slot == slot]))
        given_args = draw(st.integers(0, len(known.args)))
        values = tuple(draw(_value(a)) if i < given_args else a.default for i, a in enumerate(known.args))
        parts.append(Part(known.name, values))
        shown = [repr(v) if isinstance(v, float) else str(v) for v in values[:given_args]]
        if known.name == "backend":
            name = shown[0] if shown else "native"
            texts.append(f"attn={name}" if draw(st.booleans()) else name)
            parts[-1] = Part("backend", (name,))
            continue
        text = ":".join([known.name, *shown])
        texts.append(f"{slot}={text}" if draw(st.booleans()) else text)
    order = draw(st.permutations(range(len(texts))))
    spelt = "+".join(texts[i] for i in order) or draw(st.sampled_from(["", "none", " none "]))
    return spelt, Recipe(tuple(sorted(parts, key=lambda p: SLOTS.index(p.slot))))


@given(spelled_recipes())
def test_any_spelling_parses_to_its_recipe_and_the_canonical_string_round_trips(case):
    spelt, expected = case
    recipe = parse_recipe(spelt)
    assert recipe == expected
    assert parse_recipe(recipe.canonical()) == recipe
    assert parse_recipe(recipe.canonical()).canonical() == recipe.canonical()


def test_the_canonical_string_writes_every_argument_in_slot_order():
    assert parse_recipe("blocks+fbc").canonical() == "cache=fbc:0.05+compile=blocks:inductor"
    assert parse_recipe("compile=blocks:eager+quant=fp8-storage+flex").canonical() == (
        "attn=flex+quant=fp8-storage+compile=blocks:eager"
    )
    assert parse_recipe("none").plain and parse_recipe("").canonical() == "none"
    assert RunConfig(optim="pab+tiling").normalised().optim == "cache=pab:2+vae=tiling"


@pytest.mark.parametrize(
    "text, message",
    [
        ("cache=fbc+cache=pab", "names two cache optimizations (cache=fbc:0.05 and cache=pab:2); keep one per slot"),
        ("fbc+magcache", "names two cache optimizations"),
        ("group+leaf", "names two offload optimizations"),
        ("cache=warp", "unknown optimization 'warp'; known: cache: fbc, pab"),
        ("speed=fbc", "unknown slot 'speed'; slots are cache, attn, quant, offload, vae, compile"),
        ("quant=fbc", "fbc is a cache optimization; write cache=fbc"),
        ("fbc:fast", "threshold must be a float; got 'fast'"),
        ("fbc:-1", "threshold must be >= 0; got -1"),
        ("pab:1", "skip must be >= 2; got 1"),
        ("fbc:0.1:2", "fbc takes threshold; drop the extra ':2'"),
        ("textkv:1", "textkv takes no arguments; drop the extra ':1'"),
        ("attn=warp", "unknown name 'warp'; choose one of: native"),
        ("fbc++blocks", "has an empty part; join parts with one '+'"),
        ("compile=blocks:tvm", "unknown backend 'tvm'; choose one of: inductor, aot_eager, eager"),
    ],
)
def test_unknown_or_clashing_parts_are_one_line_naming_the_fix(text, message):
    with pytest.raises(ConfigError) as info:
        parse_recipe(text)
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "argv",
    [
        ["run", *TINY, "--optim", "cache=fbc+cache=pab"],
        ["run", *TINY, "--optim", "warp"],
        ["compare", *TINY, "--a", "optim=fbc:x", "--b", "optim=none"],
    ],
    ids=["clash", "unknown", "compare-override"],
)
def test_the_cli_refuses_a_bad_recipe_with_one_line_and_exit_2(argv, capsys):
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == ExitCode.USAGE == 2
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "optim" in errors[0], err
    assert "Traceback" not in err


def test_a_compare_override_carries_a_recipe_whole():
    assert parse_overrides("optim=cache=fbc:0.1+compile=blocks,steps=2") == {
        "optim": "cache=fbc:0.1+compile=blocks",
        "steps": 2,
    }


# -- what a part needs -------------------------------------------------------------------------------


def _config(**changes) -> RunConfig:
    return RunConfig(model="causvid-1.3b", weights="tiny", height=32, width=32, frames=9, device="cpu", **changes)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"optim": "attn=flash"}, "attention backend 'flash' needs a CUDA GPU; on CPU use one of: native"),
        ({"optim": "quant=fp8dq"}, "needs a CUDA GPU"),
        ({"optim": "faster", "guidance": 5.0}, "runs only without classifier-free guidance"),
        ({"optim": "quant=fp8-storage", "memory": ("fp8-storage",)}, "and --memory fp8-storage do the same thing"),
        ({"optim": "vae=tiling", "memory": ("vae-tiling",)}, "and --memory vae-tiling do the same thing"),
        ({"optim": "attn=flex", "attention": "_native_math"}, "both set the attention backend; give it once"),
    ],
)
def test_a_part_this_run_cannot_use_is_refused_before_anything_loads(changes, message):
    with pytest.raises(ConfigError, match=message):
        _config(**changes).validate()


def test_a_streaming_model_takes_no_recipe():
    config = RunConfig(model="self-forcing-1.3b", weights="tiny", height=32, width=32, frames=21, device="cpu")
    with pytest.raises(ConfigError, match="applies to the bidirectional models"):
        config.replace(optim="fbc").validate()


def test_a_missing_package_names_the_extra_that_installs_it(monkeypatch):
    monkeypatch.setattr(optim_recipe, "package_available", lambda name: False)
    with pytest.raises(
        ConfigError, match=r"quant=int8wo needs the torchao package; pip install 'causvid-perf\[quant\]'"
    ):
        check_recipe("int8wo", device="cpu")
    run, skipped = matrix_recipes(device="cpu")
    assert "quant=int8wo" in skipped and "quant=int8wo" not in run


def test_fp8_compute_needs_compute_capability_8_9():
    part = parse_recipe("quant=fp8dq").parts[0]
    assert "needs compute capability 8.9 or newer (this GPU has 8.0)" in (
        unsupported(part, device="cuda", capability=(8, 0)) or ""
    )
    reason = unsupported(part, device="cuda", capability=(9, 0))
    assert reason is None or "torchao" in reason  # on an H100 only the package can be missing


def test_the_default_matrix_on_cpu_skips_what_needs_a_gpu_with_the_reason():
    run, skipped = matrix_recipes(device="cpu", uses_cfg=True)
    assert "cache=fbc:0.05" in run and "compile=blocks:inductor" in run and "attn=flex" in run
    assert "attention backend 'flash' needs a CUDA GPU" in skipped["attn=flash"]
    assert "without classifier-free guidance" in skipped["cache=faster:2"]
    assert all(parse_recipe(text).canonical() == text for text in run)


# -- identity: baselines and the previous run --------------------------------------------------------


def _record(key: dict) -> CaseRecord:
    return CaseRecord(id="tiny", key=key, medians={"sampling_s": 0.01})


def test_two_runs_that_differ_only_in_optim_share_no_baseline_and_no_previous_run():
    plain = _config().resolve("cpu")
    cached = plain.replace(optim="fbc")
    key, other = baseline_key(plain, CPU), baseline_key(cached, CPU)
    assert key["optim"] == "none" and other["optim"] == "cache=fbc:0.05"
    assert key_differences(other, key) == ["optim none -> cache=fbc:0.05"]
    assert case_context(other).endswith(" optim cache=fbc:0.05") and case_context(key) != case_context(other)
    earlier, note = previous_case(history_run(_record(key)), _record(other))
    assert earlier is None and note is not None and "optim none -> cache=fbc:0.05" in note
    # two spellings of one recipe are one case
    assert baseline_key(plain.replace(optim="cache=fbc:0.05"), CPU) == other
    same, note = previous_case(history_run(_record(other)), _record(baseline_key(plain.replace(optim="fbc:0.05"), CPU)))
    assert same is not None and note is None
    # a key written before `optim` existed was a plain run
    old = {name: value for name, value in key.items() if name != "optim"}
    assert normalize_key(old) == key
    # a recipe changes the pipeline: a case cannot run on a pipeline loaded without it
    assert plain.pipeline_key() != cached.pipeline_key()


def test_a_recipe_round_trips_through_the_dict_and_a_dict_without_it_is_plain():
    plain = _config()
    data = plain.to_dict()
    assert data["optim"] == "none" and RunConfig.from_dict(data) == plain.normalised()
    del data["optim"]  # as a revision before --optim wrote it
    assert RunConfig.from_dict(data) == plain.normalised()
    cached = plain.replace(optim="pab")
    assert RunConfig.from_dict(cached.to_dict()).optim == "cache=pab:2"


def test_a_compile_inside_a_measured_round_makes_the_case_unfit():
    assert run_validity({}, compiles=0).fit
    unfit = run_validity({}, compiles=2)
    assert not unfit.fit and "torch compiled 2 time(s) during the measured rounds" in unfit.describe()


def test_a_profile_may_carry_a_recipe_and_an_option_overrides_it(monkeypatch):
    monkeypatch.setitem(PROFILES, "tiny-cached", {**PROFILES["tiny"], "optim": "fbc+blocks"})
    assert RunConfig.from_profile("tiny-cached").optim == "cache=fbc:0.05+compile=blocks:inductor"
    assert RunConfig.from_profile("tiny-cached", optim="pab").optim == "cache=pab:2"
    assert RunConfig.from_profile("tiny", optim="none").optim == "none"


def test_a_plain_baseline_judges_no_run_with_a_recipe(tmp_path):
    plain = _config().resolve("cpu")
    key, cached = baseline_key(plain, CPU), baseline_key(plain.replace(optim="pab"), CPU)
    path = tmp_path / "b.json"
    record_baseline(path, key, {"sampling_s": 1e-6}, measured_provenance(), {"sampling_s": (0.01, 1e-7)})
    store = load_baselines(path)
    assert store.measured_for(key) is not None and store.measured_for(cached) is None
    assert {c.state for c in check_case(cached, {"sampling_s": 1.0}, store) if c.name == "sampling_s"} == {
        "no-baseline"
    }
    assert {c.state for c in check_case(key, {"sampling_s": 1.0}, store) if c.name == "sampling_s"} == {"regression"}
