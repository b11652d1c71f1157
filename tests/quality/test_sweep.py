"""`causvid-perf sweep` on the tiny models: rows complete, JSON valid, markdown table, CLI path."""

from __future__ import annotations

import argparse
import json
import math

import pytest
import torch

from causvid_perf.cli import main as cli
from causvid_perf.cli.sweep import add_parser as add_sweep_parser
from causvid_perf.experiments.sweep import TABLE_HEADERS, run_sweep, sweep_markdown
from causvid_perf.records.sweep import ROW_FIELDS, SWEEP


def _check(data, steps, guidances):
    assert data["schema"] == SWEEP.schema and data["version"] == SWEEP.version == 1
    assert data["weights"] == "tiny" and data["meaningful"] is False
    assert data["teacher"]["model"] == "wan2.1-t2v-1.3b"
    assert [(r["steps"], r["guidance"]) for r in data["rows"]] == [(s, float(g)) for s in steps for g in guidances]
    for row in data["rows"]:
        assert set(row) == set(ROW_FIELDS)  # the rows the sweep writes are the format's
        assert row["sampling_s"] > 0 and row["s_per_it"] > 0
        assert row["peak_vram_gib"] is None  # CPU
        for key in ("ssim_vs_teacher", "ms_ssim_vs_teacher"):
            assert math.isfinite(row[key])
    json.loads(json.dumps(data, allow_nan=False))  # strict JSON


@pytest.mark.quality
def test_sweep_on_tiny_models(tiny_pipelines):
    data = run_sweep(
        tiny_pipelines["causvid-1.3b"],
        tiny_pipelines["wan2.1-t2v-1.3b"],
        steps=(2, 4),
        guidances=(1, 2),
        teacher_steps=4,
    )
    _check(data, (2, 4), (1, 2))
    text = sweep_markdown(data)
    assert "| " + " | ".join(TABLE_HEADERS) + " |" in text and "not meaningful" in text


@pytest.mark.quality
@pytest.mark.slow
def test_full_sweep_grid(tiny_pipelines):
    data = run_sweep(tiny_pipelines["causvid-1.3b"], tiny_pipelines["wan2.1-t2v-1.3b"])
    _check(data, (2, 4, 6, 8), (1, 2, 3))


def _parser():
    parser = argparse.ArgumentParser(prog="causvid-perf")
    add_sweep_parser(parser.add_subparsers(dest="command", required=True))
    return parser


def test_sweep_parser_lists_and_errors(capsys):
    args = _parser().parse_args(["sweep", "--steps", "2,4", "--guidance", "1,2.5", "--height", "32"])
    assert args.steps == (2, 4) and args.guidance == (1.0, 2.5) and args.height == 32
    defaults = _parser().parse_args(["sweep"])
    assert defaults.steps == (2, 4, 6, 8) and defaults.guidance == (1.0, 2.0, 3.0)
    with pytest.raises(SystemExit):
        _parser().parse_args(["sweep", "--steps", "two"])
    assert "integers" in capsys.readouterr().err


@pytest.mark.quality
def test_cmd_sweep_writes_json_and_markdown(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("checks the CPU tiny-profile default")
    out_json, out_md = tmp_path / "sweep.json", tmp_path / "sweep.md"
    args = _parser().parse_args(
        [
            "sweep",
            "--steps",
            "2",
            "--guidance",
            "1,2",
            "--teacher-steps",
            "3",
            "--json",
            str(out_json),
            "--markdown",
            str(out_md),
        ]
    )
    assert args.func(args) == 0
    data = json.loads(out_json.read_text())
    _check(data, (2,), (1, 2))
    assert data["teacher"]["steps"] == 3 and data["student"]["config"]["height"] == 32  # tiny profile
    captured = capsys.readouterr()
    assert "| steps | guidance |" in captured.out and "| steps | guidance |" in out_md.read_text()
    assert "[1/2]" in captured.err and "[2/2]" in captured.err  # progress on stderr


def test_cmd_sweep_rejects_a_teacher_as_student(capsys):
    assert cli.main(["sweep", "--model", "wan2.1-t2v-1.3b", "--steps", "2", "--guidance", "1"]) == 2
    assert "not a CausVid student" in capsys.readouterr().err
