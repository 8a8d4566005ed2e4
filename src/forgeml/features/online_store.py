"""Online stores: the latest feature values per entity, in SQLite (default) or Redis.

Each stored entry is ``(version, time, payload)``: ``version`` is the number of the
write that stored it (a sequence per store, so each key's versions only grow and a
cache can tell an old read from a new one); ``payload`` is the JSON text
``[view_version, feature values...]``. Every write also announces the keys it changed,
as one record per write (a change-log row in SQLite, a pub/sub message in Redis), which
is how caches in other processes learn exactly which entries went stale.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any, Protocol

import orjson

from forgeml import config
from forgeml.errors import ConfigError, StoreError

Payload = str | bytes  # JSON text
Entry = tuple[int, float, Payload]  # (version, event time as epoch seconds, payload)
Change = tuple[str, str, int]  # (view, key, version)
Listener = Callable[[list[Change] | None], None]
META_KEY = "\x00meta"  # the key a view's metadata lives under in the change stream
_CHANGE_LOG_SECONDS = 24 * 3600


class OnlineStore(Protocol):
    url: str

    def write(
        self,
        view: str,
        keys: Sequence[str],
        times: Sequence[float],
        payloads: Sequence[Payload],
    ) -> list[Change]:
        """Store one entry per key, all under one new version (keys sorted write fastest)."""
        ...

    def read(self, view: str, keys: Sequence[str]) -> list[Entry | None]: ...

    def set_meta(self, view: str, meta: dict[str, Any]) -> None: ...

    def get_meta(self, view: str) -> dict[str, Any] | None: ...

    def views(self) -> list[str]: ...

    def sample_keys(self, view: str, count: int) -> list[str]: ...

    def subscribe(self, listener: Listener) -> Subscription:
        """Call ``listener`` with every change another writer makes (None: resync all)."""
        ...

    def close(self) -> None: ...


@dataclass
class Subscription:
    """``poll`` delivers pending changes (a no-op where a thread pushes them); ``close`` ends it."""

    poll: Callable[[], None]
    close: Callable[[], None]


def meta_name(view: str, version: int | None = None) -> str:
    """Where a view's metadata lives: the current version's, or one version's own."""
    return view if version is None else f"{view}@{version}"


# -- SQLite ---------------------------------------------------------------------------

_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS online_features (
    view TEXT NOT NULL, key TEXT NOT NULL, version INTEGER NOT NULL,
    ts REAL NOT NULL, payload BLOB NOT NULL, PRIMARY KEY (view, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS online_meta (view TEXT PRIMARY KEY, meta BLOB NOT NULL);
DROP TABLE IF EXISTS online_changes;
CREATE TABLE IF NOT EXISTS online_change_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, view TEXT NOT NULL, keys BLOB, at REAL NOT NULL
);
"""
# online_change_log: one row per write; ``seq`` is the version of every key it wrote,
# ``keys`` their JSON list (null for a change of the view's metadata). AUTOINCREMENT
# keeps numbers growing after old rows are pruned. online_changes, one row per key, is
# the layout before version 2.
_SQLITE_SCHEMA_VERSION = 2


class SQLiteOnlineStore:
    """One SQLite file in WAL mode; one connection per thread, reads never block writes."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.path = Path(url.removeprefix("sqlite:///"))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        connection = self._connection()
        try:
            if connection.execute("PRAGMA user_version").fetchone()[0] < _SQLITE_SCHEMA_VERSION:
                connection.executescript(
                    f"BEGIN; {_SQLITE_SCHEMA}; "
                    f"PRAGMA user_version = {_SQLITE_SCHEMA_VERSION}; COMMIT;"
                )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the online store {self.path}: {exc}") from exc

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = NORMAL")
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    def write(
        self,
        view: str,
        keys: Sequence[str],
        times: Sequence[float],
        payloads: Sequence[Payload],
    ) -> list[Change]:
        if not keys:
            return []
        connection = self._connection()
        with _transaction(connection):
            version = connection.execute(
                "INSERT INTO online_change_log (view, keys, at) VALUES (?, ?, ?)",
                (view, orjson.dumps(list(keys)), time.time()),
            ).lastrowid
            connection.executemany(
                "INSERT INTO online_features (view, key, version, ts, payload) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (view, key) DO UPDATE SET "
                "version = excluded.version, ts = excluded.ts, payload = excluded.payload",
                zip(repeat(view), keys, repeat(version), times, payloads, strict=False),
            )
        assert version is not None
        return [(view, key, version) for key in keys]

    def read(self, view: str, keys: Sequence[str]) -> list[Entry | None]:
        connection = self._connection()
        if len(keys) == 1:
            row = connection.execute(
                "SELECT version, ts, payload FROM online_features WHERE view = ? AND key = ?",
                (view, keys[0]),
            ).fetchone()
            return [(row[0], row[1], row[2]) if row else None]
        found: dict[str, Entry] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for key, version, ts, payload in connection.execute(
                f"SELECT key, version, ts, payload FROM online_features "
                f"WHERE view = ? AND key IN ({marks})",
                (view, *chunk),
            ):
                found[key] = (version, ts, payload)
        return [found.get(k) for k in keys]

    def set_meta(self, view: str, meta: dict[str, Any]) -> None:
        connection = self._connection()
        with _transaction(connection):
            connection.execute(
                "INSERT INTO online_meta (view, meta) VALUES (?, ?) "
                "ON CONFLICT (view) DO UPDATE SET meta = excluded.meta",
                (view, orjson.dumps(meta)),
            )
            connection.execute(
                "INSERT INTO online_change_log (view, keys, at) VALUES (?, NULL, ?)",
                (view, time.time()),
            )
            connection.execute(
                "DELETE FROM online_change_log WHERE at < ?",
                (time.time() - _CHANGE_LOG_SECONDS,),
            )

    def get_meta(self, view: str) -> dict[str, Any] | None:
        row = (
            self._connection()
            .execute("SELECT meta FROM online_meta WHERE view = ?", (view,))
            .fetchone()
        )
        return orjson.loads(row[0]) if row else None

    def views(self) -> list[str]:
        rows = self._connection().execute("SELECT view FROM online_meta ORDER BY view")
        return [r[0] for r in rows if "@" not in r[0]]

    def sample_keys(self, view: str, count: int) -> list[str]:
        rows = self._connection().execute(
            "SELECT key FROM online_features WHERE view = ? ORDER BY random() LIMIT ?",
            (view, count),
        )
        return [r[0] for r in rows]

    def subscribe(self, listener: Listener) -> Subscription:
        """Changes are polled: a read first asks SQLite whether anyone else committed."""
        connection = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        with self._lock:
            self._connections.append(connection)
        lock = threading.Lock()
        state = {
            "data_version": connection.execute("PRAGMA data_version").fetchone()[0],
            "seq": connection.execute(
                "SELECT coalesce(max(seq), 0) FROM online_change_log"
            ).fetchone()[0],
        }

        def poll() -> None:
            with lock:
                data_version = connection.execute("PRAGMA data_version").fetchone()[0]
                if data_version == state["data_version"]:
                    return
                state["data_version"] = data_version
                oldest = connection.execute("SELECT min(seq) FROM online_change_log").fetchone()[0]
                rows = connection.execute(
                    "SELECT seq, view, keys FROM online_change_log WHERE seq > ? ORDER BY seq",
                    (state["seq"],),
                ).fetchall()
                if oldest is not None and oldest > state["seq"] + 1:
                    listener(None)  # the log was pruned past what we saw: start over
                if rows:
                    state["seq"] = rows[-1][0]
                    listener(
                        [
                            change
                            for seq, view, keys in rows
                            for change in _changes(
                                view, seq, None if keys is None else orjson.loads(keys)
                            )
                        ]
                    )

        def close() -> None:
            with self._lock:
                if connection in self._connections:
                    self._connections.remove(connection)
            connection.close()

        return Subscription(poll, close)

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()
        self._local = threading.local()


def _changes(view: str, version: int, keys: list[str] | None) -> list[Change]:
    """One change record (a write's keys, or None for metadata) as changes."""
    if keys is None:
        return [(view, META_KEY, 0)]
    return [(view, key, version) for key in keys]


class _transaction:
    """BEGIN IMMEDIATE ... COMMIT on an autocommit connection; ROLLBACK on error."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    def __enter__(self) -> None:
        self.connection.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        self.connection.execute("COMMIT" if kind is None else "ROLLBACK")


# -- Redis ----------------------------------------------------------------------------


class RedisOnlineStore:
    """One string per entity key, ``"{version} {time} {payload}"``; changes on pub/sub.

    A write sets its keys with MSET, a thousand per command, in one pipeline, and takes
    its version from a counter (INCR); a lookup of many keys is one MGET.
    """

    def __init__(self, url: str) -> None:
        """``?prefix=NAME:`` in the URL namespaces the keys (default ``forgeml:``)."""
        try:
            import redis
        except ImportError as exc:  # pragma: no cover - the redis extra is missing
            raise ConfigError(
                f"FORGEML_ONLINE_URL={url!r}: install the redis extra "
                "(pip install 'forgeml[redis]')"
            ) from exc
        from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

        self.url = url
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        self.prefix = query.pop("prefix", "forgeml:")
        self.channel = f"{self.prefix}changes"
        plain = urlunsplit(parts._replace(query=urlencode(query)))
        self.client: Any = redis.Redis.from_url(plain, socket_timeout=10, socket_connect_timeout=5)
        try:
            self.client.ping()
        except redis.RedisError as exc:
            raise StoreError(f"cannot reach the online store at {url}: {exc}") from exc
        self._threads: list[Any] = []

    def _key(self, view: str, key: str) -> str:
        return f"{self.prefix}e:{view}\x1f{key}"

    def write(
        self,
        view: str,
        keys: Sequence[str],
        times: Sequence[float],
        payloads: Sequence[Payload],
    ) -> list[Change]:
        if not keys:
            return []
        version = int(self.client.incr(f"{self.prefix}version"))
        head = b"%d " % version
        pipe = self.client.pipeline(transaction=False)
        for start in range(0, len(keys), 1000):
            arguments: list[str | bytes] = []
            for key, ts, payload in zip(
                keys[start : start + 1000],
                times[start : start + 1000],
                payloads[start : start + 1000],
                strict=True,
            ):
                arguments.append(self._key(view, key))
                body = payload.encode() if isinstance(payload, str) else payload
                arguments.append(head + repr(ts).encode() + b" " + body)
            pipe.execute_command("MSET", *arguments)
        pipe.publish(self.channel, orjson.dumps([view, version, list(keys)]))
        pipe.execute()
        return [(view, key, version) for key in keys]

    def read(self, view: str, keys: Sequence[str]) -> list[Entry | None]:
        if len(keys) == 1:
            return [_entry(self.client.get(self._key(view, keys[0])))]
        found: list[Entry | None] = []
        for start in range(0, len(keys), 1000):
            names = [self._key(view, key) for key in keys[start : start + 1000]]
            found.extend(_entry(raw) for raw in self.client.mget(names))
        return found

    def set_meta(self, view: str, meta: dict[str, Any]) -> None:
        self.client.hset(f"{self.prefix}meta", view, orjson.dumps(meta))
        self.client.publish(self.channel, orjson.dumps([view, 0, None]))

    def get_meta(self, view: str) -> dict[str, Any] | None:
        raw = self.client.hget(f"{self.prefix}meta", view)
        return orjson.loads(raw) if raw else None

    def views(self) -> list[str]:
        names: list[bytes] = self.client.hkeys(f"{self.prefix}meta")
        return sorted(v.decode() for v in names if b"@" not in v)

    def sample_keys(self, view: str, count: int) -> list[str]:
        start = f"{self.prefix}e:{view}\x1f"
        found: list[str] = []
        name: bytes
        for name in self.client.scan_iter(match=f"{start}*", count=1000):
            found.append(name.decode()[len(start) :])
            if len(found) >= count:
                break
        return found

    def subscribe(self, listener: Listener) -> Subscription:
        """A daemon thread hears every change; a dropped connection means resync."""
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)

        def handle(message: dict[str, Any]) -> None:
            view, version, keys = orjson.loads(message["data"])
            listener(_changes(view, version, keys))

        pubsub.subscribe(**{self.channel: handle})

        def on_error(exc: BaseException, pubsub: Any, thread: Any) -> None:
            listener(None)
            pubsub.reset()
            pubsub.subscribe(**{self.channel: handle})

        thread = pubsub.run_in_thread(sleep_time=1.0, daemon=True, exception_handler=on_error)
        self._threads.append(thread)

        def close() -> None:
            thread.stop()
            if thread in self._threads:
                self._threads.remove(thread)

        return Subscription(_no_poll, close)

    def clear(self) -> None:
        """Remove every key of this store's prefix (tests and benchmarks)."""
        for name in self.client.scan_iter(match=f"{self.prefix}*", count=1000):
            self.client.delete(name)

    def close(self) -> None:
        for thread in self._threads:
            thread.stop()
        self._threads = []
        self.client.close()


def _entry(raw: bytes | None) -> Entry | None:
    if raw is None:
        return None
    version, ts, payload = raw.split(b" ", 2)
    return int(version), float(ts), payload


def _no_poll() -> None:
    return None


# -- choosing a store -----------------------------------------------------------------

_stores: dict[str, OnlineStore] = {}
_stores_lock = threading.Lock()


def open_store(url: str | None = None) -> OnlineStore:
    """The process-wide store for ``url`` (the configured one by default)."""
    url = url or config.settings().online_url
    with _stores_lock:
        store = _stores.get(url)
        if store is None:
            store = _make(url)
            _stores[url] = store
        return store


def _make(url: str) -> OnlineStore:
    if url.startswith("sqlite:///"):
        return SQLiteOnlineStore(url)
    if url.split("://", 1)[0] in ("redis", "rediss", "unix"):
        return RedisOnlineStore(url)
    raise ConfigError(f"unsupported online store {url!r} (expected sqlite:///PATH or redis://...)")


def close_default_stores() -> None:
    with _stores_lock:
        stores = list(_stores.values())
        _stores.clear()
    for store in stores:
        store.close()
    from forgeml.features import lookup

    lookup.reset_default_client()


@dataclass(frozen=True)
class KeyCodec:
    """Entity keys as store strings: one value as text, several joined by a unit separator."""

    names: tuple[str, ...]
    kinds: tuple[str, ...]  # "integer", "string", "float", "time", "other"

    def encode(self, values: Sequence[Any]) -> str:
        if len(values) == 1:
            return _encode_one(values[0])
        return "\x1f".join(_encode_one(v) for v in values)

    def decode(self, text: str) -> list[Any]:
        parts = text.split("\x1f") if len(self.names) > 1 else [text]
        return [_decode_one(p, kind) for p, kind in zip(parts, self.kinds, strict=True)]


def _encode_one(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if hasattr(value, "item") and not hasattr(value, "isoformat"):  # numpy scalars
        return _encode_one(value.item())
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)


def _decode_one(text: str, kind: str) -> Any:
    if kind == "integer":
        return int(text)
    if kind == "float":
        return float(text)
    return text
