"""The same pipelines for Prefect 3: tasks cached on their inputs and source."""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.cache_policies import INPUTS, TASK_SOURCE

CACHED = INPUTS + TASK_SOURCE


@task(cache_policy=CACHED, persist_result=True)
def increment(value: int) -> int:
    return value + 1


@task(cache_policy=CACHED, persist_result=True)
def total(values: list[int]) -> int:
    return sum(values)


@flow
def chain(length: int, start: int) -> Any:
    value = start
    for _ in range(length):
        value = increment(value)
    return value


@flow
def fan(width: int, start: int) -> Any:
    futures = [increment.submit(start + i) for i in range(width)]
    return total.submit(futures).result()


def run(name: str, size: int, start: int) -> Any:
    return (chain if name == "chain" else fan)(size, start)
