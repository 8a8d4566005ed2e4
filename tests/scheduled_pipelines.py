"""Pipelines the scheduler tests fire (the `forgeml pipelines run` children import them)."""

from __future__ import annotations

from typing import Any

import forgeml as fm


@fm.step(cache=False)
def echo(tag: str) -> str:
    return tag


@fm.pipeline
def ping(tag: str = "ping") -> Any:
    return echo(tag)


@fm.step(cache=False)
def describe(event: dict[str, Any] | None) -> str:
    if event is None:
        return "no event"
    return f"{event['kind']}:{event['subject']}:{event['id']}"


@fm.pipeline
def react(event: dict[str, Any] | None = None) -> Any:
    return describe(event)
