"""Repository for the feature-store aggregate: entities, feature views, materializations.

A feature view version is identified by the digest of its definition (transform code
hash included): applying an unchanged definition returns the version it already has.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Connection, and_, func, select
from sqlalchemy.exc import IntegrityError

from forgeml.errors import NotFoundError
from forgeml.store import schema
from forgeml.store.database import Database
from forgeml.store.records import FeatureViewVersionRecord, MaterializationRecord

_RETRIES = 20


class FeatureRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- entities -----------------------------------------------------------------------
    def put_entity(self, name: str, join_keys: list[str], description: str | None) -> None:
        now = time.time()
        with self.db.write() as conn:
            self.db.upsert(
                conn,
                schema.feature_entities,
                [
                    {
                        "name": name,
                        "join_keys": join_keys,
                        "description": description,
                        "created_at": now,
                        "updated_at": now,
                    }
                ],
                ["name"],
                ["join_keys", "description", "updated_at"],
            )

    # -- views --------------------------------------------------------------------------
    def add_version(
        self,
        name: str,
        kind: str,
        digest: str,
        definition: dict[str, Any],
        code_hash: str | None,
        created_by: str,
    ) -> tuple[FeatureViewVersionRecord, bool]:
        """The version holding ``digest``: existing (False) or newly numbered (True)."""
        versions = schema.feature_view_versions
        for _attempt in range(_RETRIES):
            try:
                with self.db.write() as conn:
                    now = time.time()
                    self.db.upsert(
                        conn,
                        schema.feature_views,
                        [{"name": name, "kind": kind, "created_at": now, "updated_at": now}],
                        ["name"],
                        [],
                    )
                    view_id = self._view_id(conn, name)
                    existing = conn.execute(
                        select(versions.c.version).where(
                            versions.c.view_id == view_id, versions.c.digest == digest
                        )
                    ).scalar()
                    if existing is not None:
                        return self.get_version(name, int(existing), conn), False
                    number = (
                        conn.execute(
                            select(func.max(versions.c.version)).where(
                                versions.c.view_id == view_id
                            )
                        ).scalar()
                        or 0
                    ) + 1
                    conn.execute(
                        versions.insert().values(
                            view_id=view_id,
                            version=number,
                            digest=digest,
                            definition=definition,
                            code_hash=code_hash,
                            created_at=now,
                            created_by=created_by,
                        )
                    )
                    conn.execute(
                        schema.feature_views.update()
                        .where(schema.feature_views.c.id == view_id)
                        .values(updated_at=now, kind=kind)
                    )
                    return self.get_version(name, number, conn), True
            except IntegrityError as exc:
                # PostgreSQL: another writer took this number or digest at the same time.
                if "uq_feature_view_versions" not in str(exc.orig):
                    raise
        raise RuntimeError(f"could not allocate a version of feature view {name!r}")

    def _view_id(self, conn: Connection, name: str) -> int:
        table = schema.feature_views
        found = conn.execute(select(table.c.id).where(table.c.name == name)).scalar()
        if found is None:
            raise NotFoundError(
                f"no feature view named {name!r} (register it with `forgeml features apply`)"
            )
        return int(found)

    def _versions(self, conn: Connection, query: Any) -> list[FeatureViewVersionRecord]:
        views, versions = schema.feature_views, schema.feature_view_versions
        rows = conn.execute(
            query.add_columns(
                views.c.name.label("view_name"), views.c.kind.label("view_kind")
            ).join(views, views.c.id == versions.c.view_id)
        ).all()
        return [
            FeatureViewVersionRecord(
                id=r.id,
                name=r.view_name,
                kind=r.view_kind,
                version=int(r.version),
                digest=r.digest,
                definition=dict(r.definition),
                code_hash=r.code_hash,
                created_at=r.created_at,
                created_by=r.created_by,
            )
            for r in rows
        ]

    def get_version(
        self, name: str, version: int | None = None, conn: Connection | None = None
    ) -> FeatureViewVersionRecord:
        """A version by number, or the newest when ``version`` is None."""
        if conn is None:
            with self.db.read() as read_conn:
                return self.get_version(name, version, read_conn)
        versions = schema.feature_view_versions
        view_id = self._view_id(conn, name)
        query = select(versions).where(versions.c.view_id == view_id)
        if version is None:
            query = query.order_by(versions.c.version.desc()).limit(1)
        else:
            query = query.where(versions.c.version == version)
        found = self._versions(conn, query)
        if not found:
            raise NotFoundError(
                f"feature view {name!r} has no version {version}"
                if version is not None
                else f"feature view {name!r} has no versions"
            )
        return found[0]

    def list_versions(self, name: str) -> list[FeatureViewVersionRecord]:
        versions = schema.feature_view_versions
        with self.db.read() as conn:
            view_id = self._view_id(conn, name)
            return self._versions(
                conn,
                select(versions)
                .where(versions.c.view_id == view_id)
                .order_by(versions.c.version.desc()),
            )

    def list_latest(self) -> list[FeatureViewVersionRecord]:
        """The newest version of every view, by name."""
        versions = schema.feature_view_versions
        newest = (
            select(versions.c.view_id, func.max(versions.c.version).label("newest"))
            .group_by(versions.c.view_id)
            .subquery()
        )
        query = (
            select(versions)
            .join(
                newest,
                and_(newest.c.view_id == versions.c.view_id, newest.c.newest == versions.c.version),
            )
            .order_by(versions.c.view_id)
        )
        with self.db.read() as conn:
            found = self._versions(conn, query)
        return sorted(found, key=lambda r: r.name)

    # -- materializations ---------------------------------------------------------------
    def add_materialization(
        self,
        view_version_id: int,
        online_store: str,
        start_time: float | None,
        end_time: float,
        full: bool,
        rows_read: int,
        entities_written: int,
        seconds: float,
        run_id: str | None,
        created_by: str,
    ) -> None:
        with self.db.write() as conn:
            conn.execute(
                schema.feature_materializations.insert().values(
                    view_version_id=view_version_id,
                    online_store=online_store,
                    start_time=start_time,
                    end_time=end_time,
                    full=full,
                    rows_read=rows_read,
                    entities_written=entities_written,
                    seconds=seconds,
                    run_id=run_id,
                    created_at=time.time(),
                    created_by=created_by,
                )
            )

    def materializations(
        self, name: str, online_store: str | None = None, limit: int = 50
    ) -> list[MaterializationRecord]:
        """Newest first: the materializations of every version of ``name``."""
        mats, versions = schema.feature_materializations, schema.feature_view_versions
        with self.db.read() as conn:
            view_id = self._view_id(conn, name)
            query = (
                select(mats, versions.c.version.label("view_version"))
                .join(versions, versions.c.id == mats.c.view_version_id)
                .where(versions.c.view_id == view_id)
                .order_by(mats.c.end_time.desc(), mats.c.id.desc())
                .limit(limit)
            )
            if online_store is not None:
                query = query.where(mats.c.online_store == online_store)
            rows = conn.execute(query).all()
        return [
            MaterializationRecord(
                id=int(r.id),
                view=name,
                view_version=int(r.view_version),
                online_store=r.online_store,
                start_time=r.start_time,
                end_time=r.end_time,
                full=bool(r.full),
                rows_read=int(r.rows_read),
                entities_written=int(r.entities_written),
                seconds=r.seconds,
                run_id=r.run_id,
                created_at=r.created_at,
                created_by=r.created_by,
            )
            for r in rows
        ]

    def watermark(self, view_version_id: int, online_store: str) -> float | None:
        """Where the newest materialization of this version into this store ended.

        The newest, not the furthest: after a full run to an earlier time, rows after
        that time are not in the store, whatever earlier runs reached.
        """
        mats = schema.feature_materializations
        with self.db.read() as conn:
            value = conn.execute(
                select(mats.c.end_time)
                .where(
                    mats.c.view_version_id == view_version_id, mats.c.online_store == online_store
                )
                .order_by(mats.c.id.desc())
                .limit(1)
            ).scalar()
        return float(value) if value is not None else None
