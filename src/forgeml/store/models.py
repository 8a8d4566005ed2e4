"""Repository for the registry aggregate: registered models, versions, tags and aliases.

Versions are immutable once written (only their tags change). Every alias move is
written in the same transaction as an ``alias_events`` row, so the audit trail cannot
miss a move.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.exc import IntegrityError

from forgeml.errors import NotFoundError
from forgeml.store import schema
from forgeml.store.database import Database
from forgeml.store.records import AliasEvent, ModelVersion, RegisteredModel

_VERSION_RETRIES = 20


@dataclass(frozen=True)
class NewVersion:
    run_id: str | None
    flavor: str
    manifest_digest: str
    size: int
    signature: dict[str, Any] | None
    description: str | None
    created_by: str
    tags: Mapping[str, str]


class ModelRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- models -------------------------------------------------------------------------
    def _model_id(self, conn: Connection, name: str) -> int:
        table = schema.registered_models
        found = conn.execute(select(table.c.id).where(table.c.name == name)).scalar()
        if found is None:
            raise NotFoundError(f"no registered model named {name!r}")
        return int(found)

    def _ensure_model(self, conn: Connection, name: str, description: str | None) -> int:
        table = schema.registered_models
        now = time.time()
        self.db.upsert(
            conn,
            table,
            [{"name": name, "description": description, "created_at": now, "updated_at": now}],
            ["name"],
            [],
        )
        return self._model_id(conn, name)

    def get_model(self, name: str) -> RegisteredModel:
        found = self.list_models(names=[name])
        if not found:
            raise NotFoundError(f"no registered model named {name!r}")
        return found[0]

    def list_models(self, names: list[str] | None = None) -> list[RegisteredModel]:
        models, versions = schema.registered_models, schema.model_versions
        aliases, tags = schema.model_aliases, schema.model_tags
        query = select(models).order_by(models.c.name)
        if names is not None:
            query = query.where(models.c.name.in_(names))
        with self.db.read() as conn:
            rows = conn.execute(query).all()
            ids = [r.id for r in rows]
            latest = dict(
                conn.execute(
                    select(versions.c.model_id, func.max(versions.c.version))
                    .where(versions.c.model_id.in_(ids))
                    .group_by(versions.c.model_id)
                ).all()
            )
            alias_map: dict[int, dict[str, int]] = defaultdict(dict)
            for r in conn.execute(
                select(aliases.c.model_id, aliases.c.alias, versions.c.version)
                .join(versions, versions.c.id == aliases.c.version_id)
                .where(aliases.c.model_id.in_(ids))
            ):
                alias_map[r.model_id][r.alias] = int(r.version)
            tag_map: dict[int, dict[str, str]] = defaultdict(dict)
            for r in conn.execute(select(tags).where(tags.c.model_id.in_(ids))):
                tag_map[r.model_id][r.key] = r.value
        return [
            RegisteredModel(
                id=r.id,
                name=r.name,
                description=r.description,
                created_at=r.created_at,
                updated_at=r.updated_at,
                tags=tag_map[r.id],
                aliases=dict(sorted(alias_map[r.id].items())),
                latest_version=latest.get(r.id),
            )
            for r in rows
        ]

    def set_model_tags(self, name: str, tags: Mapping[str, str]) -> None:
        rows = [{"key": k, "value": v} for k, v in tags.items()]
        with self.db.write() as conn:
            model_id = self._model_id(conn, name)
            self.db.upsert(
                conn,
                schema.model_tags,
                [{"model_id": model_id, **row} for row in rows],
                ["model_id", "key"],
                ["value"],
            )

    # -- versions -----------------------------------------------------------------------
    def create_version(
        self, name: str, new: NewVersion, model_description: str | None = None
    ) -> ModelVersion:
        """Add the next version number of ``name`` (creating the model if needed)."""
        versions = schema.model_versions
        for _attempt in range(_VERSION_RETRIES):
            try:
                with self.db.write() as conn:
                    model_id = self._ensure_model(conn, name, model_description)
                    number = (
                        conn.execute(
                            select(func.max(versions.c.version)).where(
                                versions.c.model_id == model_id
                            )
                        ).scalar()
                        or 0
                    ) + 1
                    now = time.time()
                    version_id = conn.execute(
                        versions.insert()
                        .values(
                            model_id=model_id,
                            version=number,
                            run_id=new.run_id,
                            flavor=new.flavor,
                            manifest_digest=new.manifest_digest,
                            size=new.size,
                            signature=new.signature,
                            description=new.description,
                            created_at=now,
                            created_by=new.created_by,
                        )
                        .returning(versions.c.id)
                    ).scalar_one()
                    if new.tags:
                        conn.execute(
                            schema.model_version_tags.insert(),
                            [
                                {"version_id": version_id, "key": k, "value": v}
                                for k, v in new.tags.items()
                            ],
                        )
                    conn.execute(
                        schema.registered_models.update()
                        .where(schema.registered_models.c.id == model_id)
                        .values(updated_at=now)
                    )
            except IntegrityError as exc:
                # Another writer took this version number (PostgreSQL: both read the same
                # max under READ COMMITTED); try again with the next one.
                if "uq_model_versions_model_id_version" not in str(exc.orig):
                    raise
                continue
            return self.get_version(name, number)
        raise RuntimeError(f"could not allocate a version number for model {name!r}")

    def _version_rows(self, conn: Connection, query: Any) -> list[ModelVersion]:
        versions, models = schema.model_versions, schema.registered_models
        rows = conn.execute(
            query.add_columns(models.c.name.label("model_name")).join(
                models, models.c.id == versions.c.model_id
            )
        ).all()
        ids = [r.id for r in rows]
        tags: dict[int, dict[str, str]] = defaultdict(dict)
        vt = schema.model_version_tags
        for r in conn.execute(select(vt).where(vt.c.version_id.in_(ids))):
            tags[r.version_id][r.key] = r.value
        aliases: dict[int, list[str]] = defaultdict(list)
        al = schema.model_aliases
        for r in conn.execute(select(al).where(al.c.version_id.in_(ids)).order_by(al.c.alias)):
            aliases[r.version_id].append(r.alias)
        return [
            ModelVersion(
                id=r.id,
                model=r.model_name,
                version=int(r.version),
                flavor=r.flavor,
                manifest_digest=r.manifest_digest,
                size=int(r.size),
                run_id=r.run_id,
                signature=r.signature,
                description=r.description,
                created_at=r.created_at,
                created_by=r.created_by,
                tags=tags[r.id],
                aliases=tuple(aliases[r.id]),
            )
            for r in rows
        ]

    def get_version(self, name: str, version: int) -> ModelVersion:
        versions = schema.model_versions
        with self.db.read() as conn:
            model_id = self._model_id(conn, name)
            found = self._version_rows(
                conn,
                select(versions).where(
                    versions.c.model_id == model_id, versions.c.version == version
                ),
            )
        if not found:
            raise NotFoundError(f"model {name!r} has no version {version}")
        return found[0]

    def latest_version(self, name: str) -> ModelVersion:
        versions = schema.model_versions
        with self.db.read() as conn:
            model_id = self._model_id(conn, name)
            found = self._version_rows(
                conn,
                select(versions)
                .where(versions.c.model_id == model_id)
                .order_by(versions.c.version.desc())
                .limit(1),
            )
        if not found:
            raise NotFoundError(f"model {name!r} has no versions yet")
        return found[0]

    def list_versions(self, name: str) -> list[ModelVersion]:
        versions = schema.model_versions
        with self.db.read() as conn:
            model_id = self._model_id(conn, name)
            return self._version_rows(
                conn,
                select(versions)
                .where(versions.c.model_id == model_id)
                .order_by(versions.c.version.desc()),
            )

    def versions_of_run(self, run_id: str) -> list[ModelVersion]:
        versions = schema.model_versions
        with self.db.read() as conn:
            return self._version_rows(
                conn, select(versions).where(versions.c.run_id == run_id).order_by(versions.c.id)
            )

    def set_version_tags(self, name: str, version: int, tags: Mapping[str, str]) -> None:
        target = self.get_version(name, version)
        with self.db.write() as conn:
            self.db.upsert(
                conn,
                schema.model_version_tags,
                [{"version_id": target.id, "key": k, "value": v} for k, v in tags.items()],
                ["version_id", "key"],
                ["value"],
            )

    # -- aliases ------------------------------------------------------------------------
    def resolve_alias(self, name: str, alias: str) -> ModelVersion:
        aliases, versions = schema.model_aliases, schema.model_versions
        with self.db.read() as conn:
            model_id = self._model_id(conn, name)
            found = self._version_rows(
                conn,
                select(versions)
                .join(aliases, aliases.c.version_id == versions.c.id)
                .where(aliases.c.model_id == model_id, aliases.c.alias == alias),
            )
        if not found:
            raise NotFoundError(f"model {name!r} has no alias {alias!r}")
        return found[0]

    def set_alias(
        self, name: str, alias: str, version: int | None, actor: str, reason: str | None = None
    ) -> AliasEvent:
        """Point ``alias`` at ``version`` (None deletes it) and record the move."""
        aliases, versions = schema.model_aliases, schema.model_versions
        with self.db.write() as conn:
            model_id = self._model_id(conn, name)
            previous = conn.execute(
                select(versions.c.version)
                .join(aliases, aliases.c.version_id == versions.c.id)
                .where(aliases.c.model_id == model_id, aliases.c.alias == alias)
            ).scalar()
            if version is None:
                if previous is None:
                    raise NotFoundError(f"model {name!r} has no alias {alias!r}")
                conn.execute(
                    aliases.delete().where(aliases.c.model_id == model_id, aliases.c.alias == alias)
                )
            else:
                version_id = conn.execute(
                    select(versions.c.id).where(
                        versions.c.model_id == model_id, versions.c.version == version
                    )
                ).scalar()
                if version_id is None:
                    raise NotFoundError(f"model {name!r} has no version {version}")
                self.db.upsert(
                    conn,
                    aliases,
                    [{"model_id": model_id, "alias": alias, "version_id": version_id}],
                    ["model_id", "alias"],
                    ["version_id"],
                )
            event = AliasEvent(
                model=name,
                alias=alias,
                from_version=None if previous is None else int(previous),
                to_version=version,
                actor=actor,
                at=time.time(),
                reason=reason,
            )
            conn.execute(
                schema.alias_events.insert().values(
                    model_id=model_id,
                    alias=alias,
                    from_version=event.from_version,
                    to_version=event.to_version,
                    actor=actor,
                    at=event.at,
                    reason=reason,
                )
            )
        return event

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        events = schema.alias_events
        with self.db.read() as conn:
            model_id = self._model_id(conn, name)
            query = select(events).where(events.c.model_id == model_id)
            if alias is not None:
                query = query.where(events.c.alias == alias)
            rows = conn.execute(query.order_by(events.c.at, events.c.id)).all()
        return [
            AliasEvent(name, r.alias, r.from_version, r.to_version, r.actor, r.at, r.reason)
            for r in rows
        ]
