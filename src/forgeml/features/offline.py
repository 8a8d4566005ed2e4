"""The offline store: a view version's rows over Parquet, and ASOF joins over them.

A view version's *offline table* is its source rows after the transform, with the
timestamp normalised to UTC and rows without keys or time dropped. Ties (same keys,
same time) go to the row that comes last in the source. Without a transform and without
ties the rows are read from the source files in place; otherwise they are written once
to Parquet with ties settled. What was decided is cached by the view's digest and the
source's identity (a dataset's content digest; for plain files, their paths, sizes and
modification times), so training frames and materialization read the same rows,
computed by the same function.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from forgeml import config
from forgeml.data.sources import duckdb_connection
from forgeml.errors import DataSourceError, InvalidArgumentError
from forgeml.features.registry import ViewVersion

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from forgeml.data.dataset import Dataset
    from forgeml.features.definitions import FeatureView, Transform

_BATCH_ROWS = 131_072
_TIME_TYPES = ("TIMESTAMP", "DATE")
# Times compared as stored: ordering and equality are those of the UTC timestamp.
_STORED_TIME_TYPES = ("TIMESTAMP", "TIMESTAMP WITH TIME ZONE")


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class OfflineTable:
    """A view version's rows, ready to join: ``sql`` selects keys, ``__fm_ts`` and features.

    Without a transform and without ties, the rows are read straight from the source
    files; otherwise from a Parquet file built once, where ties are already settled.
    """

    sql: str
    types: dict[str, str]
    datasets: list[str] = field(default_factory=list)  # "name/version" of dataset sources
    # The same rows with ``__fm_time`` (the time as stored, so that filters on it reach
    # the Parquet scan), and ``__fm_file``, ``__fm_rownum`` (the source order, for ties).
    ordered_sql: str = ""
    keys: tuple[str, ...] = ()
    time_type: str = "TIMESTAMP"

    def relation_sql(self, columns: Sequence[str]) -> str:
        selected = ", ".join(c if c == "__fm_ts" else quote(c) for c in columns)
        return f"SELECT {selected} FROM ({self.sql})"

    def latest_sql(self, start: dt.datetime | None, end: dt.datetime) -> str:
        """Per entity, its newest row with a time in (``start``, ``end``] (naive UTC).

        Selects the keys, ``__fm_ts``, the features and ``__fm_n``, the number of the
        entity's rows in the range. Two scans (the newest time per entity, then the rows
        at that time) beat one aggregate per feature; ties at the newest time go to the
        last row in source order, so this needs no check for ties beforehand.
        """
        where = f"__fm_time <= {self._time_literal(end)}"
        if start is not None:
            where += f" AND __fm_time > {self._time_literal(start)}"
        rows = f"SELECT * FROM ({self.ordered_sql}) WHERE {where}"
        key_list = ", ".join(quote(k) for k in self.keys)
        newest = (
            f"SELECT {key_list}, max(__fm_time) AS __fm_newest, count(*) AS __fm_n "
            f"FROM ({rows}) GROUP BY {key_list}"
        )
        matches = " AND ".join(
            [f"r.{quote(k)} = n.{quote(k)}" for k in self.keys] + ["r.__fm_time = n.__fm_newest"]
        )
        partition = ", ".join(f"r.{quote(k)}" for k in self.keys)
        return (
            f"SELECT r.* EXCLUDE (__fm_time, __fm_file, __fm_rownum), n.__fm_n "
            f"FROM ({rows}) r JOIN ({newest}) n ON {matches} "
            f"QUALIFY row_number() OVER (PARTITION BY {partition} "
            f"ORDER BY r.__fm_file DESC, r.__fm_rownum DESC) = 1"
        )

    def _time_literal(self, value: dt.datetime) -> str:
        text = value.isoformat(sep=" ")
        if self.time_type == "TIMESTAMP WITH TIME ZONE":
            return f"TIMESTAMPTZ '{text}+00'"
        return f"TIMESTAMP '{text}'"


@dataclass
class _Source:
    sql: str  # a SELECT with __fm_file and __fm_rownum columns giving the source order
    fingerprint: str
    datasets: list[Dataset]


def _connection(memory_limit: str = "1GB") -> duckdb.DuckDBPyConnection:
    connection = duckdb_connection(memory_limit)
    connection.execute("SET TimeZone = 'UTC'")
    return connection


def _open_source(spec: dict[str, Any], where: str) -> _Source:
    kind = spec["kind"]
    if kind == "dataset":
        from forgeml.data.dataset import Dataset

        dataset = Dataset.get(spec["name"], spec.get("version"))
        path = dataset.path()
        return _Source(
            f"SELECT * EXCLUDE (file_row_number), 0 AS __fm_file, file_row_number AS __fm_rownum "
            f"FROM read_parquet({literal(str(path))}, file_row_number = true)",
            f"dataset:{dataset.digest}",
            [dataset],
        )
    if kind == "parquet":
        from forgeml.data.sources import expand_files

        files = expand_files(spec["path"])
        stats = []
        for file in files:
            stat = Path(file).stat()
            stats.append(f"{file}:{stat.st_size}:{stat.st_mtime_ns}")
        listing = "[" + ", ".join(literal(f) for f in files) + "]"
        return _Source(
            f"SELECT * EXCLUDE (filename, file_row_number), filename AS __fm_file, "
            f"file_row_number AS __fm_rownum "
            f"FROM read_parquet({listing}, filename = true, file_row_number = true)",
            "files:" + hashlib.sha256("\n".join(stats).encode()).hexdigest(),
            [],
        )
    if kind == "sql":
        return _snapshot_sql(spec, where)
    raise InvalidArgumentError(f"{where}: unknown source kind {kind!r}")


def _snapshot_sql(spec: dict[str, Any], where: str) -> _Source:
    """A SQL source is read once into Parquet; its content hash names the snapshot."""
    from forgeml.artifacts import file_digest
    from forgeml.data.sources import SQL, open_source
    from forgeml.data.writer import write_parquet

    scratch = _cache_dir() / "snapshots"
    scratch.mkdir(parents=True, exist_ok=True)
    with open_source(SQL(spec["query"], spec["url"])) as opened:
        written = write_parquet(opened.reader, scratch, None)
    digest = file_digest(written.path)
    final = scratch / f"{digest}.parquet"
    os.replace(written.path, final)
    return _Source(
        f"SELECT *, 0 AS __fm_file, file_row_number AS __fm_rownum "
        f"FROM read_parquet({literal(str(final))}, file_row_number = true)",
        f"sql:{digest}",
        [],
    )


def _cache_dir() -> Path:
    path = config.settings().cache_dir / "features"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _columns(connection: duckdb.DuckDBPyConnection, sql: str) -> dict[str, str]:
    relation = connection.sql(sql)
    return {name: str(kind) for name, kind in zip(relation.columns, relation.types, strict=True)}


def _require(columns: dict[str, str], names: Sequence[str], where: str, what: str) -> None:
    missing = [n for n in names if n not in columns]
    if missing:
        visible = [c for c in columns if not c.startswith("__fm_")]
        raise DataSourceError(
            f"{where}: {what} has no column {missing[0]!r} (columns: {', '.join(visible[:30])})"
        )


def _check_time(columns: dict[str, str], name: str, where: str) -> None:
    if not columns[name].upper().startswith(_TIME_TYPES):
        raise DataSourceError(
            f"{where}: timestamp column {name!r} is {columns[name]}, not a timestamp or date"
        )


def infer_features(view: FeatureView) -> list[str]:
    """Feature names from the source (after the transform): every column but keys and time."""
    where = f"feature view {view.name!r}"
    source = _open_source(view.definition(["?"])["source"], where)
    connection = _connection()
    try:
        sql = source.sql
        if view.transform_spec is not None:
            sample = connection.sql(f"SELECT * EXCLUDE (__fm_file, __fm_rownum) FROM ({sql})")
            reader = sample.limit(100).to_arrow_reader(100)
            output = _run_transform(view.transform_spec, next(iter(reader), None), where)
            columns = list(output.column_names)
        else:
            columns = list(_columns(connection, sql))
    finally:
        connection.close()
    reserved = set(view.join_keys) | {view.timestamp_field}
    names = [c for c in columns if c not in reserved and not c.startswith("__fm_")]
    if not names:
        raise DataSourceError(f"{where}: the source has no columns besides keys and timestamp")
    return names


def _run_transform(transform: Transform, batch: pa.RecordBatch | None, where: str) -> pa.Table:
    import pyarrow as pa

    if batch is None:
        raise DataSourceError(f"{where}: the source has no rows to run the transform on")
    table = pa.Table.from_batches([batch])
    if transform.format == "arrow":
        argument: Any = table
    elif transform.format == "polars":
        import polars as pl

        argument = pl.from_arrow(table)
    else:
        argument = table.to_pandas()
    try:
        output = transform.function(argument)
    except Exception as exc:
        raise DataSourceError(f"{where}: the transform raised {type(exc).__name__}: {exc}") from exc
    return _to_arrow(output, f"{where}: the transform")


def _to_arrow(value: Any, where: str) -> pa.Table:
    import pyarrow as pa

    if isinstance(value, pa.Table):
        return value
    if isinstance(value, pa.RecordBatch):
        return pa.Table.from_batches([value])
    module = type(value).__module__.split(".")[0]
    if module == "pandas":
        return pa.Table.from_pandas(value, preserve_index=False)
    if module == "polars":
        return value.to_arrow()
    raise InvalidArgumentError(
        f"{where} returned {type(value).__name__}; expected a pandas, polars or Arrow table"
    )


def offline_table(version: ViewVersion, *, check_ties: bool = True) -> OfflineTable:
    """The rows of ``version`` as of its source's current content (built if needed).

    The checks that decide how to read them (columns, types, whether two rows share
    keys and time) run once per view digest and source content, and are cached.
    ``check_ties=False`` is for readers that settle ties themselves
    (``OfflineTable.latest_sql``): they read a source without a transform in place,
    without paying for the check the first time.
    """
    from forgeml.data.dataset import _record_use

    if version.kind != "batch":
        raise InvalidArgumentError(f"{version.ref} is an on-demand view: it has no offline rows")
    where = f"feature view {version.ref}"
    source = _open_source(version.definition["source"], where)
    for dataset in source.datasets:
        _record_use(dataset)
    dataset_refs = [f"{d.name}/{d.version}" for d in source.datasets]
    key = hashlib.sha256(f"{version.record.digest}\n{source.fingerprint}".encode()).hexdigest()
    meta_path = _cache_dir() / f"{key}.json"
    built_path = _cache_dir() / f"{key}.parquet"
    if meta_path.is_file():
        meta = orjson.loads(meta_path.read_bytes())
        if meta["mode"] == "direct":
            return _table(version, source.sql, meta["types"], dataset_refs)
        if built_path.is_file():
            return _table(version, _file_sql(built_path), meta["types"], dataset_refs)
    connection = _connection()
    transformed: Path | None = None
    try:
        sql = source.sql
        transform = version.transform()
        if transform is not None:
            transformed = _apply_transform(connection, sql, transform, where)
            sql = _file_sql(transformed)
        types = _check_columns(connection, sql, version, where)
        if transformed is None and not check_ties:
            return _table(version, sql, types, dataset_refs)
        if transformed is None and not _has_ties(
            connection, _rows_sql(version, sql, types, ordered=True), version
        ):
            mode = "direct"
        else:
            _build(connection, sql, version, built_path, types)
            sql = _file_sql(built_path)
            mode = "built"
        meta_path.write_bytes(orjson.dumps({"mode": mode, "types": types}))
        return _table(version, sql, types, dataset_refs)
    finally:
        connection.close()
        if transformed is not None:
            transformed.unlink(missing_ok=True)


def _table(
    version: ViewVersion, sql: str, types: dict[str, str], datasets: list[str]
) -> OfflineTable:
    time_type = types[version.definition["timestamp_field"]].upper()
    return OfflineTable(
        _rows_sql(version, sql, types),
        types,
        datasets,
        ordered_sql=_rows_sql(version, sql, types, ordered=True),
        keys=tuple(version.join_keys),
        time_type=time_type if time_type in _STORED_TIME_TYPES else "TIMESTAMP",
    )


def _file_sql(path: Path) -> str:
    return (
        f"SELECT * EXCLUDE (__fm_rownum), 0 AS __fm_file, __fm_rownum "
        f"FROM read_parquet({literal(str(path))})"
    )


def _rows_sql(
    version: ViewVersion, sql: str, types: dict[str, str], *, ordered: bool = False
) -> str:
    """Keys, the time as UTC ``TIMESTAMP`` named ``__fm_ts``, and the features.

    ``ordered`` adds ``__fm_time``, ``__fm_file`` and ``__fm_rownum``: see OfflineTable.
    """
    definition = version.definition
    keys: list[str] = list(definition["join_keys"])
    ts: str = definition["timestamp_field"]
    as_utc = utc_timestamp(quote(ts), types[ts])
    selected = [*(quote(k) for k in keys), f"{as_utc} AS __fm_ts"]
    if ordered:
        stored = types[ts].upper() in _STORED_TIME_TYPES
        selected.append(f"{quote(ts) if stored else as_utc} AS __fm_time")
        selected += ["__fm_file", "__fm_rownum"]
    selected += [quote(f) for f in definition["features"]]
    not_null = " AND ".join(f"{quote(c)} IS NOT NULL" for c in [*keys, ts])
    return f"SELECT {', '.join(selected)} FROM ({sql}) WHERE {not_null}"


def utc_timestamp(expression: str, duck_type: str) -> str:
    """``expression`` (a timestamp or date) as a naive UTC ``TIMESTAMP``.

    The connection's zone is UTC, so a plain CAST would do, but a CAST from
    TIMESTAMPTZ goes through the time-zone library (about 0.6 s per 10 million rows
    on one core); the epoch microseconds are the same instant, at a tenth of the cost.
    """
    upper = duck_type.upper()
    if upper == "TIMESTAMP":
        return expression
    if upper == "TIMESTAMP WITH TIME ZONE":
        return (
            f"CASE WHEN isfinite({expression}) THEN make_timestamp(epoch_us({expression})) "
            f"ELSE CAST({expression} AS TIMESTAMP) END"
        )
    return f"CAST({expression} AS TIMESTAMP)"


def _check_columns(
    connection: duckdb.DuckDBPyConnection, sql: str, version: ViewVersion, where: str
) -> dict[str, str]:
    definition = version.definition
    columns = _columns(connection, sql)
    what = "the transform's output" if definition.get("transform") else "the source"
    _require(
        columns,
        [*definition["join_keys"], definition["timestamp_field"], *definition["features"]],
        where,
        what,
    )
    _check_time(columns, definition["timestamp_field"], where)
    return {k: v for k, v in columns.items() if not k.startswith("__fm_")}


def _has_ties(
    connection: duckdb.DuckDBPyConnection, ordered_sql: str, version: ViewVersion
) -> bool:
    """Whether two rows share keys and time (then the last in the source must win).

    Compares the time as stored (``__fm_time``): converting 10 million times first
    would double the cost of a check that reads the whole source.
    """
    keys = ", ".join(quote(k) for k in version.join_keys)
    found = connection.sql(
        f"SELECT count(*) - count(DISTINCT ({keys}, __fm_time)) FROM ({ordered_sql})"
    ).fetchall()
    return bool(found[0][0])


def _apply_transform(
    connection: duckdb.DuckDBPyConnection, sql: str, transform: Transform, where: str
) -> Path:
    """Stream the source through the transform into a Parquet file, in source order."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    target = _cache_dir() / f".transform-{os.getpid()}-{id(transform)}.parquet"
    ordered = (
        f"SELECT * EXCLUDE (__fm_file, __fm_rownum) FROM ({sql}) ORDER BY __fm_file, __fm_rownum"
    )
    reader = connection.sql(ordered).to_arrow_reader(_BATCH_ROWS)
    writer: pq.ParquetWriter | None = None
    offset = 0
    try:
        for batch in reader:
            output = _run_transform(transform, batch, where)
            numbers = pa.array(range(offset, offset + output.num_rows), pa.int64())
            output = output.append_column("__fm_rownum", numbers)
            offset += output.num_rows
            if writer is None:
                writer = pq.ParquetWriter(target, output.schema, compression="zstd")
            elif output.schema != writer.schema:
                try:
                    output = output.cast(writer.schema)
                except (pa.ArrowInvalid, ValueError) as exc:
                    raise DataSourceError(
                        f"{where}: the transform returned different columns or types for "
                        f"different batches ({exc})"
                    ) from exc
            writer.write_table(output)
        if writer is None:
            raise DataSourceError(f"{where}: the source has no rows")
    except BaseException:
        if writer is not None:
            writer.close()
        target.unlink(missing_ok=True)
        raise
    writer.close()
    return target


def _build(
    connection: duckdb.DuckDBPyConnection,
    sql: str,
    version: ViewVersion,
    path: Path,
    types: dict[str, str],
) -> None:
    """Rows with ties settled (the last in source order wins), written once to Parquet."""
    definition = version.definition
    keys: list[str] = list(definition["join_keys"])
    ts: str = definition["timestamp_field"]
    key_list = ", ".join(quote(k) for k in keys)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    as_utc = utc_timestamp(quote(ts), types[ts])
    query = (
        f"SELECT * EXCLUDE (__fm_file, __fm_rownum), 0 AS __fm_rownum FROM ({sql}) "
        f"QUALIFY row_number() OVER (PARTITION BY {key_list}, {as_utc} "
        f"ORDER BY __fm_file DESC, __fm_rownum DESC) = 1"
    )
    try:
        connection.execute(
            f"COPY ({query}) TO {literal(str(tmp))} (FORMAT parquet, COMPRESSION zstd)"
        )
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# -- training frames ------------------------------------------------------------------


def _family(duck_type: str) -> str:
    upper = duck_type.upper()
    if upper in (
        "TINYINT",
        "SMALLINT",
        "INTEGER",
        "BIGINT",
        "HUGEINT",
        "UTINYINT",
        "USMALLINT",
        "UINTEGER",
        "UBIGINT",
    ):
        return "integer"
    if upper.startswith(("VARCHAR", "STRING")):
        return "string"
    if upper.startswith(("TIMESTAMP", "DATE")):
        return "time"
    if upper.startswith(("DOUBLE", "FLOAT", "REAL", "DECIMAL")):
        return "float"
    return upper


def _entity_table(entity_df: Any) -> tuple[pa.Table, str]:
    """The entity rows as Arrow, and which kind of frame to give back."""
    import pyarrow as pa

    from forgeml.data.dataset import Dataset

    if isinstance(entity_df, pa.Table):
        return entity_df, "arrow"
    if isinstance(entity_df, Dataset):
        return entity_df.to_arrow(), "pandas"
    module = type(entity_df).__module__.split(".")[0]
    if module == "pandas":
        return pa.Table.from_pandas(entity_df, preserve_index=False), "pandas"
    if module == "polars":
        return entity_df.to_arrow(), "polars"
    raise InvalidArgumentError(
        f"entity rows must be a pandas or polars DataFrame, an Arrow table or a Dataset, "
        f"not {type(entity_df).__name__}"
    )


def _entity_timestamp(table: pa.Table, timestamp_field: str | None) -> str:
    import pyarrow as pa

    if timestamp_field is not None:
        if timestamp_field not in table.column_names:
            raise InvalidArgumentError(
                f"the entity rows have no column {timestamp_field!r} "
                f"(columns: {', '.join(table.column_names)})"
            )
        kind = table.schema.field(timestamp_field).type
        if not (pa.types.is_timestamp(kind) or pa.types.is_date(kind)):
            raise InvalidArgumentError(
                f"entity column {timestamp_field!r} is {kind}, not a timestamp or date"
            )
        return timestamp_field
    found: list[str] = [
        f.name for f in table.schema if pa.types.is_timestamp(f.type) or pa.types.is_date(f.type)
    ]
    if len(found) != 1:
        raise InvalidArgumentError(
            "say which entity column holds the event time (timestamp_field=...): "
            + (f"found {', '.join(found)}" if found else "no timestamp column found")
        )
    return found[0]


@dataclass(frozen=True)
class FrameLineage:
    views: list[str]
    datasets: list[str]


def training_frame(
    entity_df: Any,
    features: Sequence[Any] | Any,
    *,
    timestamp_field: str | None = None,
    full_names: bool = False,
) -> Any:
    """Point-in-time correct features for each entity row, as of its event time.

    For every row of ``entity_df`` (in order, duplicates kept) and every requested view,
    the row of that view with the same keys and the latest time at or before the
    event time; its features are null when no such row is within the view's TTL.
    ``features`` lists ``"view:feature"``, ``"view:*"`` or view objects. The frame
    comes back as the same kind of table that came in.
    """
    import numpy as np
    import pyarrow as pa

    from forgeml.features.registry import select_features

    selection = select_features(features)
    table, kind = _entity_table(entity_df)
    ts = _entity_timestamp(table, timestamp_field)
    for name in table.column_names:
        if name.startswith("__fm_"):
            raise InvalidArgumentError(f"entity column {name!r}: names starting __fm_ are reserved")
    output_names = _output_names(selection, table.column_names, full_names)
    table = table.append_column("__fm_row", pa.array(np.arange(table.num_rows, dtype=np.int64)))
    connection = _connection()
    lineage = FrameLineage([], [])
    try:
        connection.register("__fm_entities", table)
        entity_types = _columns(connection, "SELECT * FROM __fm_entities")
        joins: list[str] = []
        projections: list[str] = []
        for index, (version, names) in enumerate(selection.batch):
            built = offline_table(version)
            lineage.views.append(version.ref)
            lineage.datasets.extend(d for d in built.datasets if d not in lineage.datasets)
            alias = f"__fm_v{index}"
            keys = version.join_keys
            _check_keys(version, keys, entity_types, built.types)
            inner = built.relation_sql([*keys, "__fm_ts", *names])
            condition = " AND ".join(
                [f"e.{quote(k)} = {alias}.{quote(k)}" for k in keys]
                + [f"e.__fm_event_ts >= {alias}.__fm_ts"]
            )
            joins.append(f"ASOF LEFT JOIN ({inner}) {alias} ON {condition}")
            ttl = version.ttl_seconds
            for name in names:
                expr = f"{alias}.{quote(name)}"
                if ttl is not None:
                    micros = round(ttl * 1_000_000)
                    expr = (
                        f"CASE WHEN {alias}.__fm_ts >= e.__fm_event_ts - "
                        f"to_microseconds({micros}) THEN {expr} END"
                    )
                projections.append(f"{expr} AS {quote(output_names[(version.name, name)])}")
        selected = ", ".join(["e.* EXCLUDE (__fm_row, __fm_event_ts)", *projections])
        query = (
            f"SELECT {selected} FROM (SELECT *, "
            f"{utc_timestamp(quote(ts), entity_types[ts])} AS __fm_event_ts "
            f"FROM __fm_entities) e {' '.join(joins)} ORDER BY e.__fm_row"
        )
        result = connection.sql(query).to_arrow_table()
    finally:
        connection.close()
    result = _apply_on_demand(result, selection, output_names, lineage)
    hidden = [output_names[h] for h in selection.hidden]
    if hidden:
        result = result.drop_columns(hidden)
    _record_lineage(lineage)
    return _convert(result, kind, lineage)


def _check_keys(
    version: ViewVersion, keys: list[str], entity: dict[str, str], offline: dict[str, str]
) -> None:
    for key in keys:
        if key not in entity:
            raise InvalidArgumentError(
                f"feature view {version.ref} joins on {key!r}, which the entity rows lack "
                f"(columns: {', '.join(c for c in entity if not c.startswith('__fm_'))})"
            )
        if _family(entity[key]) != _family(offline[key]):
            raise InvalidArgumentError(
                f"entity column {key!r} is {entity[key]} but feature view {version.ref} keys "
                f"it as {offline[key]}; convert one of them"
            )


def _output_names(
    selection: Any, entity_columns: Sequence[str], full_names: bool
) -> dict[tuple[str, str], str]:
    names: dict[tuple[str, str], str] = {}
    taken = set(entity_columns)
    pairs = [(v.name, f) for v, fs in selection.batch for f in fs] + [
        (v.name, f) for v, fs in selection.on_demand for f in fs
    ]
    for view, feature in pairs:
        name = f"{view}__{feature}" if full_names else feature
        if name in taken:
            raise InvalidArgumentError(
                f"feature {view}:{feature} would be column {name!r}, which "
                + ("the entity rows already have" if name in entity_columns else "another view")
                + " uses; pass full_names=True to name columns view__feature"
            )
        taken.add(name)
        names[(view, feature)] = name
    return names


def _apply_on_demand(
    table: pa.Table,
    selection: Any,
    output_names: dict[tuple[str, str], str],
    lineage: FrameLineage,
) -> pa.Table:
    from forgeml.features.on_demand import compute_on_demand

    for version, names in selection.on_demand:
        lineage.views.append(version.ref)
        computed = compute_on_demand(version, table, output_names, where="training frame")
        for name in names:
            table = table.append_column(output_names[(version.name, name)], computed.column(name))
    return table


def _record_lineage(lineage: FrameLineage) -> None:
    from forgeml.tracking.session import current_run

    run = current_run.get()
    if run is None:
        return
    from forgeml.lineage_graph import record

    for ref in lineage.views:
        record(("feature_view_version", ref), run, "used")


def _convert(table: pa.Table, kind: str, lineage: FrameLineage) -> Any:
    meta = orjson.dumps({"feature_views": lineage.views, "datasets": lineage.datasets})
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), b"forgeml": meta})
    if kind == "arrow":
        return table
    if kind == "polars":
        import polars as pl

        return pl.from_arrow(table)
    frame = table.to_pandas()
    frame.attrs["forgeml"] = {"feature_views": lineage.views, "datasets": lineage.datasets}
    return frame
