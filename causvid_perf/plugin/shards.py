"""`--shard K/N`: this session runs the K-th of N shares of the selected cases, so N machines of one
GPU class share a suite (the fleet's matrix, .github/workflows/gpu.yml). Cases are dealt round-robin
in the order of their ids, sorted, so every machine deals the same hands; the others are deselected."""

from __future__ import annotations

import re

import pytest

OPTION = "--shard"
_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """'2/3' -> (2, 3); None for no sharding; pytest.UsageError in one line for anything else."""
    if text is None:
        return None
    match = _SPEC.match(text)
    index, count = (int(match.group(1)), int(match.group(2))) if match else (0, 0)
    if not 1 <= index <= count:
        raise pytest.UsageError(f"{OPTION} {text!r}: give K/N with 1 <= K <= N, e.g. {OPTION} 1/2")
    return index, count


def in_shard(node_ids: list[str], index: int, count: int) -> set[str]:
    """The ids of shard `index` of `count`: every count-th id in sorted order, from the index-th."""
    return {node_id for position, node_id in enumerate(sorted(node_ids)) if position % count == index - 1}


def deselect_other_shards(config: pytest.Config, items: list[pytest.Item]) -> None:
    shard = parse_shard(config.getoption("shard", None))
    if shard is None:
        return
    kept = in_shard([item.nodeid for item in items], *shard)
    others = [item for item in items if item.nodeid not in kept]
    if others:
        config.hook.pytest_deselected(items=others)
        items[:] = [item for item in items if item.nodeid in kept]
