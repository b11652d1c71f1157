"""A truncated or corrupt safetensors file in --model-dir (the transformer's or the LoRA's) is one line
naming the file and exit 2, found before diffusers loads anything and before any measuring; the file
is left as it was. The checkpoints are tiny ones the test saves (as tests/unit/test_pretrained_loading.py
does), then truncates."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from diffusers import WanPipeline

from causvid_perf.cli import main as cli
from causvid_perf.config import RunConfig
from causvid_perf.errors import ExitCode, WeightsFileError
from causvid_perf.pipeline import loading
from causvid_perf.pipeline.lora import make_kijai_lora, save_kijai_lora
from causvid_perf.pipeline.weights_check import check_safetensors
from causvid_perf.specs import MODELS, transformer_config

pytest_plugins = ["pytester"]
STUDENT = MODELS["causvid-1.3b"]
BASE_FOLDER = STUDENT.base_repo.split("/")[-1]
LORA_FILE = STUDENT.lora_files[0]
TRANSFORMER_FILE = Path(BASE_FOLDER) / "transformer" / "diffusion_pytorch_model.safetensors"
SIZE = ["--frames", "9", "--height", "32", "--width", "32", "--device", "cpu"]


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    source = loading.load_pipeline(
        RunConfig(model="wan2.1-t2v-1.3b", weights="tiny", height=32, width=32, frames=9, device="cpu").resolve()
    ).pipe
    source.save_pretrained(root / BASE_FOLDER)
    save_kijai_lora(make_kijai_lora(transformer_config("1.3b", tiny=True), seed=5, scale=0.3), root / LORA_FILE)
    return root


@pytest.fixture
def no_hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(loading, "_from_hf_cache", lambda *a, **k: None)
    monkeypatch.delenv(loading.MODELS_DIR_ENV, raising=False)


def truncated_copy(saved: Path, target: Path, which: Path) -> tuple[Path, bytes]:
    """A copy of the saved models with `which` cut to half its size: (its path, its bytes)."""
    shutil.copytree(saved, target)
    path = target / which
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path, path.read_bytes()


@pytest.mark.parametrize("which", [TRANSFORMER_FILE, Path(LORA_FILE)], ids=["transformer", "lora"])
def test_a_truncated_weights_file_is_one_line_naming_it_and_exit_2_before_anything_loads(
    saved, which, tmp_path, monkeypatch, capsys, no_hf_cache
):
    path, before = truncated_copy(saved, tmp_path / "models", which)
    loads: list[Any] = []
    real = WanPipeline.from_pretrained.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(
        WanPipeline, "from_pretrained", classmethod(lambda cls, *a, **k: loads.append(a) or real(cls, *a, **k))
    )
    capsys.readouterr()
    code = cli.main(["run", "--weights", "pretrained", "--model-dir", str(tmp_path / "models"), *SIZE])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("loading ")]
    assert code == ExitCode.USAGE == 2
    assert lines == [
        f"error: weights file {path} is damaged or truncated (incomplete metadata, file not fully covered); "
        "download it again or remove it from --model-dir"
    ], err
    assert "Traceback" not in err and not loads  # diffusers never saw it; nothing was measured
    assert path.read_bytes() == before  # the file is left as it was


def test_a_whole_file_passes_and_garbage_or_an_empty_file_is_named(saved, tmp_path):
    check_safetensors(saved / TRANSFORMER_FILE)  # the untouched file
    for content, reason in [(b"", "header too small"), (b"not a safetensors file" * 10, "header too large")]:
        bad = tmp_path / "bad.safetensors"
        bad.write_bytes(content)
        with pytest.raises(WeightsFileError, match=f"weights file {bad} is damaged or truncated \\({reason}\\)"):
            check_safetensors(bad)


def test_pytest_stops_at_session_start_with_one_line(saved, tmp_path, pytester, no_hf_cache):
    path, before = truncated_copy(saved, tmp_path / "models", Path(LORA_FILE))
    pytester.makepyfile(test_never="def test_never():\n    raise AssertionError('a case ran')\n")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--model-dir", str(tmp_path / "models"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.startswith("ERROR:")]
    assert errors == [
        f"ERROR: --model-dir {tmp_path / 'models'}: weights file {path} is damaged or truncated "
        "(incomplete metadata, file not fully covered); download it again or remove it from --model-dir"
    ]
    assert "a case ran" not in result.stdout.str() and path.read_bytes() == before
