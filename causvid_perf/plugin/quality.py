"""Second pytest plugin (entry point `causvid_perf_quality`): output-quality fixtures.

Options: --update-references, --references-dir, --ms-ssim-threshold.
Fixtures: `tiny_pipelines` (session cache of the tiny CausVid and Wan 2.1 pipelines),
`reference_check` (compare an output with its stored reference: fail / skip-when-missing / record),
`save_artifacts` (mp4 + contact sheet for people, listed in the report and the terminal summary).

Fixtures read options with defaults, so a test module may also import them directly
(``from causvid_perf.plugin.quality import tiny_pipelines``) when the plugin is not installed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from causvid_perf import files
from causvid_perf.config import RunConfig
from causvid_perf.pipeline.loading import load_pipeline
from causvid_perf.quality import media as video
from causvid_perf.quality.references import (
    DEFAULT_THRESHOLD,
    ReferenceCheck,
    check_against_reference,
    make_provenance,
    reference_path,
    save_reference,
)

TINY_MODELS = ("causvid-1.3b", "wan2.1-t2v-1.3b")
TINY_SIZE = {"height": 32, "width": 32, "frames": 9}
_ARTIFACTS_KEY = pytest.StashKey[list]()
_RECORDED_KEY = pytest.StashKey[list]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("causvid-perf-quality", "causvid-perf output quality")
    group.addoption(
        "--update-references",
        action="store_true",
        help="record the outputs of reference_check tests as the new references",
    )
    group.addoption("--references-dir", default=None, help="reference videos folder (default <rootdir>/references)")
    group.addoption(
        "--ms-ssim-threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        help=f"minimum mean MS-SSIM against a reference video, and against the previous run's "
        f"output under --compare-to (default {DEFAULT_THRESHOLD})",
    )


def option_value(config: pytest.Config, name: str, default: Any) -> Any:
    """The option's value, or `default` when it is unset or its plugin is not loaded (0 stays 0)."""
    value = config.getoption(name, default=default)
    return default if value is None else value


def references_dir(config: pytest.Config) -> Path:
    value = option_value(config, "--references-dir", None)
    return Path(value) if value else Path(config.rootpath) / "references"


def artifacts_dir(config: pytest.Config) -> Path:
    return Path(config.rootpath) / ".benchmarks" / "artifacts"


class TinyPipelines:
    """Dict-like, lazily filled: ``tiny_pipelines["causvid-1.3b"]`` loads once per session."""

    def __init__(self, models: tuple[str, ...] = TINY_MODELS, **size: int):
        self.models = models
        self.size: dict[str, Any] = {**TINY_SIZE, **size}
        self._loaded: dict[str, Any] = {}

    def __getitem__(self, model: str) -> Any:
        if model not in self.models:
            raise KeyError(f"{model!r} is not a tiny test model; choose one of: {', '.join(self.models)}")
        if model not in self._loaded:
            self._loaded[model] = load_pipeline(RunConfig(model=model, weights="tiny", **self.size).resolve())
        return self._loaded[model]

    def __contains__(self, model: object) -> bool:
        return model in self.models

    def __iter__(self) -> Iterator[str]:
        return iter(self.models)

    def __len__(self) -> int:
        return len(self.models)

    def keys(self) -> tuple[str, ...]:
        return self.models

    def items(self) -> list[tuple[str, Any]]:
        return [(model, self[model]) for model in self.models]

    def loaded(self) -> list[str]:
        return list(self._loaded)


@pytest.fixture(scope="session")
def tiny_pipelines() -> Iterator[TinyPipelines]:
    cache = TinyPipelines()
    yield cache
    cache._loaded.clear()


def _stash_list(config: pytest.Config, key: pytest.StashKey[list]) -> list:
    if key not in config.stash:
        config.stash[key] = []
    return config.stash[key]


@pytest.fixture
def reference_check(request: pytest.FixtureRequest) -> Callable[..., ReferenceCheck]:
    """``reference_check(case_id, frames, gpu_class="cpu", provenance=None) -> ReferenceCheck``.

    With --update-references the frames are recorded and the check then runs against them (a pass).
    Otherwise a "fail" fails the test with its one-line message and a "missing" skips it.
    """
    config = request.config
    root = references_dir(config)
    threshold = float(option_value(config, "--ms-ssim-threshold", DEFAULT_THRESHOLD))
    update = bool(option_value(config, "--update-references", False))

    def check(
        case_id: str, frames: np.ndarray, gpu_class: str = "cpu", provenance: dict[str, Any] | None = None
    ) -> ReferenceCheck:
        path = reference_path(root, gpu_class, case_id)
        if update:
            save_reference(path, frames, provenance if provenance is not None else make_provenance())
            _stash_list(config, _RECORDED_KEY).append(str(path))
        result = check_against_reference(frames, path, threshold)
        request.node.user_properties.append(("reference", result.to_dict()))
        if result.state == "fail":
            pytest.fail(f"reference {case_id} [{gpu_class}]: {result.message}", pytrace=False)
        if result.state == "missing":
            pytest.skip(f"no reference for {case_id} on {gpu_class} at {path}; record with --update-references")
        return result

    return check


def write_artifacts(
    out_dir: Path, case_id: str, student_frames: np.ndarray, teacher_frames: np.ndarray | None = None
) -> dict[str, Path]:
    """mp4 of the student (and teacher) and a contact sheet student / teacher / |difference|."""
    slug = files.slug(case_id)
    paths = {"student_mp4": video.save_mp4(student_frames, out_dir / f"{slug}.student.mp4")}
    rows: dict[str, np.ndarray] = {"student": student_frames}
    if teacher_frames is not None:
        paths["teacher_mp4"] = video.save_mp4(teacher_frames, out_dir / f"{slug}.teacher.mp4")
        rows["teacher"] = teacher_frames
        rows["|difference|"] = video.abs_difference(student_frames, teacher_frames)
    paths["contact_sheet"] = video.save_contact_sheet(rows, out_dir / f"{slug}.sheet.png")
    return {name: Path(path) for name, path in paths.items()}


@pytest.fixture
def save_artifacts(request: pytest.FixtureRequest) -> Callable[..., dict[str, Path]]:
    """``save_artifacts(case_id, student_frames, teacher_frames=None) -> {name: Path}`` under
    <rootdir>/.benchmarks/artifacts/, listed in user_properties and the terminal summary."""
    out_dir = artifacts_dir(request.config)

    def save(case_id: str, student_frames: np.ndarray, teacher_frames: np.ndarray | None = None) -> dict[str, Path]:
        paths = write_artifacts(out_dir, case_id, student_frames, teacher_frames)
        request.node.user_properties.append(("artifacts", {name: str(p) for name, p in paths.items()}))
        return paths

    return save


class _ArtifactLog:
    """Collects artifact paths from test reports (on the xdist controller too) for the summary."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, dict[str, str]]] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call":
            return
        for name, value in report.user_properties:
            if name == "artifacts" and isinstance(value, dict):
                self.entries.append((report.nodeid, value))


_LOG_KEY = pytest.StashKey[_ArtifactLog]()


def pytest_configure(config: pytest.Config) -> None:
    threshold = option_value(config, "--ms-ssim-threshold", DEFAULT_THRESHOLD)
    if not (math.isfinite(threshold) and 0 < threshold <= 1):
        raise pytest.UsageError(f"--ms-ssim-threshold {threshold:g}: give a number in (0, 1], e.g. 0.95")
    log = _ArtifactLog()
    config.stash[_LOG_KEY] = log
    config.pluginmanager.register(log, "causvid-perf-quality-artifacts")


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    recorded = config.stash.get(_RECORDED_KEY, [])
    log = config.stash.get(_LOG_KEY, None)
    entries = log.entries if log is not None else []
    if not entries and not recorded:
        return
    tr = terminalreporter
    tr.section("causvid-perf quality")
    for path in recorded:
        tr.write_line(f"reference recorded: {path}")
    for nodeid, paths in entries:
        tr.write_line(f"artifacts of {nodeid}:")
        for name, path in paths.items():
            tr.write_line(f"  {name}: {path}")
