"""Schedules from Python: run a pipeline on a clock, on events, or when asked.

``schedule("nightly", "flows:train", cron="0 2 * * *", timezone="Europe/Paris")``
stores the schedule; a running ``forgeml scheduler`` picks it up on its next pass.
Every schedule also fires on a manual event naming it (:func:`trigger`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from forgeml import backend, config, events
from forgeml.errors import InvalidArgumentError
from forgeml.pipelines.cron import Cron, Every, Schedule, next_fire
from forgeml.store.schedules import ScheduleRecord

_EVENT_KINDS = {"dataset": "dataset_version", "alert": "alert"}


def clock_of(record: ScheduleRecord) -> Schedule | None:
    """The schedule's clock (None for an event schedule)."""
    if record.cron is not None:
        return Cron.parse(record.cron, record.timezone)
    if record.interval_seconds is not None:
        return Every(record.interval_seconds)
    return None


def parse_on(text: str) -> tuple[str, str]:
    """``dataset:NAME`` or ``alert:NAME`` (NAME may be ``*``) as (event kind, subject)."""
    prefix, sep, subject = text.partition(":")
    if not sep or prefix not in _EVENT_KINDS or not subject:
        raise InvalidArgumentError(
            f"on {text!r}: expected dataset:NAME or alert:NAME (NAME may be '*')"
        )
    return _EVENT_KINDS[prefix], subject


def schedule(
    name: str,
    pipeline: str,
    *,
    cron: str | None = None,
    every: str | None = None,
    on: str | None = None,
    params: Mapping[str, Any] | None = None,
    timezone: str | None = None,
) -> ScheduleRecord:
    """Store a schedule running ``pipeline`` (``module:function``) with ``params``.

    Exactly one of ``cron`` ("0 2 * * *"), ``every`` ("15m") or ``on`` ("dataset:NAME",
    "alert:NAME"). The pipeline is imported now, so a typo fails here and not at 2 a.m.
    """
    from forgeml.pipelines.api import load_pipeline

    chosen = [k for k, v in (("cron", cron), ("every", every), ("on", on)) if v is not None]
    if len(chosen) != 1:
        raise InvalidArgumentError(
            f"schedule {name!r}: give exactly one of cron, every or on (got {chosen or 'none'})"
        )
    if not name or len(name) > 256 or name.strip() != name:
        raise InvalidArgumentError(f"schedule name {name!r}: expected 1 to 256 characters")
    if cron is None and timezone is not None and every is not None:
        raise InvalidArgumentError(f"schedule {name!r}: a time zone only applies to cron")
    sys.path.insert(0, str(Path.cwd()))  # as `forgeml pipelines run` does
    found = load_pipeline(pipeline)
    given = dict(params or {})
    if "event" in found.signature.parameters:
        given.setdefault("event", None)
    found.params(**given)  # unknown or missing parameters fail now
    clock: Schedule | None = None
    row: dict[str, Any] = {"name": name, "pipeline": pipeline, "params": dict(params or {})}
    row["timezone"] = timezone or "UTC"
    if cron is not None:
        clock = Cron.parse(cron, timezone)
        row["cron"] = clock.text
    elif every is not None:
        clock = Every.parse(every)
        row["interval_seconds"] = clock.seconds
    elif on is not None:
        row["event_kind"], row["event_subject"] = parse_on(on)
    row["next_fire_at"] = next_fire(clock, time.time()) if clock is not None else None
    row["last_event_id"] = backend.events().last_id()  # only events from now on
    row["enabled"] = True
    row["created_by"] = config.settings().user
    return backend.schedules().add(row)


def list_schedules() -> list[ScheduleRecord]:
    """Every schedule, by name."""
    return backend.schedules().list()


def get_schedule(name: str) -> ScheduleRecord:
    return backend.schedules().get(name)


def remove_schedule(name: str) -> None:
    """Delete a schedule; runs it already started are kept."""
    backend.schedules().remove(name)


def pause(name: str) -> None:
    """Stop firing ``name`` until resumed (manual triggers included)."""
    backend.schedules().set_enabled(name, False, None)


def resume(name: str) -> None:
    """Fire ``name`` again from its next slot on; the slots missed while paused are not run."""
    record = backend.schedules().get(name)
    clock = clock_of(record)
    following = next_fire(clock, time.time()) if clock is not None else None
    backend.schedules().set_enabled(name, True, following)


def trigger(name: str, payload: Mapping[str, Any] | None = None) -> int:
    """Ask the scheduler to run ``name`` now; returns the id of the manual event."""
    backend.schedules().get(name)  # a typo fails here, not silently in the scheduler
    return events.publish("manual", name, dict(payload) if payload is not None else None)


__all__ = [
    "clock_of",
    "get_schedule",
    "list_schedules",
    "parse_on",
    "pause",
    "remove_schedule",
    "resume",
    "schedule",
    "trigger",
]


# The names ``fm.pipelines`` exports (``resume`` there resumes a failed run).
pause_schedule = pause
resume_schedule = resume
