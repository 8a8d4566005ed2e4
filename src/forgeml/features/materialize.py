"""Materialization: the latest value of every entity, from the offline table to the online store.

A full run takes, per entity, the newest row at or before ``end``. An incremental run
reads only rows after the previous run's ``end`` (its watermark) and overwrites just
the entities those rows touch; it falls back to a full run when the view version in
the online store is not the one being materialized.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from forgeml import backend, config
from forgeml.errors import InvalidArgumentError
from forgeml.features.definitions import AnyView
from forgeml.features.lookup import announce
from forgeml.features.offline import _connection, _family, offline_table, quote
from forgeml.features.online_store import META_KEY, KeyCodec, OnlineStore, meta_name, open_store
from forgeml.features.registry import ViewVersion, as_version

Progress = Callable[[str, int, int], None]  # (view, entities written, entities in total)
_WRITE_CHUNK = 10_000


@dataclass(frozen=True)
class MaterializationResult:
    view: str
    version: int
    full: bool
    start: dt.datetime | None
    end: dt.datetime
    rows_read: int
    entities_written: int
    seconds: float
    online_store: str


def _utc(value: dt.datetime | None) -> dt.datetime:
    if value is None:
        return dt.datetime.now(dt.UTC).replace(tzinfo=None)
    if value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def _epoch(value: dt.datetime) -> float:
    return value.replace(tzinfo=dt.UTC).timestamp()


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"cannot store {type(value).__name__} in the online store")


def materialize(
    views: Sequence[str | AnyView | ViewVersion] | str | AnyView | None = None,
    *,
    end: dt.datetime | None = None,
    full: bool = False,
    online_store: str | None = None,
    progress: Progress | None = None,
) -> list[MaterializationResult]:
    """Write the latest values of ``views`` (every batch view by default) to the online store."""
    if views is None:
        targets = [r.name for r in backend.features().list_latest() if r.kind == "batch"]
        if not targets:
            raise InvalidArgumentError("no feature views are registered (`forgeml features apply`)")
        versions = [as_version(name) for name in targets]
    else:
        if isinstance(views, str | ViewVersion) or not isinstance(views, Sequence):
            views = [views]
        versions = [as_version(v) for v in views]
    store = open_store(online_store)
    return [_materialize_one(v, store, _utc(end), full, progress) for v in versions]


def _materialize_one(
    version: ViewVersion,
    store: OnlineStore,
    end: dt.datetime,
    full: bool,
    progress: Progress | None,
) -> MaterializationResult:
    if version.kind != "batch":
        raise InvalidArgumentError(
            f"{version.ref} is an on-demand view: it is computed at request time, not materialized"
        )
    started = time.perf_counter()
    repo = backend.features()
    built = offline_table(version)
    previous = store.get_meta(version.name)
    watermark = None if full else repo.watermark(version.record.id, store.url)
    if previous is None or previous.get("version") != version.version:
        watermark = None
    end_epoch = _epoch(end)
    keys = version.join_keys
    features = version.features
    rows_read = written = 0
    start_dt = (
        dt.datetime.fromtimestamp(watermark, dt.UTC).replace(tzinfo=None)
        if watermark is not None
        else None
    )
    if watermark is None or watermark < end_epoch:
        where = f"__fm_ts <= {_timestamp(end)}"
        if start_dt is not None:
            where += f" AND __fm_ts > {_timestamp(start_dt)}"
        key_list = ", ".join(quote(k) for k in keys)
        # Two passes beat one aggregate per feature: the newest time per entity from two
        # columns, then the rows at exactly those times (offline rows have no ties, so
        # one per entity; a null in the newest row is its value, not a gap to skip).
        newest = (
            f"SELECT {key_list}, max(__fm_ts) AS __fm_ts, count(*) AS __fm_n "
            f"FROM ({built.sql}) WHERE {where} GROUP BY {key_list}"
        )
        matches = " AND ".join(f"r.{quote(k)} = n.{quote(k)}" for k in [*keys, "__fm_ts"])
        selected = ", ".join(
            [*(f"r.{quote(k)}" for k in keys), "epoch_us(r.__fm_ts) AS __fm_us", "n.__fm_n"]
            + [f"r.{quote(f)}" for f in features]
        )
        query = f"SELECT {selected} FROM ({built.sql}) r JOIN __fm_newest n ON {matches}"
        codec = KeyCodec(tuple(keys), tuple(_family(built.types[k]) for k in keys))
        meta = {
            "view": version.name,
            "version": version.version,
            "digest": version.record.digest,
            "features": features,
            "join_keys": keys,
            "key_kinds": list(codec.kinds),
            "ttl_seconds": version.ttl_seconds,
            "end": end_epoch,
            "types": {f: built.types[f] for f in features},
        }
        # Readers decode each entry by the version that wrote it, so this version's
        # metadata must be there before its first entry is.
        store.set_meta(meta_name(version.name, version.version), meta)
        connection = _connection()
        try:
            connection.execute(f"CREATE TEMP TABLE __fm_newest AS {newest}")
            connection.execute(f"CREATE TEMP TABLE __fm_latest AS {query}")
            total = int(connection.sql("SELECT count(*) FROM __fm_latest").fetchall()[0][0])
            if progress is not None:
                progress(version.name, 0, total)
            latest_rows = connection.sql("SELECT * FROM __fm_latest")
            for batch in latest_rows.to_arrow_reader(_WRITE_CHUNK):
                columns = batch.to_pydict()
                key_values = [columns[k] for k in keys]
                value_columns = [columns[f] for f in features]
                rows = []
                for index, parts in enumerate(zip(*key_values, strict=True)):
                    payload = orjson.dumps(
                        [version.version, *(column[index] for column in value_columns)],
                        default=_json_default,
                        option=orjson.OPT_SERIALIZE_NUMPY,
                    )
                    rows.append((codec.encode(parts), columns["__fm_us"][index] / 1e6, payload))
                rows_read += sum(columns["__fm_n"])
                announce(store.url, store.write(version.name, rows))
                written += len(rows)
                if progress is not None:
                    progress(version.name, written, total)
        finally:
            connection.close()
        store.set_meta(version.name, meta)
        announce(store.url, [(version.name, META_KEY, 0)])
    seconds = time.perf_counter() - started
    from forgeml.tracking.session import current_run

    run = current_run.get()
    if run is not None:
        from forgeml.tracking.fluent import flush

        flush()
    repo.add_materialization(
        version.record.id,
        store.url,
        watermark,
        max(end_epoch, watermark or end_epoch),
        watermark is None,
        rows_read,
        written,
        seconds,
        run.id if run is not None else None,
        config.settings().user,
    )
    return MaterializationResult(
        view=version.name,
        version=version.version,
        full=watermark is None,
        start=start_dt,
        end=end,
        rows_read=rows_read,
        entities_written=written,
        seconds=seconds,
        online_store=store.url,
    )


def _timestamp(value: dt.datetime) -> str:
    return f"TIMESTAMP '{value.isoformat(sep=' ')}'"
