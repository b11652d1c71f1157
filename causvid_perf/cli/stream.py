"""`causvid-perf stream`: run a streaming model chunk by chunk and print a line as each chunk lands.

After --warmup unmeasured runs (default 1), one measured run. Each line: the chunk, its latency (the
first: time to first frames, prompt encoding included) and the frames per second so far. Then the
run's table and the streaming summary: steady-state chunk time, FPS after the first chunk,
transformer calls, the KV cache (measured and analytic bytes) and whether chunk boundaries change
the picture more than the transitions inside chunks.
"""

from __future__ import annotations

from typing import Any

from causvid_perf.cli.options import Command, add_run_subcommand


def add_parser(sub: Any) -> None:
    stream = add_run_subcommand(sub, "stream", "run a streaming model and time each chunk as it lands", __doc__)
    group = stream.add_argument_group("streaming (unset: the model's recipe)")
    group.add_argument("--chunk-frames", type=int, help="latent frames per chunk (CausVid, Self-Forcing: 3)")
    group.add_argument("--timesteps", help="denoising steps of every chunk, e.g. 1000,750,500,250")
    group.add_argument("--window-frames", type=int, help="local attention window in latent frames (default: all)")
    group.add_argument("--sink-frames", type=int, help="first latent frames kept in the window (needs --window-frames)")
    stream.add_argument(
        "--warmup", type=int, default=1, help="unmeasured runs first, so one-off costs stay out (default 1)"
    )
    stream.add_argument("--json", help="write the RunResult JSON here")
    stream.add_argument("--mp4", help="save the video here")
    stream.add_argument("--quiet", action="store_true", help="no per-chunk lines")
    stream.set_defaults(func=Command("causvid_perf.cli.stream_cmd:cmd_stream"))
