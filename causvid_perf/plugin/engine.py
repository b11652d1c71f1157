"""A perf case's run configuration: the case's own, with the suite's options applied."""

from __future__ import annotations

from typing import Any

from causvid_perf.config import RunConfig
from causvid_perf.plugin.cases import PerfCase
from causvid_perf.plugin.options import SuiteOptions, sampler_misfit


def resolve_case_config(case: PerfCase, options: SuiteOptions) -> RunConfig:
    changes: dict[str, Any] = {}
    if not case.config.weights or case.config.weights == "auto":
        changes["weights"] = options.weights
    if options.sampler and not sampler_misfit(case.config, options.sampler):  # others keep theirs, with a note
        changes["sampler"] = options.sampler
    if options.attention:
        changes["attention"] = options.attention
    return case.config.replace(**changes) if changes else case.config
