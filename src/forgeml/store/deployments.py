"""Repositories for deployments and the index of prediction-log files.

Servers poll ``revisions()`` (one small query) and re-read a deployment only when its
revision moved. Every change goes through ``put``, whose optional ``expected_revision``
turns it into a compare-and-set: a rollout controller and a person editing the same
deployment never silently overwrite each other.
"""

from __future__ import annotations

import builtins
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, delete, insert, select, update

from forgeml.errors import ConflictError, NotFoundError
from forgeml.store import schema
from forgeml.store.database import Database


@dataclass(frozen=True)
class DeploymentRecord:
    name: str
    spec: dict[str, Any]
    revision: int
    created_at: float
    updated_at: float
    updated_by: str


@dataclass(frozen=True)
class PredictionLogFile:
    """One Parquet file of logged predictions and the request times it spans."""

    id: int
    deployment: str
    digest: str
    rows: int
    first_at: float
    last_at: float
    models: list[str]
    created_at: float


class DeploymentRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def put(
        self,
        name: str,
        spec: dict[str, Any],
        user: str,
        expected_revision: int | None = None,
    ) -> DeploymentRecord:
        """Create or replace a deployment; with ``expected_revision``, only from that one.

        ``expected_revision=0`` means "must not exist yet".
        """
        table = schema.deployments
        now = time.time()
        with self.db.write() as conn:
            current = conn.execute(
                select(table.c.revision).where(table.c.name == name)
            ).scalar_one_or_none()
            if expected_revision is not None and (current or 0) != expected_revision:
                raise ConflictError(
                    f"deployment {name!r} is at revision {current or 0}, not {expected_revision}: "
                    "it was changed meanwhile; read it again and retry"
                )
            if current is None:
                conn.execute(
                    insert(table).values(
                        name=name,
                        spec=spec,
                        revision=1,
                        created_at=now,
                        updated_at=now,
                        updated_by=user,
                    )
                )
            else:
                changed = conn.execute(
                    update(table)
                    .where(table.c.name == name, table.c.revision == current)
                    .values(spec=spec, revision=current + 1, updated_at=now, updated_by=user)
                )
                if not changed.rowcount:
                    raise ConflictError(f"deployment {name!r} was changed meanwhile; retry")
        return self.get(name)

    def get(self, name: str) -> DeploymentRecord:
        table = schema.deployments
        with self.db.read() as conn:
            row = conn.execute(select(table).where(table.c.name == name)).first()
        if row is None:
            raise NotFoundError(f"no deployment named {name!r}")
        return _deployment(row)

    def list(self) -> builtins.list[DeploymentRecord]:
        table = schema.deployments
        with self.db.read() as conn:
            return [_deployment(r) for r in conn.execute(select(table).order_by(table.c.name))]

    def revisions(self) -> dict[str, int]:
        """Every deployment's revision: the cheap question a polling server asks."""
        table = schema.deployments
        with self.db.read() as conn:
            rows = conn.execute(select(table.c.name, table.c.revision)).all()
        return {row.name: int(row.revision) for row in rows}

    def remove(self, name: str) -> None:
        table = schema.deployments
        with self.db.write() as conn:
            gone = conn.execute(delete(table).where(table.c.name == name)).rowcount
        if not gone:
            raise NotFoundError(f"no deployment named {name!r}")

    def add_log_file(
        self,
        deployment: str,
        digest: str,
        rows: int,
        first_at: float,
        last_at: float,
        models: builtins.list[str],
    ) -> int:
        table = schema.prediction_log_files
        with self.db.write() as conn:
            result = conn.execute(
                insert(table)
                .values(
                    deployment=deployment,
                    digest=digest,
                    rows=rows,
                    first_at=first_at,
                    last_at=last_at,
                    models=models,
                    created_at=time.time(),
                )
                .returning(table.c.id)
            )
            return int(result.scalar_one())

    def log_files(
        self, deployment: str, since: float | None = None, until: float | None = None
    ) -> builtins.list[PredictionLogFile]:
        """Files holding requests of ``deployment`` made in [since, until], oldest first."""
        table = schema.prediction_log_files
        query = select(table).where(table.c.deployment == deployment)
        if since is not None:
            query = query.where(table.c.last_at >= since)
        if until is not None:
            query = query.where(table.c.first_at <= until)
        with self.db.read() as conn:
            rows = conn.execute(query.order_by(table.c.first_at, table.c.id)).all()
        return [_log_file(r) for r in rows]


def _deployment(row: Row[Any]) -> DeploymentRecord:
    return DeploymentRecord(
        name=row.name,
        spec=dict(row.spec),
        revision=int(row.revision),
        created_at=float(row.created_at),
        updated_at=float(row.updated_at),
        updated_by=row.updated_by,
    )


def _log_file(row: Row[Any]) -> PredictionLogFile:
    return PredictionLogFile(
        id=int(row.id),
        deployment=row.deployment,
        digest=row.digest,
        rows=int(row.rows),
        first_at=float(row.first_at),
        last_at=float(row.last_at),
        models=list(row.models),
        created_at=float(row.created_at),
    )
