"""One resolution per run: RunConfig.resolve is the only way to a ResolvedConfig, it validates and
fills the recipe, and the layers below the edges (measure/, pipeline/, experiments/) never resolve
or validate again, nor check at run time whether they were given a resolved config."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

from causvid_perf.config import ResolvedConfig, RunConfig
from causvid_perf.errors import ConfigError
from causvid_perf.specs import MODELS

PACKAGE = Path(__file__).resolve().parents[2] / "causvid_perf"
BELOW_THE_EDGES = ("measure", "pipeline", "experiments")
# Where a layer below the edges may resolve, and why: each is the start of a run of its own.
ALLOWED_RESOLVE = {
    "pipeline/loading.py": "resolve_run, the helper the edges call to resolve with the loader's weights rule",
    "experiments/worker.py": "a revision's worker is its own process's edge: it receives config dicts",
    "experiments/parallel_rank.py": "a parallel run's rank is its own process's edge: it receives the run as a dict",
    "experiments/sweep.py": "the teacher's run and every grid point are new runs, each resolved once",
}
FORBIDDEN_CALLS = {"resolved", "validate", "validate_fields", "validate_for_device", "case_config"}


@functools.cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text())


def _calls(path: Path) -> list[tuple[str, int]]:
    tree = _tree(path)
    return [
        (node.func.attr, node.lineno)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and not (isinstance(node.func.value, ast.Name) and node.func.value.id == "vcs")  # vcs.resolve: a git rev
    ]


def _modules() -> list[Path]:
    return sorted(p for layer in BELOW_THE_EDGES for p in (PACKAGE / layer).rglob("*.py"))


def test_the_layers_below_the_edges_never_resolve_or_validate_again():
    found = []
    for path in _modules():
        name = path.relative_to(PACKAGE).as_posix()
        for attr, line in _calls(path):
            if attr in FORBIDDEN_CALLS or (attr == "resolve" and name not in ALLOWED_RESOLVE):
                found.append(f"{name}:{line} calls .{attr}()")
    assert not found, "resolve once, at the edge (RunConfig.resolve); found:\n" + "\n".join(found)


def test_no_run_time_check_for_a_resolved_config_remains():
    """No 'call RunConfig.resolve(d) first' errors, no `sampler is None` style guards on the run's
    recipe fields below the edges: the type says it is resolved."""
    found = []
    for path in _modules():
        text = path.read_text()
        for needle in ("resolved config", "resolved()", "resolved streaming config"):
            for number, line in enumerate(text.splitlines(), start=1):
                if needle in line and ("raise" in line or "Error(" in line):
                    found.append(f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}")
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.Compare) and any(isinstance(op, ast.Is) for op in node.ops):
                left = node.left
                recipe = isinstance(left, ast.Attribute) and left.attr in ("steps", "guidance", "sampler", "shift")
                if recipe and ast.unparse(left).startswith("config."):
                    found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: {ast.unparse(left)} is ...")
    assert not found, "\n".join(found)


def test_only_resolve_builds_a_resolved_config():
    """ResolvedConfig(...) is called in config.py's resolve alone, nowhere else in the package."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.FunctionDef):
                for call in ast.walk(node):
                    if (
                        isinstance(call, ast.Call)
                        and isinstance(call.func, ast.Name)
                        and call.func.id == "ResolvedConfig"
                        and (path.name, node.name) != ("config.py", "resolve")
                    ):
                        found.append(f"{path.relative_to(PACKAGE)}:{call.lineno} in {node.name}")
    assert not found, "\n".join(found)


@pytest.mark.parametrize("model", sorted(MODELS))
def test_resolve_fills_the_recipe(model):
    spec = MODELS[model]
    resolved = RunConfig(model=model, weights="tiny").resolve("cpu")
    assert type(resolved) is ResolvedConfig
    assert resolved.guidance == spec.default_guidance
    assert resolved.sampler == spec.default_sampler
    assert isinstance(resolved.shift, float)
    assert (resolved.dtype, resolved.device) == ("float32", "cpu")
    if spec.stream:
        assert resolved.chunk_frames == spec.stream.chunk_frames and resolved.timesteps
        assert resolved.steps == len(resolved.timesteps)
    else:
        assert resolved.steps == spec.default_steps and resolved.chunk_frames is None


def test_resolve_keeps_what_was_given():
    given = RunConfig(model="wan2.1-t2v-1.3b", steps=20, guidance=3.0, sampler="euler", shift=7.0, dtype="float16")
    resolved = given.resolve("cpu")
    assert (resolved.steps, resolved.guidance, resolved.sampler, resolved.shift) == (20, 3.0, "euler", 7.0)
    assert resolved.dtype == "float16"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"frames": 80}, "4k"),
        ({"steps": 0}, "steps must be >= 1"),
        ({"model": "nope"}, "unknown model"),
        ({"weights": "synthetic"}, "need a CUDA GPU"),  # checked against the device resolved for
        ({"attention": "flash"}, "needs a CUDA GPU"),
        ({"model": "wan2.1-t2v-1.3b", "timesteps": (1000, 500)}, "causvid sampler"),  # only as filled
    ],
)
def test_resolve_validates(changes, message):
    with pytest.raises(ConfigError, match=message):
        RunConfig(**changes).resolve("cpu")


def test_a_plan_resolves_for_a_gpu_this_machine_need_not_have():
    planned = RunConfig(weights="synthetic").resolve("cuda", check_device=False)
    assert (planned.device, planned.dtype) == ("cuda", "bfloat16")
    with pytest.raises(ConfigError, match="frames must be 4k"):
        RunConfig(frames=80).resolve("cuda", check_device=False)  # the other checks still hold


def test_weights_auto_are_decided_by_the_rule_resolution_is_given():
    asked = []

    def choose(config: RunConfig, device: str) -> str:
        asked.append((config.weights, device))
        return "tiny"

    assert RunConfig(weights="auto").resolve("cpu", choose).weights == "tiny"
    assert RunConfig(weights="auto").resolve("cpu").weights == "auto"  # planned or keyed, never loaded
    assert RunConfig(weights="tiny").resolve("cpu", choose).weights == "tiny"
    assert asked == [("auto", "cpu")]  # an explicit source is never second-guessed


def test_a_change_drops_the_resolution_but_a_seed_does_not():
    resolved = RunConfig(weights="tiny").resolve("cpu")
    assert type(resolved.replace(steps=None)) is RunConfig  # must be resolved again to run
    assert resolved.replace(steps=None).steps is None
    reseeded = resolved.with_seed(resolved.seed + 3)
    assert type(reseeded) is ResolvedConfig and reseeded.seed == resolved.seed + 3
    assert reseeded.replace(seed=resolved.seed).resolve("cpu") == resolved
