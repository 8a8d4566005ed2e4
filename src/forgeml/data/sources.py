"""Where dataset rows come from, read as a stream of Arrow record batches.

Files (CSV, Parquet; one file, a glob or a directory) are read by DuckDB, which streams
them in parallel within a memory limit; in-memory frames and Arrow data are sliced;
SQL sources are fetched through SQLAlchemy in batches. Whatever the source, errors
name the file, the line and the column when the reader knows them.
"""

from __future__ import annotations

import contextlib
import csv
import glob
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forgeml.errors import DataSourceError, InvalidArgumentError

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

BATCH_ROWS = 131_072
# Read as missing in CSV files unless csv={"nullstr": ...} says otherwise (pandas' habit).
NULL_STRINGS = ("", "NA", "N/A", "NULL", "null", "NaN", "nan", "None")
_CSV_SUFFIXES = (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz", ".csv.zst")
_PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")


@dataclass(frozen=True)
class SQL:
    """Rows from a SQL query against any database SQLAlchemy can reach."""

    query: str
    url: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Opened:
    reader: pa.RecordBatchReader
    description: dict[str, Any]


def duckdb_connection(memory_limit: str = "512MB") -> duckdb.DuckDBPyConnection:
    """An in-process DuckDB with a memory ceiling; it spills to disk rather than grow."""
    import tempfile

    import duckdb

    spill = Path(tempfile.gettempdir()) / "forgeml-duckdb"
    spill.mkdir(parents=True, exist_ok=True)
    connection = duckdb.connect(config={"memory_limit": memory_limit, "temp_directory": str(spill)})
    connection.execute("SET preserve_insertion_order = true")  # same input, same row order
    return connection


def first_row(connection: duckdb.DuckDBPyConnection, sql: str) -> tuple[Any, ...] | None:
    """The first row of a query (aggregates have exactly one), fully consumed."""
    rows = connection.sql(sql).limit(1).fetchall()
    return rows[0] if rows else None


def _kind(path: str) -> str:
    lowered = path.lower()
    if lowered.endswith(_PARQUET_SUFFIXES):
        return "parquet"
    if lowered.endswith(_CSV_SUFFIXES) or lowered.endswith(".zip"):
        return "csv"  # a .zip holds CSV members; they are unpacked before reading
    raise InvalidArgumentError(
        f"{path}: unknown file type (expected .csv, .tsv, .parquet, optionally compressed)"
    )


def expand_files(location: str | Path) -> list[str]:
    """One file, every file a glob matches, or the data files of a directory, sorted."""
    text = str(location)
    path = Path(text).expanduser()
    if path.is_dir():
        files = sorted(
            str(p)
            for p in path.rglob("*")
            if p.is_file() and p.name.lower().endswith(_CSV_SUFFIXES + _PARQUET_SUFFIXES)
        )
        if not files:
            raise DataSourceError(f"{path}: the directory holds no .csv or .parquet files")
        return files
    if any(char in text for char in "*?["):
        files = sorted(glob.glob(str(path), recursive=True))  # noqa: PTH207 - patterns with **
        if not files:
            raise DataSourceError(f"{text}: the pattern matches no file")
        return files
    if not path.exists():
        raise DataSourceError(f"{path}: no such file")
    if not path.is_file():
        raise DataSourceError(f"{path}: not a regular file")
    return [str(path)]


@contextlib.contextmanager
def open_source(
    source: Any,
    *,
    types: Mapping[str, str] | None = None,
    csv_options: Mapping[str, Any] | None = None,
) -> Iterator[Opened]:
    """Open ``source`` as a record-batch stream, with a description to store as provenance."""
    import pyarrow as pa

    if isinstance(source, SQL):
        with _open_sql(source) as opened:
            yield opened
        return
    if isinstance(source, str | Path):
        files = expand_files(source)
        kinds = {_kind(f) for f in files}
        if len(kinds) > 1:
            raise DataSourceError(f"{source}: mixes CSV and Parquet files; ingest them separately")
        kind = kinds.pop()
        with _open_files(files, kind, types, csv_options) as opened:
            yield opened
        return
    table = _as_arrow(source)
    if isinstance(table, pa.RecordBatchReader):
        yield Opened(table, {"kind": "arrow_stream"})
        return
    description = {"kind": type(source).__module__.split(".")[0] + "." + type(source).__name__}
    yield Opened(table.to_reader(max_chunksize=BATCH_ROWS), description)


def _as_arrow(source: Any) -> pa.Table | pa.RecordBatchReader:
    import pyarrow as pa

    if isinstance(source, pa.Table | pa.RecordBatchReader):
        return source
    if isinstance(source, pa.RecordBatch):
        return pa.Table.from_batches([source])
    module = type(source).__module__
    if module.startswith("pandas"):
        import pandas as pd

        if isinstance(source, pd.DataFrame):
            try:
                return pa.Table.from_pandas(source, preserve_index=False)
            except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                parts = [str(a) for a in exc.args] or [str(exc)]
                column = re.search(r"Conversion failed for column (.+?) with type", " ".join(parts))
                where = f"DataFrame column {column.group(1)!r}" if column else "DataFrame"
                reason = parts[0] if column else " ".join(parts)
                raise DataSourceError(f"{where}: {reason} (mixed types in one column?)") from None
    if module.startswith("polars"):
        return source.to_arrow()
    raise InvalidArgumentError(
        f"cannot ingest a {type(source).__name__}: give a pandas or polars DataFrame, an Arrow "
        "table, a CSV or Parquet path (file, glob or directory), or fm.data.SQL(query, url)"
    )


def _sql_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


@contextlib.contextmanager
def _open_files(
    files: list[str],
    kind: str,
    types: Mapping[str, str] | None,
    csv_options: Mapping[str, Any] | None,
) -> Iterator[Opened]:
    import duckdb

    with contextlib.ExitStack() as stack:
        shown: dict[str, str] = {}  # unpacked path -> "archive.zip:member.csv" for messages
        readable = []
        for name in files:
            if name.lower().endswith(".zip"):
                for member, label in _unzip(name, stack):
                    readable.append(member)
                    shown[member] = label
            else:
                readable.append(name)
        with _read_files(readable, files, shown, kind, types, csv_options, duckdb) as opened:
            yield opened


def _unzip(path: str, stack: contextlib.ExitStack) -> list[tuple[str, str]]:
    """Unpack the CSV members of a zip archive into a temporary directory, streaming."""
    import shutil
    import tempfile
    import zipfile

    try:
        archive = stack.enter_context(zipfile.ZipFile(path))
    except zipfile.BadZipFile:
        raise DataSourceError(f"{path}: not a readable zip archive") from None
    directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="forgeml-unzip-")))
    members = [
        m
        for m in archive.infolist()
        if not m.is_dir() and m.filename.lower().endswith(_CSV_SUFFIXES)
    ]
    if not members:
        raise DataSourceError(f"{path}: the archive holds no .csv file")
    unpacked = []
    for index, member in enumerate(members):
        target = directory / f"{index:04d}-{Path(member.filename).name}"
        with archive.open(member) as source, open(target, "wb") as sink:
            shutil.copyfileobj(source, sink, 1 << 20)
        unpacked.append((str(target), f"{path}:{member.filename}"))
    return unpacked


@contextlib.contextmanager
def _read_files(
    files: list[str],
    originals: list[str],
    shown: dict[str, str],
    kind: str,
    types: Mapping[str, str] | None,
    csv_options: Mapping[str, Any] | None,
    duckdb: Any,
) -> Iterator[Opened]:
    connection = duckdb_connection()
    file_list = "[" + ", ".join(_sql_literal(f) for f in files) + "]"
    options = dict(csv_options or {})
    if kind == "csv":
        options.setdefault("nullstr", list(NULL_STRINGS))
        if types:
            options["types"] = dict(types)
        arguments = "".join(f", {key} = {_duckdb_value(value)}" for key, value in options.items())
        query = f"SELECT * FROM read_csv({file_list}{arguments})"
    else:
        if types or options:
            raise InvalidArgumentError("types= and csv= apply to CSV files only")
        query = f"SELECT * FROM read_parquet({file_list})"
    description: dict[str, Any] = {"kind": kind, "files": originals}
    if options:
        description["options"] = dict(options)
    try:
        try:
            relation = connection.sql(query)
            if kind == "csv" and "delim" not in options:
                _refuse_collapsed_columns(relation.columns, files, originals)
            reader = relation.to_arrow_reader(BATCH_ROWS)
        except duckdb.Error as exc:
            raise describe_file_error(exc, originals, kind, shown) from None
        yield Opened(_guard(reader, originals, kind, shown), description)
    finally:
        connection.close()


def _refuse_collapsed_columns(columns: list[str], files: list[str], originals: list[str]) -> None:
    """A file read as one column named like "a,b,c": the layout was not recognised,
    usually because some row has a different number of fields. Say which row."""
    if len(columns) != 1:
        return
    for delimiter in (",", ";", "\t", "|"):
        if delimiter in columns[0]:
            ragged = _first_ragged_line(files, delimiter, dict(zip(files, originals, strict=False)))
            raise ragged or DataSourceError(
                f"{originals[0]}: every row was read as one field; give the delimiter with "
                f"csv={{'delim': {delimiter!r}}}"
            )


def _duckdb_value(value: Any) -> str:
    if isinstance(value, Mapping):
        inner = ", ".join(f"{_sql_literal(k)}: {_duckdb_value(v)}" for k, v in value.items())
        return "{" + inner + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_duckdb_value(v) for v in value) + "]"
    return _sql_literal(value)


def _guard(
    reader: pa.RecordBatchReader, files: list[str], kind: str, shown: dict[str, str]
) -> pa.RecordBatchReader:
    """The same stream, with reader errors turned into messages naming file, line, column."""
    import duckdb
    import pyarrow as pa

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            yield from reader
        except (duckdb.Error, OSError, pa.ArrowException) as exc:
            raise describe_file_error(exc, files, kind, shown) from None

    return pa.RecordBatchReader.from_batches(reader.schema, batches())


_LINE = re.compile(r"CSV Error on Line: (\d+)")
_COLUMN = re.compile(
    r'converting column "([^"]+)"\. Could not convert string "([^"]*)" to \'([^\']+)\''
)
_FIELDS = re.compile(r"Expected Number of Columns: (\d+) Found: (\d+)")
_ORIGINAL = re.compile(r"Original Line: (.*)")
_FILE = re.compile(r"file = (\S+)")


def describe_file_error(
    exc: BaseException, files: list[str], kind: str, shown: Mapping[str, str] | None = None
) -> DataSourceError:
    """One line naming the file, the line and the column for a reader error."""
    text = str(exc)
    for unpacked, label in (shown or {}).items():
        text = text.replace(unpacked, label)
    file_match = _FILE.search(text)
    where = (
        file_match.group(1)
        if file_match
        else (files[0] if len(files) == 1 else f"{len(files)} files")
    )
    line = _LINE.search(text)
    at = f"{where}, line {line.group(1)}" if line else where
    if (conversion := _COLUMN.search(text)) is not None:
        column, value, target = conversion.groups()
        hint = (
            ""
            if "manually set" in text
            else (
                " (the type was detected from the first rows; pass "
                f"types={{{column!r}: 'VARCHAR'}} to read it as text)"
            )
        )
        return DataSourceError(f'{at}, column "{column}": cannot read {value!r} as {target}{hint}')
    if (fields := _FIELDS.search(text)) is not None:
        original = _ORIGINAL.search(text)
        quoted = f" in {original.group(1)!r}" if original else ""
        return DataSourceError(
            f"{at}: expected {fields.group(1)} fields, found {fields.group(2)}{quoted}"
        )
    if "Error when sniffing file" in text and kind == "csv":
        return _first_ragged_line(files) or DataSourceError(
            f"{where}: cannot detect the CSV layout (give csv={{'delim': ',', 'header': True}})"
        )
    if kind == "parquet" and ("Parquet" in text or "parquet" in text or "magic" in text):
        return DataSourceError(f"{where}: not a readable Parquet file ({text.splitlines()[0]})")
    return DataSourceError(f"{at}: {' '.join(text.splitlines()[0].split())}")


def _first_ragged_line(
    files: list[str], delimiter: str = ",", labels: Mapping[str, str] | None = None
) -> DataSourceError | None:
    """Find the first row whose field count differs from the header's (plain text CSV)."""
    for name in files:
        if name.lower().endswith((".gz", ".zst", ".zip")):
            continue
        with open(name, newline="", encoding="utf-8", errors="replace") as handle:
            rows = csv.reader(handle, delimiter=delimiter)
            header = next(rows, None)
            if header is None:
                continue
            for number, row in enumerate(rows, start=2):
                if row and len(row) != len(header):
                    shown = (labels or {}).get(name, name)
                    return DataSourceError(
                        f"{shown}, line {number}: expected {len(header)} fields "
                        f"({', '.join(header[:6])}{', ...' if len(header) > 6 else ''}), "
                        f"found {len(row)}"
                    )
    return None


@contextlib.contextmanager
def _open_sql(source: SQL) -> Iterator[Opened]:
    """Stream a query's rows through SQLAlchemy in batches; the URL's password is not kept."""
    import pyarrow as pa
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

    try:
        url = make_url(source.url)
        engine = create_engine(url)
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        raise DataSourceError(f"SQL source {source.url!r}: {exc}") from None
    shown = url.render_as_string(hide_password=True)
    description = {"kind": "sql", "url": shown, "query": source.query}
    try:
        with engine.connect() as conn:
            try:
                result = conn.execution_options(stream_results=True, yield_per=BATCH_ROWS).execute(
                    text(source.query), dict(source.params)
                )
            except SQLAlchemyError as exc:
                reason = " ".join(str(getattr(exc, "orig", exc)).split())
                raise DataSourceError(f"SQL source {shown}: {reason}") from None
            names = list(result.keys())

            def batches() -> Iterator[pa.RecordBatch]:
                try:
                    for chunk in result.partitions():
                        columns: list[Any] = list(zip(*chunk, strict=True))
                        yield pa.RecordBatch.from_arrays(
                            [pa.array(list(values)) for values in columns], names=names
                        )
                except SQLAlchemyError as exc:
                    raise DataSourceError(f"SQL source {shown}: {exc}") from None

            stream = batches()
            first = next(stream, None)
            if first is None:
                raise DataSourceError(f"SQL source {shown}: the query returned no rows")

            def all_batches() -> Iterator[pa.RecordBatch]:
                yield first
                for batch in stream:
                    yield batch.cast(first.schema) if batch.schema != first.schema else batch

            yield Opened(
                pa.RecordBatchReader.from_batches(first.schema, all_batches()), description
            )
    except SQLAlchemyError as exc:
        reason = " ".join(str(getattr(exc, "orig", exc)).split())
        raise DataSourceError(f"SQL source {shown}: {reason}") from None
    finally:
        engine.dispose()
