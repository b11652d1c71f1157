"""A perf case's run configuration: the case's own, with the suite's options applied."""

from __future__ import annotations

from typing import Any

from causvid_perf.config import ResolvedConfig
from causvid_perf.pipeline.loading import resolve_run
from causvid_perf.plugin.cases import PerfCase
from causvid_perf.plugin.options import SuiteOptions, sampler_misfit


def resolve_case_config(case: PerfCase, options: SuiteOptions) -> ResolvedConfig:
    """The case as this session runs it (--weights, --sampler, --attention), resolved once, here at
    the plugin's edge (pipeline.loading.resolve_run: validated, weights "auto" decided)."""
    changes: dict[str, Any] = {}
    if not case.config.weights or case.config.weights == "auto":
        changes["weights"] = options.weights
    if options.sampler and not sampler_misfit(case.config, options.sampler):  # others keep theirs, with a note
        changes["sampler"] = options.sampler
    if options.attention:
        changes["attention"] = options.attention
    if options.optim:
        changes["optim"] = options.optim
    return resolve_run(case.config.replace(**changes), options.models_dir)
