"""A measured perf case as the plugin judges and reports it: its record and its last round."""

from __future__ import annotations

from dataclasses import dataclass

from causvid_perf.judge.baselines import case_context
from causvid_perf.judge.verdict import IMPROVEMENT, NO_BASELINE, PASS, REGRESSION
from causvid_perf.metrics import is_timing
from causvid_perf.records.case import CaseRecord
from causvid_perf.records.result import RunResult


@dataclass
class CaseOutcome:
    """A measured case: its record (what the history keeps) and its last round's result with frames."""

    record: CaseRecord
    result: RunResult

    @property
    def context(self) -> str:
        gpu = self.result.machine.get("gpu") or "CPU"
        return f"{gpu}, {case_context(self.record.key or {})}"

    def failures(self, timing_only: bool = False) -> list[str]:
        """One line per failed check (against baselines or the previous run); only the times and
        rates with `timing_only`."""
        bad = [c for c in self.record.checks + self.record.comparisons if c.state == REGRESSION]
        return [c.message(self.context) for c in bad if is_timing(c.name) or not timing_only]

    def missing_baseline(self) -> bool:
        """No guarded metric could be checked against anything: the case has no baseline at all."""
        states = {c.state for c in self.record.checks}
        return NO_BASELINE in states and not states & {PASS, REGRESSION, IMPROVEMENT}

    def improvements(self) -> list[str]:
        return [c.message(self.context) for c in self.record.checks if c.state == IMPROVEMENT]
