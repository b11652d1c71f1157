"""SIGTERM (a cancelled CI job) and SIGINT (Ctrl-C) in the middle of a pytest session or a CLI run:
the finished cases are written, the session is marked incomplete and never becomes a reference,
what the case in progress left is removed, and the exit code is the documented one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from causvid_perf.cli import main as cli
from causvid_perf.errors import ExitCode
from causvid_perf.records.history import SESSION, Session, load_runs, load_session
from causvid_perf.records.lookup import find_run
from causvid_perf.report.build import build_report

ROOT = Path(__file__).resolve().parents[2]
RUNS = ["-p", "no:cacheprovider", "--rounds", "1", "--warmup-rounds", "0", "--baselines", "none.json"]

# Case "a" finishes (it skips: no baseline); case "b" hangs while its contact sheet is being written,
# after its frames were saved and with the sheet's temp file open: the signal arrives then.
TWO_CASES = """
import os
import time
from pathlib import Path

from causvid_perf import files
from causvid_perf.config import RunConfig
from causvid_perf.plugin.cases import PerfCase
from causvid_perf.quality import media


def _hang(rows, path, **kwargs):
    def write(handle):
        handle.write(b"half a png")
        Path(os.environ["MARKER"]).write_text("b is writing its sheet")
        time.sleep(120)

    files.atomic_write(path, write, binary=True)


def _case(name, steps):
    return PerfCase(name, RunConfig(model="causvid-1.3b", weights="tiny", height=32, width=32, frames=9, steps=steps))


def test_a(perf):
    perf.check(_case("a", 2))


def test_b(perf, monkeypatch):
    monkeypatch.setattr(media, "save_contact_sheet", _hang)
    perf.check(_case("b", 3))
"""


def _env(marker: Path) -> dict[str, str]:
    env = dict(
        os.environ, MARKER=str(marker), PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("PYTEST_XDIST_WORKER", None)
    return env


def _default_sigint() -> None:
    """In the child: Ctrl-C's default action even when this test runs as a background job, whose
    shell ignores SIGINT (Python then installs no KeyboardInterrupt handler)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _signal_when(marker: Path, argv: list[str], cwd: Path, signum: int) -> tuple[int, str]:
    """Starts argv, sends signum once the marker file exists; the exit status and the output."""
    process = subprocess.Popen(
        argv,
        cwd=cwd,
        env=_env(marker),
        preexec_fn=_default_sigint,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 240
    while not marker.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            out, _ = process.communicate()
            pytest.fail(f"the run ended or hung before the signal (status {process.returncode}):\n{out}")
        time.sleep(0.1)
    process.send_signal(signum)
    out, _ = process.communicate(timeout=120)
    return process.returncode, out


@pytest.mark.parametrize(
    ("signum", "name", "code"),
    [(signal.SIGTERM, "SIGTERM", ExitCode.TERMINATED), (signal.SIGINT, "SIGINT", ExitCode.INTERRUPTED)],
)
def test_a_signal_mid_session_keeps_the_finished_case_marks_the_session_incomplete_and_cleans_up(
    tmp_path, signum, name, code, capsys
):
    (tmp_path / "test_two.py").write_text(TWO_CASES)
    history, marker = tmp_path / "h", tmp_path / "marker"
    argv = [sys.executable, "-m", "pytest", "test_two.py", *RUNS, "--history-dir", str(history)]
    status, out = _signal_when(marker, argv, tmp_path, signum)
    assert status == code, out  # 143 for SIGTERM, 130 for SIGINT: the documented codes
    assert f"interrupted by {name}: 1 finished case(s) kept, the session marked incomplete" in out
    assert "1 partial output(s) removed" in out
    assert "Traceback" not in out

    sessions = list(history.glob("*.json"))
    assert len(sessions) == 1, out
    data = json.loads(sessions[0].read_text())
    assert data["version"] == SESSION.version == 4
    assert data["incomplete"] == f"interrupted by {name} after 1 finished case(s)"
    assert [case["id"] for case in data["cases"]] == ["a"]  # the finished case, whole
    assert data["cases"][0]["median"]["sampling_s"] > 0

    # what the finished case saved is kept; b's frames and the sheet's temp file are gone
    kept = sorted(p.name for p in (history / "outputs").rglob("*") if p.is_file())
    assert kept == ["a.npz", "a.sheet.png"]
    assert not [p for p in tmp_path.rglob(".*") if p.is_file()]

    # never a reference: not "latest", shown as incomplete by `history list`
    run = load_runs(history)[0]
    assert not run.fit and run.why_unfit().startswith(f"incomplete: interrupted by {name}")
    target = find_run("latest", history)
    assert target.run is None and target.skipped[0].incomplete
    capsys.readouterr()
    assert cli.main(["history", "--history", str(history), "list"]) == ExitCode.OK
    assert f"unfit: incomplete: interrupted by {name} after 1 finished case(s)" in capsys.readouterr().out
    _, md = build_report(history, out_dir=tmp_path / "report")
    assert f"no: incomplete: interrupted by {name} after 1 finished case(s)" in md.read_text()


CLI_HANG = """
import os, sys, time
from pathlib import Path
from causvid_perf import files
from causvid_perf.cli import main as cli

real_fsync = files.os.fsync

def hang(fd):
    Path(os.environ["MARKER"]).write_text("writing the json")
    time.sleep(120)

files.os.fsync = hang
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, ExitCode.TERMINATED), (signal.SIGINT, 130)])
def test_a_signal_mid_cli_run_exits_with_its_code_in_one_line_and_leaves_no_temp_file(tmp_path, signum, code):
    script, marker, out_json = tmp_path / "hang.py", tmp_path / "marker", tmp_path / "out" / "run.json"
    script.write_text(CLI_HANG)
    argv = ["run", "--weights", "tiny", "--frames", "9", "--height", "32", "--width", "32", "--device", "cpu"]
    status, out = _signal_when(
        marker, [sys.executable, str(script), *argv, "--quiet", "--json", str(out_json)], tmp_path, signum
    )
    assert status == code, out
    name = signal.Signals(signum).name
    assert out.strip().splitlines()[-1] == f"interrupted by {name}; stopped, temp files removed (exit {int(code)})"
    assert "Traceback" not in out
    assert not out_json.exists() and not list(out_json.parent.iterdir())  # the temp file went with the signal


def test_older_sessions_load_as_complete_and_newer_fields_round_trip(tmp_path):
    old = {"schema": "causvid-perf/session", "version": 3, "created": "2026-11-24T08:06:31+00:00", "commit": "abc"}
    path = tmp_path / "old.json"
    path.write_text(json.dumps({**old, "worker": "main", "run_id": "r1", "machine": {}, "cases": []}))
    assert load_session(path).incomplete == ""
    session = Session("2026-11-24T08:06:31+00:00", "abc", "main", "r2", {}, incomplete="interrupted by SIGINT")
    assert Session.from_dict(session.to_dict()).incomplete == "interrupted by SIGINT"
