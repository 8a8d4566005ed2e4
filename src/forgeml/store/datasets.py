"""Repository for the dataset aggregate: datasets, their versions, validation results.

A version is identified by the sha256 of its Parquet bytes: registering bytes a dataset
already has returns that version instead of making a new one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.exc import IntegrityError

from forgeml.errors import NotFoundError
from forgeml.store import schema
from forgeml.store.database import Database
from forgeml.store.records import DatasetSummary, DatasetVersionRecord, ValidationRecord

_RETRIES = 20


@dataclass(frozen=True)
class NewDatasetVersion:
    digest: str
    size: int
    row_count: int
    columns: list[dict[str, Any]]
    source: dict[str, Any]
    profile: dict[str, Any] | None
    run_id: str | None
    created_by: str


class DatasetRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def _dataset_id(self, conn: Connection, name: str) -> int:
        table = schema.datasets
        found = conn.execute(select(table.c.id).where(table.c.name == name)).scalar()
        if found is None:
            raise NotFoundError(f"no dataset named {name!r}")
        return int(found)

    def add_version(
        self, name: str, new: NewDatasetVersion, description: str | None = None
    ) -> tuple[DatasetVersionRecord, bool]:
        """The version holding ``new.digest``: existing (False) or newly numbered (True)."""
        versions = schema.dataset_versions
        for _attempt in range(_RETRIES):
            try:
                with self.db.write() as conn:
                    now = time.time()
                    self.db.upsert(
                        conn,
                        schema.datasets,
                        [
                            {
                                "name": name,
                                "description": description,
                                "created_at": now,
                                "updated_at": now,
                            }
                        ],
                        ["name"],
                        [],
                    )
                    dataset_id = self._dataset_id(conn, name)
                    existing = conn.execute(
                        select(versions.c.version).where(
                            versions.c.dataset_id == dataset_id, versions.c.digest == new.digest
                        )
                    ).scalar()
                    if existing is not None:
                        return self.get_version(name, int(existing), conn), False
                    number = (
                        conn.execute(
                            select(func.max(versions.c.version)).where(
                                versions.c.dataset_id == dataset_id
                            )
                        ).scalar()
                        or 0
                    ) + 1
                    conn.execute(
                        versions.insert().values(
                            dataset_id=dataset_id,
                            version=number,
                            digest=new.digest,
                            size=new.size,
                            row_count=new.row_count,
                            columns=new.columns,
                            source=new.source,
                            profile=new.profile,
                            run_id=new.run_id,
                            created_at=now,
                            created_by=new.created_by,
                        )
                    )
                    conn.execute(
                        schema.datasets.update()
                        .where(schema.datasets.c.id == dataset_id)
                        .values(updated_at=now)
                    )
                    return self.get_version(name, number, conn), True
            except IntegrityError as exc:
                # PostgreSQL: another writer took this number or digest at the same time.
                if "uq_dataset_versions" not in str(exc.orig):
                    raise
        raise RuntimeError(f"could not allocate a version of dataset {name!r}")

    def find_digest(self, name: str, digest: str) -> DatasetVersionRecord | None:
        """The version of ``name`` holding exactly these bytes, if there is one."""
        datasets, versions = schema.datasets, schema.dataset_versions
        with self.db.read() as conn:
            found = self._versions(
                conn,
                select(versions).where(
                    versions.c.digest == digest,
                    versions.c.dataset_id.in_(
                        select(datasets.c.id).where(datasets.c.name == name).scalar_subquery()
                    ),
                ),
            )
        return found[0] if found else None

    def _versions(self, conn: Connection, query: Any) -> list[DatasetVersionRecord]:
        datasets, versions = schema.datasets, schema.dataset_versions
        rows = conn.execute(
            query.add_columns(datasets.c.name.label("dataset_name")).join(
                datasets, datasets.c.id == versions.c.dataset_id
            )
        ).all()
        return [
            DatasetVersionRecord(
                id=r.id,
                name=r.dataset_name,
                version=int(r.version),
                digest=r.digest,
                size=int(r.size),
                row_count=int(r.row_count),
                columns=list(r.columns),
                source=dict(r.source),
                profile=r.profile,
                run_id=r.run_id,
                created_at=r.created_at,
                created_by=r.created_by,
            )
            for r in rows
        ]

    def get_version(
        self, name: str, version: int | None = None, conn: Connection | None = None
    ) -> DatasetVersionRecord:
        """A version by number, or the newest when ``version`` is None."""
        versions = schema.dataset_versions
        if conn is None:
            with self.db.read() as read_conn:
                return self.get_version(name, version, read_conn)
        dataset_id = self._dataset_id(conn, name)
        query = select(versions).where(versions.c.dataset_id == dataset_id)
        if version is None:
            query = query.order_by(versions.c.version.desc()).limit(1)
        else:
            query = query.where(versions.c.version == version)
        found = self._versions(conn, query)
        if not found:
            raise NotFoundError(
                f"dataset {name!r} has no version {version}"
                if version is not None
                else f"dataset {name!r} has no versions"
            )
        return found[0]

    def list_versions(self, name: str) -> list[DatasetVersionRecord]:
        versions = schema.dataset_versions
        with self.db.read() as conn:
            dataset_id = self._dataset_id(conn, name)
            return self._versions(
                conn,
                select(versions)
                .where(versions.c.dataset_id == dataset_id)
                .order_by(versions.c.version.desc()),
            )

    def list_datasets(self) -> list[DatasetSummary]:
        datasets, versions = schema.datasets, schema.dataset_versions
        query = (
            select(datasets, func.max(versions.c.version), func.count(versions.c.id))
            .outerjoin(versions, versions.c.dataset_id == datasets.c.id)
            .group_by(datasets.c.id)
            .order_by(datasets.c.name)
        )
        with self.db.read() as conn:
            rows = conn.execute(query).all()
        return [
            DatasetSummary(
                r.name,
                r.description,
                r.created_at,
                r.updated_at,
                None if r[5] is None else int(r[5]),
                int(r[6]),
            )
            for r in rows
        ]

    def set_profile(self, version_id: int, profile: dict[str, Any]) -> None:
        versions = schema.dataset_versions
        with self.db.write() as conn:
            conn.execute(
                versions.update().where(versions.c.id == version_id).values(profile=profile)
            )

    def add_validation(
        self,
        version: DatasetVersionRecord,
        suite: str,
        success: bool,
        errors: int,
        warnings: int,
        result: dict[str, Any],
        run_id: str | None,
        created_by: str,
    ) -> ValidationRecord:
        table = schema.validations
        now = time.time()
        with self.db.write() as conn:
            new_id = conn.execute(
                table.insert()
                .values(
                    dataset_version_id=version.id,
                    suite=suite,
                    success=success,
                    errors=errors,
                    warnings=warnings,
                    result=result,
                    run_id=run_id,
                    created_at=now,
                    created_by=created_by,
                )
                .returning(table.c.id)
            ).scalar_one()
        return ValidationRecord(
            int(new_id),
            version.name,
            version.version,
            suite,
            success,
            errors,
            warnings,
            result,
            run_id,
            now,
            created_by,
        )

    def list_validations(self, name: str, version: int | None = None) -> list[ValidationRecord]:
        table, versions = schema.validations, schema.dataset_versions
        with self.db.read() as conn:
            dataset_id = self._dataset_id(conn, name)
            query = (
                select(table, versions.c.version)
                .join(versions, versions.c.id == table.c.dataset_version_id)
                .where(versions.c.dataset_id == dataset_id)
                .order_by(table.c.created_at.desc(), table.c.id.desc())
            )
            if version is not None:
                query = query.where(versions.c.version == version)
            rows = conn.execute(query).all()
        return [
            ValidationRecord(
                int(r.id),
                name,
                int(r.version),
                r.suite,
                bool(r.success),
                r.errors,
                r.warnings,
                dict(r.result),
                r.run_id,
                r.created_at,
                r.created_by,
            )
            for r in rows
        ]
