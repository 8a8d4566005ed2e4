"""The benchmark's pipelines for forgeml: no-op steps, so that only orchestration counts."""

from __future__ import annotations

from typing import Any

import forgeml as fm


@fm.step
def increment(value: int) -> int:
    return value + 1


@fm.step
def total(values: list[int]) -> int:
    return sum(values)


@fm.pipeline
def chain(length: int, start: int) -> Any:
    """``length`` steps, each waiting for the one before."""
    value: Any = start
    for _ in range(length):
        value = increment(value)
    return value


@fm.pipeline
def fan(width: int, start: int) -> Any:
    """``width`` independent steps, then one that reads them all."""
    return total([increment(start + i) for i in range(width)])


def run(name: str, size: int, start: int) -> Any:
    pipeline = chain if name == "chain" else fan
    return pipeline(size, start).result
