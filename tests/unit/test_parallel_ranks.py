"""A parallel run's parts that need no second process: diffusers' CPU device-count division (and the
suite's work-around), rank 0's one result from every rank's figures, and the one line for a run
whose workers did not finish."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import torch
import torch.distributed as dist
from diffusers import ContextParallelConfig, WanTransformer3DModel
from fake_results import cpu_result

from causvid_perf.config import RunConfig
from causvid_perf.errors import ConfigError, ExitCode, ParallelRunError
from causvid_perf.experiments.parallel_launch import LOG, failure, torchrun_command
from causvid_perf.experiments.parallel_worker import RANK_ERROR, error_file
from causvid_perf.measure.ranks import backend_for, cpu_device_count_workaround, merged_result, rank_figures
from causvid_perf.measure.stages import case_on_pipeline
from causvid_perf.pipeline.loading import LoadedPipeline
from causvid_perf.records.result import SCHEMA_PATH
from causvid_perf.specs import transformer_config


@pytest.fixture
def one_rank_group():
    """torch.distributed on this process alone (gloo, world size 1), as diffusers needs it."""
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    yield
    dist.destroy_process_group()


@pytest.mark.skipif(torch.accelerator.is_available(), reason="the division by zero happens only without an accelerator")
def test_diffusers_still_divides_by_the_device_count_on_a_cpu(one_rank_group):
    """The day this fails, diffusers no longer needs measure/ranks.py's cpu_device_count_workaround:
    remove it (and this test)."""
    model = WanTransformer3DModel(**transformer_config("1.3b", tiny=True))
    with pytest.raises(ZeroDivisionError):
        model._resolve_parallel_config(ContextParallelConfig(ulysses_degree=2))
    # With the work-around the device is found; what fails next is the mesh of 2 ranks on a world of 1.
    with cpu_device_count_workaround("cpu"), pytest.raises(Exception) as caught:
        model._resolve_parallel_config(ContextParallelConfig(ulysses_degree=2))
    assert not isinstance(caught.value, ZeroDivisionError)
    assert torch.accelerator.device_count() == 0  # put back after the block


def test_the_work_around_is_applied_on_a_cpu_only():
    count = torch.accelerator.device_count
    with cpu_device_count_workaround("cpu"):
        assert torch.accelerator.device_count() == 1
    with cpu_device_count_workaround("cuda:0"):
        assert torch.accelerator.device_count is count
    assert torch.accelerator.device_count is count
    assert backend_for("cpu") == "gloo" and backend_for("cuda:1") == "nccl"


def test_rank_zero_keeps_every_rank_and_takes_the_slowest_rank_time():
    fast = cpu_result([0.1, 0.1], 0.2, 1.0, vram=2.0)
    slow = cpu_result([0.3, 0.3], 0.6, 1.5, vram=1.0)
    ranks = [rank_figures(fast, 0), rank_figures(slow, 1)]
    merged = merged_result(fast, ranks, spec="ulysses=2", backend="gloo")
    assert merged.parallel is not None and merged.parallel["slowest_rank"] == 1
    assert [r["rank"] for r in merged.parallel["ranks"]] == [0, 1]
    assert merged.metrics.prompt_to_output_s == 1.5 and merged.metrics.step_s == [0.3, 0.3]
    assert merged.metrics.peak_vram_allocated_gib == 2.0  # the highest rank's peak
    assert all(r["peak_host_gib"] > 0 for r in merged.parallel["ranks"])
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))["properties"]["parallel"]
    jsonschema.validate(merged.to_dict()["parallel"], schema)  # the result's schema takes it


def test_a_worker_error_keeps_its_exit_code(tmp_path: Path):
    RANK_ERROR.write(
        error_file(tmp_path, 1), RANK_ERROR.stamp({"message": "CUDA out of memory in stage 'sampling'", "exit_code": 4})
    )
    error = failure(tmp_path, "ulysses=2", 2, 1)
    assert error.exit_code == ExitCode.OUT_OF_MEMORY
    assert str(error) == "parallel run ulysses=2, rank 1: CUDA out of memory in stage 'sampling'"


TORCHRUN_LOG = """\
Traceback (most recent call last):
RuntimeError: Connection closed by peer
torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
============================================================
Root Cause (first observed failure):
[0]:
  time      : 2026-12-05_06:25:09
  host      : box
  rank      : 1 (local_rank: 1)
  exitcode  : {code} (pid: 4872)
"""


@pytest.mark.parametrize(
    "code, says",
    [(-9, "worker rank 1 was killed by SIGKILL;"), (3, "worker rank 1 exited with code 3 (last error: RuntimeError:")],
)
def test_a_dead_worker_is_one_line_naming_its_rank(tmp_path: Path, code: int, says: str):
    (tmp_path / LOG).write_text(TORCHRUN_LOG.format(code=code), encoding="utf-8")
    error = failure(tmp_path, "ulysses=2", 2, 1)
    assert isinstance(error, ParallelRunError) and error.exit_code == ExitCode.PARALLEL
    assert says in str(error) and "nothing was written" in str(error) and "\n" not in str(error)


def test_without_a_log_the_line_says_torchrun_failed(tmp_path: Path):
    assert "torchrun exited with code 1 before rank 0 wrote the result" in str(failure(tmp_path, "ring=2", 2, 1))
    command = torchrun_command(2, tmp_path)
    assert command[1:4] == ["-m", "torch.distributed.run", "--standalone"] and "--nproc-per-node=2" in command


def test_a_parallel_config_outside_torchrun_is_refused_before_it_runs():
    config = RunConfig.from_profile("tiny", device="cpu", parallel="ulysses=2").resolve("cpu")
    loaded = LoadedPipeline(pipe=None, config=config, load_s=0.0)
    with pytest.raises(ConfigError, match="a parallel run runs on torchrun's workers"):
        case_on_pipeline(loaded, None)
    assert (
        case_on_pipeline(LoadedPipeline(pipe=None, config=config.on_one_process(), load_s=0.0), None).parallel is None
    )
