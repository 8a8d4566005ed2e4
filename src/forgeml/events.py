"""Events that start pipelines: a new dataset version, a monitoring alert, a manual trigger.

Events are rows in the metadata store, appended and never changed. A scheduler reads
them after the cursor each event schedule keeps, so an event published while no
scheduler runs is still handled when one starts, and handled once.

Kinds and what ``subject`` names:

- ``dataset_version``: the dataset (published by ``Dataset.ingest`` for a new version);
- ``alert``: the alert rule that fired;
- ``manual``: the schedule to fire (``forgeml schedules trigger NAME``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from forgeml import backend, config
from forgeml.errors import InvalidArgumentError
from forgeml.store.schedules import Event

KINDS = ("dataset_version", "alert", "manual")


def publish(kind: str, subject: str, payload: dict[str, Any] | None = None) -> int:
    """Record an event; returns its id. ``payload`` must be JSON (a dict)."""
    if kind not in KINDS:
        raise InvalidArgumentError(f"event kind {kind!r}: expected one of {', '.join(KINDS)}")
    if not subject or len(subject) > 256:
        raise InvalidArgumentError(f"event subject {subject!r}: expected 1 to 256 characters")
    if payload is not None and not isinstance(payload, dict):
        raise InvalidArgumentError(f"event payload: expected a dict, got {type(payload).__name__}")
    return backend.events().add(kind, subject, payload, config.settings().user)


def since(event_id: int, kinds: Sequence[str] | None = None) -> list[Event]:
    """Events newer than ``event_id`` (0 for all), oldest first, at most 1000."""
    return backend.events().since(event_id, kinds)


__all__ = ["KINDS", "Event", "publish", "since"]
