"""Every command shown in README.md and docs/*.md is real.

The fenced ```bash blocks are read line by line (a trailing `\\` joins the next line; leading
`NAME=value` assignments are set aside). A line is a command when it starts with `causvid-perf`,
`pytest` (or `.venv/bin/python -m pytest`), `make` or `scripts/`:

- `causvid-perf ...` parses with the real parser (`causvid_perf.cli.main.build_parser`). Unless it
  ends with `# needs a GPU`, it also runs in-process through `causvid_perf.cli.main.main` in a
  temporary folder and must exit 0; `compare` may exit 1 or 5 as well, since a measured regression
  or an inconclusive answer is an outcome of the command, not a failure of it. The folder holds copies of baselines.json and of the
  history, pytest-benchmark files and sweep in tests/fixtures/, as a checkout has after
  `make test`. A GPU is hidden from these runs, so they show what a CPU user sees.
- `pytest ...` parses with this session's pytest parser, whose plugins are the suite's: an unknown
  option or a bad value fails, and every path must exist. The GPU lines run in CI (gpu.yml).
- `make ...` names targets of the Makefile; `ARGS` parse as options of what the target runs.
- `scripts/...` exists, is executable and passes `bash -n`.

Any other line in a bash block must start with one of a few shell tools (cp, diff, git, pip), so
no command escapes these checks. Relative links between the pages must point at files and headings
that exist.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from causvid_perf.cli.main import build_parser, main

REPO = Path(__file__).resolve().parents[2]
DOC_FILES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FIXTURES = REPO / "tests" / "fixtures" / "main-92ab273"
SHELL_BLOCKS = {"bash", "sh", "shell", "console"}
OTHER_TOOLS = {"cp", "diff", "git", "pip"}
GPU_MARK = re.compile(r"#\s*needs a GPU\s*$")
# A command too costly to run here (a parallel run starts torchrun's worker processes) names the test
# that runs it as written: `# runs in tests/faults/test_parallel_workers.py`.
RUNS_IN = re.compile(r"#\s*runs in (tests/\S+\.py)\s*$")
# Program prefixes, longest first, and the kind of command they start.
PROGRAMS = (
    (("python", "-m", "causvid_perf.cli"), "causvid-perf"),
    ((".venv/bin/python", "-m", "pytest"), "pytest"),
    (("python", "-m", "pytest"), "pytest"),
    ((".venv/bin/causvid-perf",), "causvid-perf"),
    (("causvid-perf",), "causvid-perf"),
    (("pytest",), "pytest"),
    (("make",), "make"),
)
# Exit codes a documented CPU example may end with; 1 and 5 are compare's verdicts "regression" and
# "inconclusive" (the sequential design ran out of rounds on a noisy machine).
ALLOWED_EXIT = {"compare": {0, 1, 5}}


@dataclass(frozen=True)
class Command:
    source: str  # "docs/usage.md:42"
    text: str  # the line as written, continuations joined
    kind: str  # causvid-perf, pytest, make, script or other
    argv: tuple[str, ...]  # the words after the program (for a script: its path first)
    gpu: bool


def fenced_lines(text: str) -> Iterator[tuple[int, str, str]]:
    """(line number, the block's info string, logical line) for each line inside a fenced block."""
    fence, info, pending, start = None, "", "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if fence is None:
            opening = re.match(r"(`{3,}|~{3,})\s*([\w+-]*)", stripped)
            if opening:
                fence, info = opening.group(1), opening.group(2).lower()
            continue
        if stripped.startswith(fence) and not stripped.strip(fence[0]):
            fence, pending = None, ""
            continue
        pending, start = (f"{pending} {stripped}", start) if pending else (stripped, number)
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip()
            continue
        if pending:
            yield start, info, pending
        pending = ""


def parse_line(source: str, line: str) -> Command | None:
    """The command a shell line shows, or None for a comment."""
    words = shlex.split(line, comments=True)
    while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
        words.pop(0)  # NAME=value before the program
    if not words:
        return None
    gpu = bool(GPU_MARK.search(line))
    for prefix, kind in PROGRAMS:
        if tuple(words[: len(prefix)]) == prefix:
            return Command(source, line, kind, tuple(words[len(prefix) :]), gpu)
    if words[0] == "bash" and len(words) > 1 and words[1].startswith("scripts/"):
        words.pop(0)
    kind = "script" if words[0].startswith("scripts/") else "other"
    return Command(source, line, kind, tuple(words), gpu)


def commands_in(text: str, name: str) -> list[Command]:
    found = []
    for number, info, line in fenced_lines(text):
        if info in SHELL_BLOCKS:
            command = parse_line(f"{name}:{number}", line)
            if command is not None:
                found.append(command)
    return found


COMMANDS = [c for path in DOC_FILES for c in commands_in(path.read_text(encoding="utf-8"), path.name)]


def _ids(commands: list[Command]) -> list[str]:
    return [c.source for c in commands]


# -- the checks, as functions that return what is wrong --------------------------------------------


def cli_parse_problem(argv: tuple[str, ...]) -> str | None:
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            build_parser().parse_args(list(argv))
    except SystemExit as exc:
        lines = err.getvalue().strip().splitlines()
        return lines[-1] if lines else f"argparse exited {exc.code}"
    return None


def pytest_problems(argv: tuple[str, ...], config: pytest.Config) -> list[str]:
    parser = config._parser  # pytest.Parser, with every plugin's options registered
    try:
        namespace, unknown = parser.parse_known_and_unknown_args(list(argv))
    except pytest.UsageError as exc:
        return [str(exc).splitlines()[1] if len(str(exc).splitlines()) > 1 else str(exc)]
    problems = [f"unknown pytest option {flag}" for flag in unknown]
    for target in getattr(namespace, "file_or_dir", None) or []:
        path = target.split("::")[0]
        if not (REPO / path).exists():
            problems.append(f"no such test path {path}")
    return problems


def makefile_targets() -> dict[str, list[str]]:
    """target -> its recipe lines."""
    targets: dict[str, list[str]] = {}
    current = None
    for line in (REPO / "Makefile").read_text(encoding="utf-8").splitlines():
        rule = re.match(r"([A-Za-z0-9_.-]+)\s*:(?!=)", line)
        if rule:
            current = targets.setdefault(rule.group(1), [])
        elif line.startswith("\t") and current is not None:
            current.append(line.strip())
        elif not line.strip():
            current = None
    return targets


def make_problems(argv: tuple[str, ...], config: pytest.Config) -> list[str]:
    targets = makefile_targets()
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    names = [w for w in argv if "=" not in w]
    settings = dict(w.split("=", 1) for w in argv if "=" in w)
    problems = [f"no make target {name!r}" for name in names if name not in targets]
    problems += [f"the Makefile does not use {var}" for var in settings if f"$({var})" not in makefile]
    if not names:
        problems.append("make with no target: name the target")
    for name in names:
        for recipe in targets.get(name, []):
            if "$(ARGS)" not in recipe or "ARGS" not in settings:
                continue
            args = tuple(shlex.split(settings["ARGS"]))
            head = recipe.split("$(ARGS)")[0]
            if "causvid-perf " in head:
                problem = cli_parse_problem(tuple(head.split("causvid-perf ", 1)[1].split()) + args)
                problems += [f"make {name} ARGS: {problem}"] if problem else []
            elif "-m pytest" in head:
                problems += [f"make {name} ARGS: {p}" for p in pytest_problems(args, config)]
    return problems


def script_problems(argv: tuple[str, ...]) -> list[str]:
    path = REPO / argv[0]
    if not path.is_file():
        return [f"no script {argv[0]}"]
    problems = [] if os.access(path, os.X_OK) else [f"{argv[0]} is not executable"]
    checked = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, timeout=30)
    if checked.returncode != 0:
        problems.append(f"bash -n {argv[0]}: {checked.stderr.strip()}")
    return problems


def static_problems(command: Command, config: pytest.Config) -> list[str]:
    if command.kind == "causvid-perf":
        problem = cli_parse_problem(command.argv)
        return [problem] if problem else []
    if command.kind == "pytest":
        return pytest_problems(command.argv, config)
    if command.kind == "make":
        return make_problems(command.argv, config)
    if command.kind == "script":
        return script_problems(command.argv)
    if command.argv[0] in OTHER_TOOLS:
        return []
    return [
        f"{command.argv[0]!r} is not a command these docs may show unchecked ({', '.join(sorted(OTHER_TOOLS))}); "
        "show causvid-perf, pytest, make or scripts/ commands"
    ]


def run_cli(argv: tuple[str, ...], workdir: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    """Runs `causvid-perf ARGV` in-process in workdir with no GPU visible: (exit code, stderr)."""
    monkeypatch.chdir(workdir)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for name in ("CAUSVID_PERF_HISTORY", "CAUSVID_PERF_MODELS"):
        monkeypatch.delenv(name, raising=False)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(list(argv))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
    return code, err.getvalue()


# -- the tests -------------------------------------------------------------------------------------


def test_the_docs_show_commands():
    kinds = {c.kind for c in COMMANDS}
    assert {"causvid-perf", "pytest", "make", "script"} <= kinds, kinds
    readme = [c for c in COMMANDS if c.source.startswith("README.md")]
    assert {"causvid-perf", "pytest", "make"} <= {c.kind for c in readme}
    assert sum(not c.gpu for c in COMMANDS if c.kind == "causvid-perf") >= 10


@pytest.mark.parametrize("command", COMMANDS, ids=_ids(COMMANDS))
def test_command_is_real(command: Command, request: pytest.FixtureRequest):
    problems = static_problems(command, request.config)
    assert not problems, f"{command.source}: `{command.text}`: " + "; ".join(problems)


# Each distinct CPU example once, in the order the docs show them.
_RUNNABLE = list(
    {
        c.argv: c for c in reversed(COMMANDS) if c.kind == "causvid-perf" and not c.gpu and not RUNS_IN.search(c.text)
    }.values()
)[::-1]
_RUN_ELSEWHERE = [c for c in COMMANDS if RUNS_IN.search(c.text)]


@pytest.mark.parametrize("command", _RUN_ELSEWHERE, ids=_ids(_RUN_ELSEWHERE))
def test_a_command_run_elsewhere_is_run_there_as_written(command: Command):
    match = RUNS_IN.search(command.text)
    assert match is not None
    test_file = REPO / match.group(1)
    assert test_file.is_file(), f"{command.source}: no {match.group(1)}"
    assert command.source.split(":")[0] in test_file.read_text(encoding="utf-8"), (
        f"{match.group(1)} does not read its command from {command.source.split(':')[0]}"
    )


DEMO_SCRIPT, DEMO_REPO = "scripts/make_revisions_demo.sh", "causvid-perf-demo"
DEMO_SLOW_STEP_S = 0.03  # an effect many times the noise of a step, whatever the machine's speed


@pytest.fixture(scope="module")
def docs_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder like a checkout after `make test`: baselines, a history, pytest-benchmark files, a
    sweep, and the demo repository docs/revisions.md makes."""
    workdir = tmp_path_factory.mktemp("docs-workdir")
    shutil.copy(REPO / "baselines.json", workdir / "baselines.json")
    shutil.copytree(FIXTURES / "hist", workdir / ".benchmarks" / "causvid-perf")
    shutil.copytree(FIXTURES / "pytest-benchmark", workdir / ".benchmarks" / "pytest-benchmark")
    shutil.copy(FIXTURES / "sweep.json", workdir / "sweep.json")
    (workdir / "causvid-perf-out").mkdir()  # where the docs' sweep writes it, for the report to read
    shutil.copy(FIXTURES / "sweep.json", workdir / "causvid-perf-out" / "sweep.json")
    # docs/revisions.md's demo repository, made as the page makes it but with a slow commit that
    # sleeps DEMO_SLOW_STEP_S per step instead of the default 3 ms: on a loaded 2-core machine a tiny
    # step takes 10-20 ms, and 3 ms more left the page's bisect unsure that --bad is slower (exit 2)
    subprocess.run(
        [str(REPO / DEMO_SCRIPT), DEMO_REPO, str(DEMO_SLOW_STEP_S)],
        cwd=workdir,
        check=True,
        capture_output=True,
        timeout=120,
    )
    return workdir


@pytest.mark.parametrize("command", _RUNNABLE, ids=_ids(_RUNNABLE))
def test_cpu_example_runs(command: Command, docs_workdir: Path, monkeypatch: pytest.MonkeyPatch):
    code, err = run_cli(command.argv, docs_workdir, monkeypatch)
    allowed = ALLOWED_EXIT.get(command.argv[0], {0})
    assert code in allowed, (
        f"{command.source}: `{command.text}` exited {code} on CPU; mark it "
        f"`# needs a GPU` if it needs one:\n{err[-3000:]}"
    )


_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    text = re.sub(r"[^\w\s-]", "", heading.strip().lower())
    return re.sub(r"\s", "-", text)


def _anchors(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    return {_slug(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", text, re.MULTILINE)}


def link_problems(path: Path) -> list[str]:
    problems = []
    for target in _LINK.findall(path.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):
            continue  # http:, https:, mailto:
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            problems.append(f"{path.name}: link to missing {target}")
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            problems.append(f"{path.name}: no heading #{anchor} in {linked.name}")
    return problems


@pytest.mark.parametrize("path", DOC_FILES, ids=[p.name for p in DOC_FILES])
def test_links_resolve(path: Path):
    assert not link_problems(path)


def test_readme_links_every_docs_page_and_stays_short():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for page in DOC_FILES[1:]:
        assert f"](docs/{page.name})" in readme, f"README.md does not link docs/{page.name}"
    assert len(readme.encode()) <= 6500, "README.md is the front door: keep it near 6 KB, move detail to docs/"


def test_the_layout_page_names_every_module_and_script():
    layout = (REPO / "docs" / "layout.md").read_text(encoding="utf-8")
    modules = [p for p in (REPO / "causvid_perf").rglob("*.py") if p.name not in ("__init__.py", "__main__.py")]
    missing = [str(p.relative_to(REPO)) for p in modules if f"`{p.name}`" not in layout]
    missing += [f"scripts/{p.name}" for p in (REPO / "scripts").iterdir() if p.name not in layout]
    assert not missing, f"docs/layout.md does not say what these are: {', '.join(sorted(missing))}"


# -- the checks can fail ---------------------------------------------------------------------------

BAD_DOC = """
```bash
causvid-perf compare --slowdwn-b 1.05
causvid-perf run --weights synthetic
pytest -m h100 --require-gpus
pytest --weights synthetc tests/perf
pytest tests/nowhere
make benhc
make bench ARGS="--familly 1.3b"
scripts/gpu_evidnce.sh
rm -rf build
```
"""


def test_the_checks_catch_mistakes(
    request: pytest.FixtureRequest, docs_workdir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    bad = commands_in(BAD_DOC, "bad.md")
    problems = {c.text: static_problems(c, request.config) for c in bad}
    expected = {
        "causvid-perf compare --slowdwn-b 1.05": "unrecognized arguments: --slowdwn-b",
        "pytest -m h100 --require-gpus": "unknown pytest option --require-gpus",
        "pytest --weights synthetc tests/perf": "invalid choice: 'synthetc'",
        "pytest tests/nowhere": "no such test path tests/nowhere",
        "make benhc": "no make target 'benhc'",
        'make bench ARGS="--familly 1.3b"': "unrecognized arguments: --familly",
        "scripts/gpu_evidnce.sh": "no script scripts/gpu_evidnce.sh",
        "rm -rf build": "'rm' is not a command",
    }
    for line, fragment in expected.items():
        assert any(fragment in p for p in problems[line]), (line, problems[line])
    # A GPU-only line that is not marked parses, but fails when run on CPU.
    assert problems["causvid-perf run --weights synthetic"] == []
    code, err = run_cli(("run", "--weights", "synthetic"), docs_workdir, monkeypatch)
    assert code == 2 and "need a CUDA GPU" in err
    # Marked lines are recognised, continuations joined.
    (marked,) = commands_in("```bash\ncausvid-perf bench \\\n  --family 14b   # needs a GPU\n```\n", "m.md")
    assert marked.gpu and marked.argv == ("bench", "--family", "14b")
    # A broken link is found.
    page = tmp_path / "page.md"
    page.write_text("[a](missing.md) [b](#nowhere)\n# Here\n", encoding="utf-8")
    assert len(link_problems(page)) == 2
