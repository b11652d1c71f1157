"""Facts the language cannot keep in one place by itself: each has one owner, and these tests fail
when a second copy appears or a derived copy drifts (issue 20: sampler names, weight sources, a
case's label, schema versions)."""

from __future__ import annotations

import ast
import functools
import json
import re
from pathlib import Path

import pytest
from diffusers import SchedulerMixin

from causvid_perf import fmt, specs
from causvid_perf.config import RunConfig
from causvid_perf.judge.baselines import baseline_key, case_context
from causvid_perf.judge.baselines_file import BASELINES
from causvid_perf.pipeline import samplers
from causvid_perf.records.case import CaseRecord
from causvid_perf.records.result import RESULT

PACKAGE = Path(__file__).resolve().parents[2] / "causvid_perf"
SOURCES = sorted(PACKAGE.rglob("*.py"))


@functools.cache
def _tree(path: Path) -> ast.Module:
    """A source's syntax tree, parsed once for all the scans of this file."""
    return ast.parse(path.read_text())


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
        for node in ast.walk(_tree(path)):
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


# --- schema versions: one Format per file kind (causvid_perf/formats.py) ---------------------------------


def _module_constants(path: Path) -> dict[str, object]:
    constants: dict[str, object] = {}
    for node in _tree(path).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    constants[target.id] = node.value.value
    return constants


def _format_calls() -> list[tuple[str, object, object]]:
    """Every `Format(...)` call in the package: (module, its schema argument, its version argument)."""
    found = []
    for path in SOURCES:
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Format":
                schema, version = (arg.value if isinstance(arg, ast.Constant) else arg for arg in node.args[:2])
                found.append((_relative(path), schema, version))
    return found


def test_each_format_is_defined_once_with_a_literal_schema_and_version():
    calls = _format_calls()
    assert len(calls) >= 11  # every format the package writes (a scan that finds none proves nothing)
    for module, schema, version in calls:
        assert isinstance(schema, str) and schema.startswith("causvid-perf/"), (module, schema)
        assert isinstance(version, int) and not isinstance(version, bool) and version >= 1, (module, schema)
    schemas = [schema for _, schema, _ in calls]
    assert sorted(schemas) == sorted(set(schemas)), "a schema id is given to two Formats"


def test_no_schema_id_or_version_constant_lives_apart_from_its_format():
    calls = _format_calls()
    schemas = {schema for _, schema, _ in calls}
    for path in SOURCES:
        constants = _module_constants(path)
        versions = [name for name, value in constants.items() if name.endswith("VERSION") and isinstance(value, int)]
        assert versions == [], f"{_relative(path)} holds {versions}: a version belongs in its Format"
        copies = [
            node.lineno for node in ast.walk(_tree(path)) if isinstance(node, ast.Constant) and node.value in schemas
        ]
        allowed = [schema for module, schema, _ in calls if module == _relative(path)]
        assert len(copies) == len(allowed), f"{_relative(path)} names a schema id outside its Format: lines {copies}"


def test_no_source_writes_a_format_version_as_a_number():
    pattern = re.compile(r"""["']version["']: \d""")
    assert [_relative(path) for path in SOURCES if pattern.search(path.read_text())] == []


@pytest.mark.parametrize(
    ("schema_file", "form"),
    [("records/schemas/run_result.schema.json", RESULT), ("judge/schemas/baselines.schema.json", BASELINES)],
)
def test_a_json_schema_holds_its_formats_version(schema_file, form):
    schema = json.loads((PACKAGE / schema_file).read_text())
    assert schema["properties"]["version"]["const"] == form.version
    assert schema["properties"]["schema"]["const"] == form.schema
