"""One handle on the metadata database: engine set-up, transactions and the schema check.

SQLite is tuned for several processes writing at once (WAL, a long busy timeout, and
``BEGIN IMMEDIATE`` for writes so a reader never has to upgrade its lock mid-transaction,
which is where "database is locked" comes from). PostgreSQL needs none of that.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import (
    Connection,
    Engine,
    Float,
    String,
    Table,
    create_engine,
    event,
    inspect,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from forgeml.errors import ConfigError, SchemaOutdatedError, SchemaTooNewError, StoreError
from forgeml.store.migrations import HEAD, REVISIONS

_SQLITE_BUSY_TIMEOUT_S = 60.0


class Database:
    """The metadata database at ``url``; the schema is created on first use if it is empty."""

    def __init__(self, url: str, *, check_schema: bool = True) -> None:
        self.url = url
        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            raise ConfigError(f"database URL {url!r} cannot be parsed: {exc}") from None
        self.dialect = parsed.get_backend_name()
        self._upserts: dict[tuple[Any, ...], Any] = {}
        self._compiled: dict[tuple[Any, ...], tuple[str, Any, dict[str, Any]]] = {}
        self.engine = _create_engine(url, self.dialect)
        if check_schema:
            try:
                ensure_schema(self)
            except BaseException:
                self.engine.dispose()
                raise

    @property
    def display_url(self) -> str:
        """The URL with any password hidden, safe to print and log."""
        return make_url(self.url).render_as_string(hide_password=True)

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection in a read transaction (a consistent snapshot on both backends)."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """A connection in a write transaction, committed on success, rolled back on error."""
        with self.engine.connect().execution_options(forgeml_write=True) as conn, conn.begin():
            yield conn

    def upsert(
        self,
        conn: Connection,
        table: Table,
        rows: Sequence[Mapping[str, Any]],
        keys: Sequence[str],
        update: Sequence[str],
        where: Callable[[Table, Any], Any] | None = None,
    ) -> None:
        """Insert ``rows``; on a key conflict overwrite the ``update`` columns (when ``where``).

        The statement is built once per shape and reused: building an ON CONFLICT
        statement costs more than executing it for a handful of rows.
        """
        if not rows:
            return
        shape = (table.name, tuple(keys), tuple(update), where)
        stmt = self._upserts.get(shape)
        if stmt is None:
            stmt = self._build_upsert(table, keys, update, where)
            self._upserts[shape] = stmt
        self.execute_many(conn, stmt, rows)

    def execute_many(self, conn: Connection, stmt: Any, rows: Sequence[Mapping[str, Any]]) -> None:
        """``executemany`` of a statement compiled once per set of columns.

        The tracking writer sends thousands of rows a second through a few statements;
        SQLAlchemy's per-row parameter processing would cost more than SQLite's work.
        Values still pass through each column type's bind processor (JSON, booleans).
        """
        if not rows:
            return
        columns = tuple(rows[0])
        compiled = self._compiled.get((stmt, columns))
        if compiled is None:
            statement = stmt.compile(dialect=self.engine.dialect, column_keys=list(columns))
            processors = {
                name: processor
                for name, processor in statement._bind_processors.items()
                if not isinstance(statement.binds[name].type, Float | String)
            }
            compiled = (str(statement), statement.positiontup, processors)
            self._compiled[(stmt, columns)] = compiled
        sql, order, processors = compiled
        if processors:
            rows = [
                {k: (processors[k](v) if k in processors else v) for k, v in row.items()}
                for row in rows
            ]
        if order is not None:
            conn.exec_driver_sql(sql, [tuple(row[name] for name in order) for row in rows])
        else:
            conn.exec_driver_sql(sql, [dict(row) for row in rows])

    def _build_upsert(
        self,
        table: Table,
        keys: Sequence[str],
        update: Sequence[str],
        where: Callable[[Table, Any], Any] | None,
    ) -> Any:
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            stmt: Any = pg_insert(table)
        else:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            stmt = sqlite_insert(table)
        set_ = {name: stmt.excluded[name] for name in update}
        condition = where(table, stmt.excluded) if where is not None else None
        if set_:
            return stmt.on_conflict_do_update(index_elements=list(keys), set_=set_, where=condition)
        return stmt.on_conflict_do_nothing(index_elements=list(keys))

    def dispose(self) -> None:
        self.engine.dispose()


def _create_engine(url: str, dialect: str) -> Engine:
    if dialect == "sqlite":
        path = make_url(url).database
        if path:
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"cannot create {Path(path).parent} for the metadata database: {exc.strerror}"
                ) from None
        engine = create_engine(
            url,
            connect_args={"timeout": _SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False},
            json_serializer=_json_dumps,
            json_deserializer=orjson.loads,
        )
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    if dialect == "postgresql":
        return create_engine(
            url,
            pool_pre_ping=True,
            pool_size=5,
            max_overflow=10,
            json_serializer=_json_dumps,
            json_deserializer=orjson.loads,
        )
    raise ConfigError(f"database URL {url!r}: unsupported backend {dialect!r}")


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS).decode()


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event, not the driver, decide how transactions start.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA wal_autocheckpoint=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={int(_SQLITE_BUSY_TIMEOUT_S * 1000)}")
    cursor.close()
    dbapi_connection.create_function("forgeml_number", 1, _text_to_number, deterministic=True)


def _text_to_number(value: Any) -> float | None:
    """SQLite side of ``run_search.param_number``: a number, or NULL for other text."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _sqlite_on_begin(conn: Connection) -> None:
    write = conn.get_execution_options().get("forgeml_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


# ---------------------------------------------------------------------------------------
# Schema revision: checked cheaply on open, upgraded with Alembic only when needed.


def current_revision(db: Database) -> str | None:
    """The Alembic revision stamped in the database, or None for an empty database."""
    try:
        with db.read() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return None
            row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
    except OperationalError as exc:
        reason = " ".join(str(exc.orig).split())
        raise StoreError(f"cannot open the metadata database {db.display_url}: {reason}") from None
    return None if row is None else str(row[0])


def ensure_schema(db: Database) -> None:
    """Create the schema in an empty database; refuse one at another revision."""
    revision = current_revision(db)
    if revision == HEAD:
        return
    if revision is None:
        with _migration_lock(db):
            if current_revision(db) is None:
                _refuse_foreign_tables(db)
                _run_migrations(db, "head")
        return
    if revision in REVISIONS:
        # An older revision may be another process creating the schema right now, one
        # revision at a time: wait for it to finish before judging.
        with _migration_lock(db):
            revision = current_revision(db)
        if revision == HEAD:
            return
    _raise_for_revision(db, revision or "?")


def _raise_for_revision(db: Database, revision: str) -> None:
    if revision in REVISIONS:
        raise SchemaOutdatedError(
            f"the metadata database {db.display_url} is at schema revision {revision}, "
            f"this forgeml needs {HEAD}: upgrade it with `forgeml db upgrade`"
        )
    raise SchemaTooNewError(
        f"the metadata database {db.display_url} is at schema revision {revision!r}, "
        f"which this forgeml does not know (newest known: {HEAD}); upgrade forgeml"
    )


def _refuse_foreign_tables(db: Database) -> None:
    with db.read() as conn:
        tables = set(inspect(conn).get_table_names())
    if "runs" in tables or "experiments" in tables:
        raise StoreError(
            f"the database {db.display_url} has tables but no forgeml schema revision; "
            "point FORGEML_DB_URL at an empty database"
        )


def upgrade(db: Database, revision: str = "head") -> str:
    """Apply migrations up to ``revision``; returns the revision the database is now at."""
    with _migration_lock(db):
        _run_migrations(db, revision)
    new_revision = current_revision(db)
    if new_revision is None:  # pragma: no cover - Alembic always stamps the table
        raise StoreError(f"migrating {db.display_url} left no schema revision")
    return new_revision


def _run_migrations(db: Database, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "forgeml.store:migrations")
    with db.engine.connect() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
        conn.commit()


@contextlib.contextmanager
def _migration_lock(db: Database) -> Iterator[None]:
    """Serialise migrations between processes: a file lock for SQLite, an advisory lock else."""
    if db.dialect == "sqlite":
        path = make_url(db.url).database or ""
        with open(f"{path}.migrate.lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    key = int.from_bytes(hashlib.sha256(b"forgeml-migrate").digest()[:8], "big", signed=True)
    with db.engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            conn.commit()
