"""What the commands print: progress on stderr, tables on stdout."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from causvid_perf import fmt
from causvid_perf.errors import ExitCode
from causvid_perf.files import check_writable
from causvid_perf.metrics import METRICS, RUN_METRICS, STREAM_METRICS

if TYPE_CHECKING:  # for annotations only: `--help` imports this module, and records/ brings numpy
    from causvid_perf.records.result import RunResult

# Printed under every table measured with tiny weights.
HARNESS_ONLY = (
    "note: tiny random weights: these times describe the harness, not a model on a GPU; "
    "run on a GPU (synthetic or pretrained weights) for figures to compare with the study"
)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def quiet_or_log(quiet: bool) -> Any:
    """The progress printer of a command: `log`, or nothing under --quiet."""
    return (lambda message: None) if quiet else log


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[fmt.fixed(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


# frames_out_s is part of prompt-to-output; the table leaves it out to stay short.
TABLE_METRICS = tuple(name for name in RUN_METRICS if name != "frames_out_s")


def table_metrics(measured: Callable[[str], bool]) -> list[str]:
    """The rows of a metrics table: the streaming metrics only where some column has a value."""
    return [name for name in TABLE_METRICS if name not in STREAM_METRICS or measured(name)]


def result_table(results: Mapping[str, RunResult]) -> str:
    """Side-by-side metrics of named RunResults."""
    names = table_metrics(lambda name: any(r.metric_values()[name] is not None for r in results.values()))
    rows: list[list[Any]] = [
        [METRICS[name].title] + [r.metric_values()[name] for r in results.values()] for name in names
    ]
    rows.append(["output shape"] + ["x".join(map(str, r.output.shape)) for r in results.values()])
    rows.append(["finite"] + [r.output.finite for r in results.values()])
    return render_table(["metric", *results], rows)


class Report(Protocol):
    def to_markdown(self) -> str: ...
    def write_markdown(self, path: str) -> Path: ...
    def write_json(self, path: str) -> Path: ...


def emit_report(report: Report, markdown: str | None, json: str | None) -> None:
    """An experiment's markdown on stdout, and into the files --markdown and --json name."""
    print(report.to_markdown(), flush=True)
    if markdown:
        log(f"wrote {report.write_markdown(markdown)}")
    if json:
        log(f"wrote {report.write_json(json)}")


def check_outputs(*paths: str | None) -> None:
    """The files a command was asked to write can be written (OutputPathError, before any work)."""
    for path in paths:
        if path:
            check_writable(path)


def exit_code_for(result: RunResult) -> int:
    """OK, or NONFINITE (with an error line) when the output holds NaN or Inf."""
    if result.output.finite:
        return ExitCode.OK
    log(
        f"error: output holds {result.output.nan_count} NaN and {result.output.inf_count} Inf values; "
        "check the dtype (try --dtype float32) and the weights"
    )
    return ExitCode.NONFINITE
