"""Settings no recipe allows are refused in one line before anything loads: steps above the models'
limit (specs.MAX_STEPS), an empty prompt. A prompt longer than the text encoder reads gets a printed
notice that it will be cut. $CAUSVID_PERF_HISTORY naming a file is refused at session start, as
--history-dir is."""

from __future__ import annotations

import pytest

from causvid_perf.cli import main as cli
from causvid_perf.config import RunConfig
from causvid_perf.errors import ConfigError, ExitCode
from causvid_perf.pipeline import loading
from causvid_perf.records.history import HISTORY_DIR_ENV
from causvid_perf.specs import MAX_STEPS, MODELS, TEXT_TOKENS

pytest_plugins = ["pytester"]
TINY = ["--weights", "tiny", "--frames", "9", "--height", "32", "--width", "32", "--device", "cpu"]
CASE = """
from causvid_perf.plugin.cases import PerfCase
from causvid_perf.config import RunConfig

def test_tiny(perf):
    perf.check(PerfCase("tiny", RunConfig(model="causvid-1.3b", weights="tiny", height=32, width=32, frames=9)))
"""


@pytest.fixture
def no_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(loading, "build_components", never)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--steps", "1000000"],
            f"error: steps 1000000 is more than causvid-1.3b allows ({MAX_STEPS}; its recipe runs "
            f"{MODELS['causvid-1.3b'].default_steps}); give --steps between 1 and {MAX_STEPS}",
        ),
        (
            ["--prompt", "   "],
            "error: the prompt is empty; give --prompt TEXT, or leave it out for the default "
            "('A red fox runs through fresh snow in a birch forest, golden morning light, cinematic')",
        ),
    ],
    ids=["steps", "empty prompt"],
)
def test_a_setting_no_recipe_allows_is_one_line_and_exit_2_before_loading(argv, message, no_loading, tmp_path, capsys):
    out = tmp_path / "run.json"
    assert cli.main(["run", *TINY, *argv, "--json", str(out)]) == ExitCode.USAGE
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err == [message]
    assert not out.exists()


def test_the_limit_is_every_models_and_the_teachers_full_recipe_fits():
    assert MAX_STEPS == 100 and all(spec.max_steps == MAX_STEPS for spec in MODELS.values())
    RunConfig(model="wan2.1-t2v-14b", steps=50).validate()
    RunConfig(model="causvid-1.3b", steps=MAX_STEPS, device="cpu").validate()
    with pytest.raises(ConfigError, match="steps 101 is more than"):
        RunConfig(model="causvid-1.3b", steps=MAX_STEPS + 1, device="cpu").validate()


def test_a_prompt_over_the_token_limit_is_run_with_a_notice_that_it_is_cut(tmp_path, capsys):
    long_prompt = " ".join(["a fox in the snow,"] * 130)  # 780 tokens: 5 words and a comma, 130 times
    out = tmp_path / "run.json"
    assert cli.main(["run", *TINY, "--prompt", long_prompt, "--json", str(out), "--quiet"]) == ExitCode.OK
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if line.startswith("note: the prompt")]
    assert notes == [
        f"note: the prompt has at least 780 tokens (words and punctuation); the text encoder reads "
        f"{TEXT_TOKENS}, so it will be cut and the rest has no effect"
    ]
    assert out.is_file()
    assert RunConfig(prompt="a fox in the snow").prompt_notice() is None


def test_a_history_variable_naming_a_file_stops_pytest_before_any_case(pytester, monkeypatch):
    pytester.makepyfile(test_tiny=CASE)
    not_a_folder = pytester.path / "history.txt"
    not_a_folder.write_text("notes\n")
    monkeypatch.setenv(HISTORY_DIR_ENV, str(not_a_folder))
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--baselines", "none.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert [line for line in result.stderr.lines if line.strip()] == [
        f"ERROR: ${HISTORY_DIR_ENV} {not_a_folder}: the folder {not_a_folder / 'session.json'} cannot be "
        f"created: {not_a_folder} is a file, not a folder"
    ]
    assert "test_tiny.py" not in result.stdout.str() and not_a_folder.read_text() == "notes\n"
