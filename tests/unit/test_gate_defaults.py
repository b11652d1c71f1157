"""The gate's defaults (tolerance, memory tolerance, alpha, the fixed design's rounds) are defined
once, in causvid_perf/judge/gate.py: no other module spells one as a default, and every option and
keyword default equals the gate's."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from causvid_perf.cli.main import build_parser
from causvid_perf.experiments import ab, bisect, gate_study, revisions
from causvid_perf.experiments.ab_fixed import Fixed
from causvid_perf.experiments.gate_study_result import StudyPlan
from causvid_perf.judge import gate, power, previous, sequential, stats
from causvid_perf.judge.gate import DEFAULT, FIXED_ROUNDS, Gate

PACKAGE = Path(__file__).resolve().parents[2] / "causvid_perf"
OWNER = PACKAGE / "judge" / "gate.py"
# Parameter, field and option names whose default is the gate's. Any literal default of the gate's
# values is flagged; a rounds literal only when it is the fixed design's (bench's --rounds 3 is another fact).
NAMES = {"threshold", "alpha", "memory_tolerance", "rounds", "rounds_default"}
OPTIONS = {"--threshold", "--alpha", "--memory-tolerance", "--rounds"}


def _number(node: ast.AST | None, name: str = "") -> bool:
    if not (isinstance(node, ast.Constant) and isinstance(node.value, (int, float))) or isinstance(node.value, bool):
        return False
    return node.value == FIXED_ROUNDS if "rounds" in name else True


def spelled_defaults(source: str) -> list[str]:
    """'line: name = value' for each gate default written as a literal in ``source``: a parameter's
    default, a class field's, or an argparse option's ``default=``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            positional = args.posonlyargs + args.args
            pairs = list(zip(positional[len(positional) - len(args.defaults) :], args.defaults, strict=True))
            pairs += [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is not None]
            found += [
                f"{d.lineno}: {a.arg} = {ast.unparse(d)}" for a, d in pairs if a.arg in NAMES and _number(d, a.arg)
            ]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if node.target.id in NAMES and _number(node.value, node.target.id):
                found.append(f"{node.lineno}: {node.target.id} = {ast.unparse(node.value)}")  # type: ignore[arg-type]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument":
            flags = {a.value for a in node.args if isinstance(a, ast.Constant)}
            for keyword in node.keywords:
                if keyword.arg == "default" and flags & OPTIONS and _number(keyword.value, " ".join(flags)):
                    found.append(f"{node.lineno}: {sorted(flags)[0]} default={ast.unparse(keyword.value)}")
    return found


def test_the_scan_finds_a_spelled_default():
    source = (
        "def f(x, threshold=0.03, *, alpha: float = 0.05): ...\n"
        "class C:\n    memory_tolerance: float = 0.05\n"
        "p.add_argument('--rounds', type=int, default=6)\n"
        "p.add_argument('--rounds', type=int, default=3)\n"
        "def g(threshold=DEFAULT.threshold, rounds=FIXED_ROUNDS): ...\n"
    )
    assert spelled_defaults(source) == [
        "1: threshold = 0.03",
        "1: alpha = 0.05",
        "3: memory_tolerance = 0.05",
        "4: --rounds default=6",
    ]


def test_no_module_but_the_gate_spells_a_gate_default():
    spelled = {
        str(path.relative_to(PACKAGE)): found
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != OWNER and (found := spelled_defaults(path.read_text(encoding="utf-8")))
    }
    assert spelled == {}, f"define these through causvid_perf.judge.gate (DEFAULT, FIXED_ROUNDS): {spelled}"
    assert spelled_defaults(OWNER.read_text(encoding="utf-8"))  # the owner does spell them


@pytest.mark.parametrize(
    "argv",
    [["compare"], ["compare", "--design", "fixed"], ["bisect", "--good", "HEAD~1"], ["gate-study"]],
    ids=lambda argv: " ".join(argv),
)
def test_option_defaults_are_the_gates(argv):
    args = build_parser().parse_args(argv)
    assert args.threshold == DEFAULT.threshold and args.alpha == DEFAULT.alpha
    if hasattr(args, "memory_tolerance"):
        assert args.memory_tolerance == DEFAULT.memory_tolerance
    if argv[0] == "bisect":
        assert args.rounds == FIXED_ROUNDS


def test_keyword_defaults_are_the_gates():
    functions = [
        gate_study.run_gate_study,
        stats.compare_samples,
        stats.minimum_rounds,
        sequential.judge_sequence,
        sequential.confidence_sequence,
        power.minimum_detectable_effect,
        power.rounds_needed,
        previous.judge,
    ]
    seen = set()
    for function in functions:
        for name, parameter in inspect.signature(function).parameters.items():
            if name in ("threshold", "alpha", "memory_tolerance"):
                assert parameter.default == getattr(DEFAULT, name), f"{function.__qualname__}({name})"
                seen.add(name)
    assert seen == {"threshold", "alpha"}
    assert Fixed().rounds == FIXED_ROUNDS
    for function in (ab.run_ab, bisect.bisect, revisions.compare_revisions):
        gate_default = inspect.signature(function).parameters.get("gate")
        assert gate_default is None or gate_default.default is DEFAULT, function.__qualname__
    assert inspect.signature(ab.run_ab).parameters["gate"].default is DEFAULT
    plan = StudyPlan()
    assert (plan.threshold, plan.alpha) == (DEFAULT.threshold, DEFAULT.alpha)


def test_the_gate_checks_its_values():
    assert Gate().checked() == DEFAULT
    assert DEFAULT.tolerance("peak_vram_gib") == DEFAULT.memory_tolerance
    assert DEFAULT.tolerance("s_per_it") == DEFAULT.threshold
    for bad, option in ((Gate(threshold=-0.1), "--threshold"), (Gate(alpha=1.0), "--alpha")):
        with pytest.raises(gate.ConfigError, match=f"^{option} "):
            bad.checked()
    with pytest.raises(gate.ConfigError, match="rounds must be an integer >= 2"):
        gate.check_rounds(1)
