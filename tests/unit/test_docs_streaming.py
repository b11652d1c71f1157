"""The CPU commands of docs/streaming.md run as written (in-process); GPU lines are marked."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from causvid_perf.cli import main as cli
from causvid_perf.errors import ExitCode

DOC = Path(__file__).resolve().parents[2] / "docs" / "streaming.md"
GPU_MARK = "# needs a GPU"


def command_lines() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_every_command_is_ours_or_pytest_and_gpu_lines_are_marked():
    lines = command_lines()
    assert lines and all(line.split()[0] in ("causvid-perf", "pytest") for line in lines)
    assert all(line.endswith(GPU_MARK) for line in lines if "--weights synthetic" in line or "-m h100" in line)


@pytest.mark.parametrize(
    "line", [line for line in command_lines() if line.startswith("causvid-perf") and not line.endswith(GPU_MARK)]
)
def test_cpu_commands_run_as_written(line, capsys):
    code = cli.main(shlex.split(line)[1:])
    assert code == ExitCode.OK, capsys.readouterr().err
