"""The experiments' defaults that the command line shows in its help. This module imports nothing,
so the CLI's parsers (and `causvid-perf --help`) load no torch; the experiments import them from here."""

from __future__ import annotations

# The sequential A/B design's budget, in rounds per side (experiments/ab_sequential.py).
DEFAULT_MIN_ROUNDS = 4
DEFAULT_MAX_ROUNDS = 64

# Seconds a revision's worker may take to answer one request (experiments/revisions.py): a
# pretrained 14B load takes minutes.
DEFAULT_TIMEOUT_S = 900.0
# The revision worker's protocol version (experiments/worker.py serves it, worker_client.py checks it).
WORKER_PROTOCOL = 1
# Seconds the workers of a parallel run (`run --parallel`, experiments/parallel_launch.py) may take,
# from torchrun's start to rank 0's result: every rank loads the model, warms up and runs once.
DEFAULT_PARALLEL_TIMEOUT_S = 1800.0

# The sweep's grid of student steps and guidance scales (experiments/sweep.py).
DEFAULT_STEPS = (2, 4, 6, 8)
DEFAULT_GUIDANCES = (1.0, 2.0, 3.0)

# compare --design: the A/B designs by name, the first the default without --rounds. The classes
# behind them (experiments/ab_fixed.Fixed, ab_sequential.Sequential) carry the same names in their
# `name`; cli/compare_cmd.DESIGNS maps one to the other and a test holds the two equal.
DESIGN_NAMES = ("sequential", "fixed")
