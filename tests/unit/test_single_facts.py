"""Facts the language cannot keep in one place by itself: each has one owner, and these tests fail
when a second copy appears or a derived copy drifts (issue 20: sampler names, weight sources, a
case's label, schema versions)."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
from diffusers import SchedulerMixin

from causvid_perf import fmt, specs
from causvid_perf.config import RunConfig
from causvid_perf.judge.baselines import baseline_key, case_context
from causvid_perf.pipeline import samplers
from causvid_perf.records.case import CaseRecord

PACKAGE = Path(__file__).resolve().parents[2] / "causvid_perf"
SOURCES = sorted(PACKAGE.rglob("*.py"))


def _relative(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


def _string_literals(node: ast.AST) -> set[str]:
    """The strings a tuple, list or set literal holds, or a dict literal's string keys."""
    items = node.keys if isinstance(node, ast.Dict) else getattr(node, "elts", [])
    return {item.value for item in items if isinstance(item, ast.Constant) and isinstance(item.value, str)}


def _literals_holding(names: tuple[str, ...]) -> list[str]:
    """Where in the package a collection literal holds every one of `names` ('module.py:line')."""
    found = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Tuple | ast.List | ast.Set | ast.Dict) and set(names) <= _string_literals(node):
                found.append(f"{_relative(path)}:{node.lineno}")
    return found


# --- sampler names: specs.SAMPLERS owns them, the registry is built from it ------------------------


def test_the_sampler_registry_follows_specs_names_in_order():
    assert tuple(samplers.SAMPLERS) == specs.SAMPLERS


def test_every_sampler_name_has_a_builder_and_every_builder_a_name():
    assert set(samplers.SAMPLER_BUILDERS) == set(specs.SAMPLERS)


@pytest.mark.parametrize("name", specs.SAMPLERS)
def test_every_named_sampler_builds_a_scheduler(name):
    config = RunConfig(model="causvid-1.3b", sampler=name).resolve("cpu")
    assert isinstance(samplers.build_scheduler(config), SchedulerMixin)


def test_sampler_names_are_listed_only_in_specs_and_the_builders():
    expected = {f"specs.py:{_line_of('specs.py', 'SAMPLERS = (')}", _builders_line()}
    assert sorted(_literals_holding(specs.SAMPLERS)) == sorted(expected)


def _line_of(module: str, text: str) -> int:
    lines = (PACKAGE / module).read_text().splitlines()
    return next(number for number, line in enumerate(lines, start=1) if line.startswith(text))


def _builders_line() -> str:
    return f"pipeline/samplers.py:{_line_of('pipeline/samplers.py', 'SAMPLER_BUILDERS')}"


# --- weight sources: specs owns them ---------------------------------------------------------------


def test_weight_sources_are_the_resolved_ones_and_auto():
    assert specs.RESOLVED_WEIGHT_SOURCES == ("tiny", "synthetic", "pretrained")
    assert specs.WEIGHT_SOURCES == ("tiny", "synthetic", "pretrained", "auto")


def test_weight_sources_are_listed_only_in_specs():
    assert _literals_holding(specs.RESOLVED_WEIGHT_SOURCES) == [
        f"specs.py:{_line_of('specs.py', 'RESOLVED_WEIGHT_SOURCES = (')}"
    ]


def test_the_baselines_schema_allows_the_resolved_weight_sources():
    schema = json.loads((PACKAGE / "judge/schemas/baselines.schema.json").read_text())
    enums = [node["enum"] for node in _json_nodes(schema) if set(node.get("enum", ())) & {"synthetic"}]
    assert enums == [list(specs.RESOLVED_WEIGHT_SOURCES)]


def _json_nodes(value):
    if isinstance(value, dict):
        yield value
        for child in value.values():
            yield from _json_nodes(child)
    elif isinstance(value, list):
        for child in value:
            yield from _json_nodes(child)


# --- a case's label: fmt.case_label owns its text ------------------------------------------------------


def test_the_case_label_text():
    assert fmt.case_label("causvid-14b", 832, 480, 81, 6, 1.0) == "causvid-14b 832x480x81 6 steps cfg 1"
    assert fmt.case_label("wan2.1-t2v-1.3b", 64, 64, 17, 50, 5) == "wan2.1-t2v-1.3b 64x64x17 50 steps cfg 5"
    assert fmt.case_label("wan2.1-t2v-1.3b", 64, 64, 17, 50, 3.5) == "wan2.1-t2v-1.3b 64x64x17 50 steps cfg 3.5"
    assert fmt.case_label(None, 64, 64, 17, 6, None) == "? 64x64x17 6 steps cfg ?"
    assert fmt.case_label("causvid-1.3b", 64, 64, 17) == "causvid-1.3b 64x64x17"


def test_config_record_and_baseline_key_label_a_case_alike():
    config = RunConfig(model="causvid-1.3b", width=64, height=64, frames=17, weights="tiny").resolve("cpu")
    record = CaseRecord(id="perf[x]", config=config.to_dict())
    key = baseline_key(config, "CPU")
    label = "causvid-1.3b 64x64x17 6 steps cfg 1"
    assert config.describe() == label
    assert record.describe() == label
    assert case_context(key) == label
    assert record.describe() == CaseRecord(id="perf[x]", key=key).describe() == label


def test_no_module_but_fmt_writes_a_guidance_label():
    pattern = re.compile(r"""f["'][^"']*\bcfg \{""")
    writers = [_relative(path) for path in SOURCES if pattern.search(path.read_text())]
    assert writers == ["fmt.py"]


# --- schema versions: one constant per format ----------------------------------------------------------


def _module_constants(path: Path) -> dict[str, object]:
    constants: dict[str, object] = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    constants[target.id] = node.value.value
    return constants


def _formats() -> dict[str, list[tuple[str, dict[str, int]]]]:
    """Each format id ('causvid-perf/...') -> the modules that name it, each with its version constants."""
    found: dict[str, list[tuple[str, dict[str, int]]]] = {}
    for path in SOURCES:
        constants = _module_constants(path)
        versions = {
            name: value
            for name, value in constants.items()
            if name.endswith("VERSION") and isinstance(value, int) and not isinstance(value, bool)
        }
        for value in constants.values():
            if isinstance(value, str) and value.startswith("causvid-perf/"):
                found.setdefault(value, []).append((_relative(path), versions))
    return found


def test_each_format_is_named_once_with_exactly_one_version_constant():
    formats = _formats()
    assert len(formats) >= 10  # every format the package writes (a scan that finds none proves nothing)
    for schema_id, owners in formats.items():
        assert len(owners) == 1, f"{schema_id} is named in {[module for module, _ in owners]}"
        module, versions = owners[0]
        assert len(versions) == 1, f"{schema_id} ({module}) has version constants {versions}"


def test_no_version_constant_lives_apart_from_its_format():
    owners = {module for found in _formats().values() for module, _ in found}
    for path in SOURCES:
        versions = [
            name
            for name, value in _module_constants(path).items()
            if name.endswith("VERSION") and isinstance(value, int) and not isinstance(value, bool)
        ]
        assert not versions or _relative(path) in owners, f"{_relative(path)} holds {versions} but names no format"


def test_no_source_writes_a_format_version_as_a_number():
    pattern = re.compile(r"""["']version["']: \d""")
    assert [_relative(path) for path in SOURCES if pattern.search(path.read_text())] == []


@pytest.mark.parametrize(
    ("schema_file", "module"),
    [
        ("records/schemas/run_result.schema.json", "records/result.py"),
        ("judge/schemas/baselines.schema.json", "judge/baselines_file.py"),
    ],
)
def test_a_json_schema_holds_its_modules_version(schema_file, module):
    schema = json.loads((PACKAGE / schema_file).read_text())
    assert schema["properties"]["version"]["const"] == _module_constants(PACKAGE / module)["SCHEMA_VERSION"]
