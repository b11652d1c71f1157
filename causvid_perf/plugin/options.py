"""The perf suite's pytest options, and the settings a session reads from them."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from causvid_perf.config import ATTENTION_BACKENDS, RunConfig
from causvid_perf.errors import CausvidPerfError, ConfigError, HistoryError
from causvid_perf.files import HISTORY_DIR_ENV, check_writable, read_only_reason
from causvid_perf.optim_recipe import canonical_recipe
from causvid_perf.pipeline.loading import models_dir_from
from causvid_perf.pipeline.samplers import build_scheduler, check_sampler
from causvid_perf.pipeline.weights_check import check_weights_files
from causvid_perf.plugin.cases import PerfCase
from causvid_perf.records.history import clean_label, default_history_dir
from causvid_perf.specs import SAMPLERS, WEIGHT_SOURCES

WEIGHTS_ENV = "CAUSVID_PERF_WEIGHTS"


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("causvid-perf", "causvid-perf performance suite")
    group.addoption(
        "--weights",
        default=os.environ.get(WEIGHTS_ENV, "auto"),
        choices=WEIGHT_SOURCES,
        help="weight source of the GPU cases (env CAUSVID_PERF_WEIGHTS; auto = pretrained if found, else synthetic)",
    )
    group.addoption("--model-dir", default=None, help="pretrained weights folder (env CAUSVID_PERF_MODELS)")
    group.addoption("--rounds", type=int, default=None, help="measured rounds per case (default 3 on a GPU, 7 on CPU)")
    group.addoption("--warmup-rounds", type=int, default=1, help="warm-up rounds per case (default 1)")
    group.addoption("--baselines", default=None, help="baselines file (default <rootdir>/baselines.json)")
    group.addoption(
        "--update-baselines", action="store_true", help="record this run's medians as baselines (measured provenance)"
    )
    group.addoption(
        "--force-write",
        action="store_true",
        help="replace read-only output files (baselines.json made read-only by chmod is otherwise refused)",
    )
    group.addoption(
        "--require-gpu",
        action="store_true",
        help="fail at session start instead of skipping GPU cases (for GPU runners)",
    )
    group.addoption("--sampler", default=None, help="run every case with this sampler")
    group.addoption("--attention", default=None, help="run every case with this attention backend")
    group.addoption(
        "--optim",
        default=None,
        metavar="RECIPE",
        help="run every case with this optimization recipe, e.g. cache=fbc:0.05+compile=blocks (its own baselines)",
    )
    group.addoption(
        "--compare-to",
        default=None,
        help="compare with a stored run on time, VRAM and output quality: 'latest' (newest run in "
        "the history folder), a history folder, a session JSON or a pytest-benchmark JSON",
    )
    group.addoption(
        "--history-dir",
        default=None,
        help="the suite's JSON history (default <rootdir>/.benchmarks/causvid-perf, env CAUSVID_PERF_HISTORY)",
    )
    group.addoption(
        "--label",
        default="",
        metavar="NAME",
        help="name this run in the history (shown by `causvid-perf history list` and in report plots)",
    )
    group.addoption(
        "--confirm",
        type=int,
        default=1,
        metavar="N",
        help="measure a case that fails on time N more times; it fails only if every measurement does "
        "(default 1; 0 fails at once)",
    )
    group.addoption(
        "--inject-slowdown",
        type=float,
        default=1.0,
        help="make every transformer forward FACTOR times slower (checks that regressions fail)",
    )


@dataclass
class SuiteOptions:
    weights: str = "auto"
    models_dir: str | None = None
    rounds: int | None = None
    warmup_rounds: int = 1
    baselines: Path = Path("baselines.json")
    update_baselines: bool = False
    require_gpu: bool = False
    sampler: str | None = None
    attention: str | None = None
    optim: str | None = None
    compare_to: str | None = None
    history_dir: Path = Path(".benchmarks/causvid-perf")
    inject_slowdown: float = 1.0
    label: str = ""
    confirm: int = 1
    force_write: bool = False

    def rounds_for(self, case: PerfCase) -> int:
        return self.rounds or (3 if case.on_gpu else 7)

    @classmethod
    def from_config(cls, config: pytest.Config) -> SuiteOptions:
        """The options, checked before anything loads: a bad one is a pytest.UsageError of one line."""
        opt = config.option
        root = Path(config.rootpath)
        _check_options(opt)
        baselines = Path(opt.baselines) if opt.baselines else root / "baselines.json"
        refused = read_only_reason(baselines) if opt.update_baselines else None
        if refused:  # before anything is measured (--force-write lifts it)
            raise pytest.UsageError(f"--update-baselines: {refused}")
        return cls(
            weights=opt.weights,
            models_dir=opt.model_dir,
            rounds=opt.rounds,
            warmup_rounds=opt.warmup_rounds,
            baselines=baselines,
            update_baselines=opt.update_baselines,
            require_gpu=opt.require_gpu,
            sampler=opt.sampler,
            attention=opt.attention,
            optim=_checked_recipe(opt.optim),
            compare_to=opt.compare_to,
            history_dir=Path(opt.history_dir) if opt.history_dir else default_history_dir(root),
            inject_slowdown=opt.inject_slowdown,
            label=check_label(opt.label),
            confirm=opt.confirm,
            force_write=opt.force_write,
        )


def _checked_recipe(text: str | None) -> str | None:
    """--optim in its canonical spelling (None when not given); a bad recipe is a pytest.UsageError."""
    if text is None:
        return None
    try:
        return canonical_recipe(text)
    except ConfigError as exc:
        raise pytest.UsageError(f"--optim: {exc}") from None


def _check_options(opt: Any) -> None:
    if opt.rounds is not None and opt.rounds < 1:
        raise pytest.UsageError(f"--rounds {opt.rounds}: give 1 or more measured rounds (default 3 on a GPU, 7 on CPU)")
    if opt.warmup_rounds < 0:
        raise pytest.UsageError(f"--warmup-rounds {opt.warmup_rounds}: give 0 or more warm-up rounds (default 1)")
    if opt.confirm < 0:
        raise pytest.UsageError(
            f"--confirm {opt.confirm}: give 0 or more measurements to confirm a time failure (default 1)"
        )
    if not (math.isfinite(opt.inject_slowdown) and opt.inject_slowdown >= 1.0):
        raise pytest.UsageError(
            f"--inject-slowdown {opt.inject_slowdown:g}: the factor must be a finite number >= 1 "
            "(2 = every transformer forward twice as slow)"
        )
    if opt.attention is not None and opt.attention not in ATTENTION_BACKENDS:
        raise pytest.UsageError(f"--attention {opt.attention}: choose one of {', '.join(ATTENTION_BACKENDS)}")
    checks: list[tuple[str, Any, Callable[[str], object]]] = [
        ("--sampler", opt.sampler, check_sampler_option),
        # the flag, else the environment variable: either is checked before anything is measured
        (
            "--history-dir" if opt.history_dir else f"${HISTORY_DIR_ENV}",
            opt.history_dir or os.environ.get(HISTORY_DIR_ENV) or None,
            lambda d: check_writable(Path(d) / "session.json", "the folder"),
        ),
    ]
    models = models_dir_from(opt.model_dir)
    if models is not None and opt.weights in ("auto", "pretrained"):  # a damaged file found before any case loads
        checks.append(("--model-dir", str(models), check_weights_files))
    for option, value, check in checks:
        if value is None:
            continue
        try:
            check(value)
        except CausvidPerfError as exc:
            raise pytest.UsageError(f"{option} {value}: {exc}") from None


def check_sampler_option(name: str) -> None:
    """--sampler checked before the session: the name or dotted path, and a user factory called
    once on a sample case, so one that returns something other than a scheduler (None) stops the
    session in one line rather than failing every case."""
    check_sampler(name)
    if name not in SAMPLERS:
        build_scheduler(RunConfig(model="causvid-1.3b", weights="tiny", sampler=name, device="cpu").resolved("cpu"))


def sampler_misfit(config: RunConfig, sampler: str) -> str | None:
    """Why --sampler does not fit a case, which then keeps its own sampler; None when it fits.
    Only the causvid sampler runs on fixed timesteps: streaming models' per-chunk lists, a case's own."""
    if sampler == "causvid":
        return None
    if config.spec.is_streaming:
        return f"{config.model} is a streaming model and keeps its causvid sampler on its per-chunk timesteps"
    if config.timesteps:
        return "the case's explicit timesteps need the causvid sampler"
    return None


def check_label(label: str) -> str:
    try:
        return clean_label(label)
    except HistoryError as exc:
        raise pytest.UsageError(f"--label: {exc}") from None
