"""`causvid-perf --help` stays fast: the parsers import no torch, diffusers, matplotlib or numpy, and each
subcommand's run module is loaded by name (cli.options.Command) only when it runs."""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from causvid_perf.cli.main import SUBCOMMANDS, build_parser
from causvid_perf.cli.options import Command

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "diffusers", "transformers", "matplotlib", "scipy", "numpy", "jsonschema")

# In a fresh interpreter: build the whole parser, print every subcommand's help, and list which
# heavy packages got imported on the way.
PROBE = """
import contextlib, io, json, sys
from causvid_perf.cli.main import build_parser, main
parser = build_parser()
names = sorted(parser._subparsers._group_actions[0].choices)
codes = {}
for argv in [["--help"]] + [[name, "--help"] for name in names]:
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            main(argv)
        except SystemExit as exc:
            codes[" ".join(argv)] = exc.code
print(json.dumps({"codes": codes, "loaded": sorted(m for m in %r if m in sys.modules)}))
"""


def _probe() -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROBE % (HEAVY,)], cwd=REPO, capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_help_of_every_subcommand_imports_no_torch():
    result = _probe()
    assert result["loaded"] == [], f"--help imported {result['loaded']}"
    assert len(result["codes"]) == len(SUBCOMMANDS) + 1 and set(result["codes"].values()) == {0}, result["codes"]


def _commands(parser: argparse.ArgumentParser):
    """Every Command the parser tree sets as `func`, with the subcommand path that sets it."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                func = child.get_default("func")
                if func is not None:
                    yield name, func
                for sub_name, sub_func in _commands(child):
                    yield f"{name} {sub_name}", sub_func


def test_every_subcommand_names_a_run_function_that_exists():
    found = dict(_commands(build_parser()))
    assert {"run", "stream", "overhead", "bench", "compare", "bisect", "gate-study", "sweep", "report"} <= set(found)
    assert {"history list", "history show", "history label", "history prune"} <= set(found)
    for name, func in found.items():
        assert isinstance(func, Command), f"{name}: {func!r} is imported with the parser, not by name"
        module, _, attr = func.target.partition(":")
        assert callable(getattr(importlib.import_module(module), attr)), name


def test_a_command_loads_its_module_only_when_called(tmp_path):
    # a module written at test time: importing the parser must not run it, calling the Command must
    (tmp_path / "lazy_probe_cmd.py").write_text("CALLS = []\ndef cmd(args):\n    CALLS.append(args.x)\n    return 7\n")
    sys.path.insert(0, str(tmp_path))
    try:
        command = Command("lazy_probe_cmd:cmd")
        assert "lazy_probe_cmd" not in sys.modules
        assert command(argparse.Namespace(x=3)) == 7
        assert sys.modules["lazy_probe_cmd"].CALLS == [3]
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("lazy_probe_cmd", None)


@pytest.mark.parametrize("bad", ["causvid_perf.cli.run_cmd:no_such_function"])
def test_a_wrong_target_fails_loudly(bad):
    with pytest.raises(AttributeError):
        Command(bad)(argparse.Namespace())
