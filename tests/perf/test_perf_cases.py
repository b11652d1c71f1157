"""The perf cases: `pytest -m h100` on the GPU runner, the tiny CPU cases everywhere.

Each case is measured in pytest-benchmark's pedantic mode (warm-up + fixed rounds) and its medians
are asserted against baselines.json; see causvid_perf/plugin/cases.py for the catalogue.
"""

import pytest

from causvid_perf.plugin.cases import CPU_CASES, GPU_CASES


def _param(case):
    return pytest.param(case, id=case.id, marks=[getattr(pytest.mark, m) for m in case.marks])


@pytest.mark.parametrize("case", [_param(c) for c in GPU_CASES])
def test_gpu_case(case, perf):
    perf.check(case)


@pytest.mark.parametrize("case", [_param(c) for c in CPU_CASES])
def test_cpu_tiny_case(case, perf):
    perf.check(case)
