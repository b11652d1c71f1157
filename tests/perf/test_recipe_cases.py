"""The perf cases that carry an optimization recipe (causvid_perf/plugin/cases.py RECIPE_CASES):
each with its own id and baseline key. On CPU the tiny recipe case takes the first-run path until
this CPU class has a baseline; the study case with its recipe runs under `-m h100` on a GPU and
skips, with the reason, elsewhere."""

import pytest

from causvid_perf.plugin.cases import RECIPE_CASES


def _param(case):
    return pytest.param(case, id=case.id, marks=[getattr(pytest.mark, m) for m in case.marks])


@pytest.mark.parametrize("case", [_param(c) for c in RECIPE_CASES])
def test_recipe_case(case, perf):
    perf.check(case)
