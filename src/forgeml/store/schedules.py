"""Repositories for events and pipeline schedules.

Schedulers coordinate through these rows only: a firing is claimed by a compare-and-set
update of ``next_fire_at`` (or of the ``last_event_id`` cursor), so two schedulers, or
one restarted after a crash, never both claim the same slot or the same event.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, delete, func, select, update
from sqlalchemy.exc import IntegrityError

from forgeml.errors import AlreadyExistsError, NotFoundError
from forgeml.store import schema
from forgeml.store.database import Database


@dataclass(frozen=True)
class Event:
    """Something that happened, which event schedules may react to."""

    id: int
    kind: str
    subject: str
    payload: dict[str, Any] | None
    created_at: float
    created_by: str

    def as_param(self) -> dict[str, Any]:
        """What a pipeline with an ``event`` parameter receives."""
        return {"id": self.id, "kind": self.kind, "subject": self.subject, "payload": self.payload}


@dataclass(frozen=True)
class ScheduleRecord:
    """A stored schedule: what it runs, when (clock or event), and where it stands."""

    name: str
    pipeline: str
    params: dict[str, Any]
    cron: str | None
    interval_seconds: int | None
    timezone: str
    event_kind: str | None
    event_subject: str | None
    enabled: bool
    next_fire_at: float | None
    last_fired_at: float | None
    last_run_id: str | None
    last_event_id: int | None
    created_at: float
    updated_at: float
    created_by: str

    @property
    def on_event(self) -> bool:
        return self.event_kind is not None


class EventRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, kind: str, subject: str, payload: dict[str, Any] | None, user: str) -> int:
        """Append an event; returns its id (ids only grow)."""
        with self.db.write() as conn:
            result = conn.execute(
                schema.events.insert()
                .values(
                    kind=kind,
                    subject=subject,
                    payload=payload,
                    created_at=time.time(),
                    created_by=user,
                )
                .returning(schema.events.c.id)
            )
            return int(result.scalar_one())

    def since(
        self, event_id: int, kinds: Sequence[str] | None = None, limit: int = 1000
    ) -> list[Event]:
        """Events with an id above ``event_id``, oldest first."""
        events = schema.events
        query = select(events).where(events.c.id > event_id).order_by(events.c.id).limit(limit)
        if kinds is not None:
            query = query.where(events.c.kind.in_(list(kinds)))
        with self.db.read() as conn:
            return [_event(r) for r in conn.execute(query).all()]

    def last_id(self) -> int:
        """The newest event's id (0 when there is none): where a new schedule starts reading."""
        with self.db.read() as conn:
            found = conn.execute(select(func.max(schema.events.c.id))).scalar()
        return int(found or 0)


class ScheduleRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, row: dict[str, Any]) -> ScheduleRecord:
        """Insert a schedule; a name already taken raises AlreadyExistsError."""
        now = time.time()
        values = {"created_at": now, "updated_at": now, **row}
        try:
            with self.db.write() as conn:
                conn.execute(schema.pipeline_schedules.insert().values(**values))
        except IntegrityError as exc:
            raise AlreadyExistsError(f"a schedule named {row['name']!r} already exists") from exc
        return self.get(row["name"])

    def get(self, name: str) -> ScheduleRecord:
        table = schema.pipeline_schedules
        with self.db.read() as conn:
            row = conn.execute(select(table).where(table.c.name == name)).first()
        if row is None:
            raise NotFoundError(f"no schedule named {name!r}")
        return _schedule(row)

    def list(self, enabled_only: bool = False) -> list[ScheduleRecord]:
        table = schema.pipeline_schedules
        query = select(table).order_by(table.c.name)
        if enabled_only:
            query = query.where(table.c.enabled.is_(True))
        with self.db.read() as conn:
            return [_schedule(r) for r in conn.execute(query).all()]

    def remove(self, name: str) -> None:
        table = schema.pipeline_schedules
        with self.db.write() as conn:
            gone = conn.execute(delete(table).where(table.c.name == name)).rowcount
        if not gone:
            raise NotFoundError(f"no schedule named {name!r}")

    def set_enabled(self, name: str, enabled: bool, next_fire_at: float | None) -> None:
        """Pause or resume; resuming moves ``next_fire_at`` on so paused slots are not run."""
        table = schema.pipeline_schedules
        values: dict[str, Any] = {"enabled": enabled, "updated_at": time.time()}
        if enabled:
            values["next_fire_at"] = next_fire_at
        with self.db.write() as conn:
            changed = conn.execute(update(table).where(table.c.name == name).values(**values))
        if not changed.rowcount:
            raise NotFoundError(f"no schedule named {name!r}")

    def claim_slot(self, name: str, expected: float, following: float) -> bool:
        """Move ``next_fire_at`` from ``expected`` to ``following``; False if it had moved.

        The WHERE clause is the lock: of several schedulers that read the same slot,
        exactly one update matches, and only that one launches the run.
        """
        table = schema.pipeline_schedules
        with self.db.write() as conn:
            changed = conn.execute(
                update(table)
                .where(
                    table.c.name == name,
                    table.c.enabled.is_(True),
                    table.c.next_fire_at == expected,
                )
                .values(next_fire_at=following, last_fired_at=time.time(), updated_at=time.time())
            )
        return bool(changed.rowcount)

    def claim_event(self, name: str, expected: int | None, event_id: int) -> bool:
        """Move the event cursor from ``expected`` to ``event_id``; False if it had moved."""
        table = schema.pipeline_schedules
        cursor = (
            table.c.last_event_id.is_(None)
            if expected is None
            else table.c.last_event_id == expected
        )
        with self.db.write() as conn:
            changed = conn.execute(
                update(table)
                .where(table.c.name == name, table.c.enabled.is_(True), cursor)
                .values(last_event_id=event_id, last_fired_at=time.time(), updated_at=time.time())
            )
        return bool(changed.rowcount)

    def set_last_run(self, name: str, run_id: str) -> None:
        table = schema.pipeline_schedules
        with self.db.write() as conn:
            conn.execute(update(table).where(table.c.name == name).values(last_run_id=run_id))


def _event(row: Row[Any]) -> Event:
    return Event(
        id=int(row.id),
        kind=row.kind,
        subject=row.subject,
        payload=dict(row.payload) if row.payload is not None else None,
        created_at=float(row.created_at),
        created_by=row.created_by,
    )


def _schedule(row: Row[Any]) -> ScheduleRecord:
    return ScheduleRecord(
        name=row.name,
        pipeline=row.pipeline,
        params=dict(row.params or {}),
        cron=row.cron,
        interval_seconds=row.interval_seconds,
        timezone=row.timezone,
        event_kind=row.event_kind,
        event_subject=row.event_subject,
        enabled=bool(row.enabled),
        next_fire_at=row.next_fire_at,
        last_fired_at=row.last_fired_at,
        last_run_id=row.last_run_id,
        last_event_id=int(row.last_event_id) if row.last_event_id is not None else None,
        created_at=float(row.created_at),
        updated_at=float(row.updated_at),
        created_by=row.created_by,
    )
