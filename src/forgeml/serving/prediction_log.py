"""The prediction log: every scored row, written in the background for monitoring.

A request hands its record to a bounded in-memory buffer and moves on; a writer thread
turns the buffer into one Parquet file per deployment every ``flush_seconds`` (or
sooner when ``flush_rows`` are waiting), puts it in the artifact store and indexes it
in the metadata store. When the buffer is full, records are dropped and counted,
never blocking a request. If the database is down, written files wait in memory to be
indexed on a later flush; nothing already written is lost.
"""

from __future__ import annotations

import io
import logging
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain, repeat
from operator import attrgetter, itemgetter
from typing import Any

import orjson

from forgeml.serving.inputs import Rows

log = logging.getLogger("forgeml.serving")

SCHEMA_FIELDS = (
    "request_id", "row", "at", "deployment", "arm", "model", "version", "inputs",
    "features", "output", "latency_ms", "fallback", "shadow", "status",
)  # fmt: skip


def log_schema() -> Any:
    """The Arrow schema of prediction-log files: what monitoring reads.

    ``arm`` is the arm a request was routed to (champion or challenger); ``model`` and
    ``version`` name who answered it, which is the fallback model when ``fallback`` is
    true. A canary's failures therefore stay the canary's even when a fallback covered
    for them.
    """
    import pyarrow as pa

    return pa.schema(
        [
            ("request_id", pa.string()),
            ("row", pa.int32()),
            ("at", pa.float64()),
            ("deployment", pa.string()),
            ("arm", pa.string()),
            ("model", pa.string()),
            ("version", pa.int32()),
            ("inputs", pa.string()),
            ("features", pa.string()),
            ("output", pa.string()),
            ("latency_ms", pa.float64()),
            ("fallback", pa.bool_()),
            ("shadow", pa.bool_()),
            ("status", pa.int16()),
        ]
    )


@dataclass
class LoggedRequest:
    """What one request contributes: rows are expanded only in the writer thread."""

    request_id: str
    at: float
    deployment: str
    arm: str
    model: str | None
    version: int | None
    rows: Rows
    features: dict[str, list[Any]] | None
    outputs: Sequence[Any] | None
    latency_ms: float
    fallback: bool
    shadow: bool
    status: int


class PredictionLog:
    def __init__(
        self,
        *,
        max_rows: int = 200_000,
        flush_rows: int = 20_000,
        flush_seconds: float = 2.0,
        on_written: Any = None,
        on_dropped: Any = None,
    ) -> None:
        self.max_rows = max_rows
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.on_written = on_written
        self.on_dropped = on_dropped
        self.buffered_rows = 0
        self.dropped_rows = 0
        self.written_rows = 0
        self._buffer: deque[LoggedRequest] = deque()
        self._unindexed: list[tuple[str, str, int, float, float, list[str]]] = []
        self._wake = threading.Condition()
        self._count_lock = threading.Lock()
        self._stopping = False
        self._thread = threading.Thread(
            target=self._run, name="forgeml-prediction-log", daemon=True
        )
        self._thread.start()

    def append(self, record: LoggedRequest) -> bool:
        """Queue a request's rows; False (and counted) when the buffer is full."""
        rows = record.rows.count
        with self._count_lock:
            full = self.buffered_rows + rows > self.max_rows
            if full:
                self.dropped_rows += rows
            else:
                self.buffered_rows += rows
        if full:
            if self.on_dropped is not None:
                self.on_dropped(rows)
            return False
        self._buffer.append(record)
        if self.buffered_rows >= self.flush_rows:
            with self._wake:
                self._wake.notify()
        return True

    def flush(self) -> None:
        """Write everything buffered now (the writer thread does this on its own, too)."""
        records: list[LoggedRequest] = []
        while self._buffer:
            records.append(self._buffer.popleft())
        with self._count_lock:
            self.buffered_rows -= sum(record.rows.count for record in records)
        by_deployment: dict[str, list[LoggedRequest]] = {}
        for record in records:
            by_deployment.setdefault(record.deployment, []).append(record)
        for deployment, group in by_deployment.items():
            try:
                self._write(deployment, group)
            except Exception:  # the artifact store failed: these rows are lost, say so
                count = sum(r.rows.count for r in group)
                with self._count_lock:
                    self.dropped_rows += count
                if self.on_dropped is not None:
                    self.on_dropped(count)
                log.exception("could not write %d prediction-log rows of %s", count, deployment)
        self._index()

    def _write(self, deployment: str, records: list[LoggedRequest]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        from forgeml import backend

        counts = [record.rows.count for record in records]
        # One pass in C over the records for the per-request fields, not one per field.
        fields = zip(*map(_per_request, records), strict=True)
        per_request = dict(zip(_PER_REQUEST, fields, strict=True))
        columns: dict[str, Any] = {
            name: _repeat(list(per_request[name]), counts) for name in _PER_REQUEST[:5]
        }
        columns |= {
            "row": [index for count in counts for index in range(count)],
            "deployment": [deployment] * sum(counts),
            "inputs": _inputs_json(records, counts),
            "features": _json_rows([r.features for r in records], counts),
            "output": _json_rows(
                [None if r.outputs is None else {"": list(r.outputs)} for r in records],
                counts,
                bare=True,
            ),
        }
        columns |= {name: _repeat(list(per_request[name]), counts) for name in _PER_REQUEST[5:]}
        models = {f"{r.model}/{r.version}" for r in records if r.model is not None}
        schema = log_schema()
        table = pa.table(
            {
                name: values
                if isinstance(values, pa.Array)
                else pa.array(values, schema.field(name).type)
                for name, values in columns.items()
            },
            schema=schema,
        )
        sink = io.BytesIO()
        pq.write_table(table, sink, compression="zstd")
        blob = backend.artifact_store().put_bytes(sink.getvalue())
        times = columns["at"]
        self._unindexed.append(
            (deployment, blob.digest, table.num_rows, min(times), max(times), sorted(models))
        )
        self.written_rows += table.num_rows
        if self.on_written is not None:
            self.on_written(table.num_rows)

    def _index(self) -> None:
        from forgeml import backend

        while self._unindexed:
            entry = self._unindexed[0]
            try:
                backend.deployments().add_log_file(*entry)
            except Exception as exc:  # the database is down: keep it for the next flush
                log.warning("prediction-log file %s not indexed yet: %s", entry[1][:12], exc)
                return
            self._unindexed.pop(0)

    def _run(self) -> None:
        while True:
            with self._wake:
                if not self._stopping and self.buffered_rows < self.flush_rows:
                    self._wake.wait(self.flush_seconds)
                stopping = self._stopping
            if self._buffer or self._unindexed:
                self.flush()
            if stopping:
                return

    def close(self) -> None:
        """Write what is buffered and stop the writer."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._thread.join()


_PER_REQUEST = (
    "request_id", "at", "arm", "model", "version", "latency_ms", "fallback", "shadow", "status",
)  # fmt: skip
_per_request = attrgetter(*_PER_REQUEST)


def _repeat(values: list[Any], counts: list[int]) -> list[Any]:
    """Each request's value once per row it carried (one-row requests: the list itself)."""
    if all(count == 1 for count in counts):
        return values
    return list(chain.from_iterable(map(repeat, values, counts)))


def _inputs_json(records: list[LoggedRequest], counts: list[int]) -> Any:
    """The ``inputs`` column. Requests scored from a float matrix (the common case of a
    float signature) are taken from the micro-batches' matrices, the others (refused,
    extra fields, other types) from their own values; then put back in request order."""
    import numpy as np
    import pyarrow as pa

    groups: dict[tuple[str, ...] | None, list[int]] = {}
    for position, record in enumerate(records):
        block = record.rows.block
        groups.setdefault(None if block is None else block[0], []).append(position)
    if list(groups) == [None]:
        return _json_rows([_input_columns(r.rows) for r in records], counts)
    pieces = []
    order: list[Any] = []
    single_rows = all(count == 1 for count in counts)
    starts = np.cumsum([0, *counts])
    for names, positions in groups.items():
        chosen = [records[p] for p in positions]
        sizes = [counts[p] for p in positions]
        encoded = None
        if names is not None:
            matrix = _rows_of_blocks([r.rows.block for r in chosen], sizes)  # type: ignore[misc]
            arrays = [pa.array(column, from_pandas=True) for column in matrix]  # NaN: null
            encoded = _json_of_arrays(arrays, names, bare=False)
        if encoded is None:
            encoded = _json_rows([_input_columns(r.rows) for r in chosen], sizes)
        pieces.append(encoded)
        if single_rows:
            order.append(np.asarray(positions, np.int64))
        else:
            order.extend(np.arange(starts[p], starts[p] + counts[p]) for p in positions)
    if len(pieces) == 1:
        return pieces[0]
    where = np.empty(int(starts[-1]), np.int64)  # row k of the pieces goes to order[k]
    where[np.concatenate(order)] = np.arange(int(starts[-1]))
    return pa.concat_arrays(pieces).take(pa.array(where))


def _rows_of_blocks(blocks: list[tuple[tuple[str, ...], Any, int]], counts: list[int]) -> Any:
    """The logged rows as one column-major matrix, taken from the batches' matrices."""
    import numpy as np

    bases: dict[int, int] = {}
    matrices = []
    total = 0
    for _names, matrix, _start in blocks:
        if id(matrix) not in bases:
            bases[id(matrix)] = total
            matrices.append(matrix)
            total += len(matrix)
    firsts = np.fromiter(
        (bases[id(matrix)] + start for _names, matrix, start in blocks), np.int64, len(blocks)
    )
    if all(count == 1 for count in counts):
        index = firsts
    else:
        sizes = np.asarray(counts, np.int64)
        ends = np.cumsum(sizes)
        index = np.repeat(firsts - (ends - sizes), sizes) + np.arange(int(ends[-1]))
    stacked = matrices[0] if len(matrices) == 1 else np.concatenate(matrices)
    return np.ascontiguousarray(stacked[index].T)


def _input_columns(rows: Rows) -> dict[str, list[Any]] | None:
    if rows.columns is not None:
        return rows.columns
    assert rows.tensor is not None
    return {"": rows.tensor.tolist()}


def _json_rows(
    parts: list[dict[str, list[Any]] | None], counts: list[int], bare: bool = False
) -> Any:
    """One JSON text per row, as an Arrow string array: an object of the part's columns,
    or the value itself (``bare``).

    Encoding row by row in Python held the interpreter lock for microseconds a row, and
    at thousands of rows a second that starved the model thread of the same process.
    When every part has the same columns and Arrow can type them, the texts come from
    DuckDB's ``to_json``, which runs without the lock; otherwise, row by row.
    """
    import pyarrow as pa

    present = [p for p in parts if p is not None]
    if not present:
        return pa.nulls(sum(counts), pa.string())
    names = list(present[0])
    if len(present) == len(parts) and all(list(p) == names for p in present):
        encoded = _json_by_duckdb(parts, names, bare or names == [""])
        if encoded is not None:
            return encoded
    texts: list[str | None] = []
    for part, count in zip(parts, counts, strict=True):
        if part is None:
            texts.extend([None] * count)
        elif bare or list(part) == [""]:
            texts.extend(_json(value) for value in part[next(iter(part))])
        else:
            keys = list(part)
            texts.extend(
                _json(dict(zip(keys, values, strict=True)))
                for values in zip(*part.values(), strict=True)
            )
    return pa.array(texts, pa.string())


_DUCKDB: Any = None  # one in-memory connection for every flush: opening one takes ~20 ms
_DUCKDB_LOCK = threading.Lock()


def _json_by_duckdb(parts: list[dict[str, list[Any]] | None], names: list[str], bare: bool) -> Any:

    arrays = []
    for name in names:
        array = _arrow(list(chain.from_iterable(map(itemgetter(name), parts))))  # type: ignore[arg-type]
        if array is None:
            return None
        arrays.append(array)
    return _json_of_arrays(arrays, names, bare)


def _json_of_arrays(arrays: list[Any], names: Sequence[str], bare: bool) -> Any:
    """``to_json`` of each row of the columns ``arrays`` (or of the single value: ``bare``)."""
    global _DUCKDB
    import duckdb
    import pyarrow as pa

    table = pa.table({f"c{position}": array for position, array in enumerate(arrays)})
    fields = ", ".join(f"{_sql_text(name)}: c{position}" for position, name in enumerate(names))
    expression = "to_json(c0)" if bare else f"to_json({{{fields}}})"
    with _DUCKDB_LOCK:
        if _DUCKDB is None:  # one thread: the CPUs are the model's and the event loop's
            _DUCKDB = duckdb.connect(config={"threads": 1})
        try:
            _DUCKDB.register("log_rows", table)
            result = _DUCKDB.sql(f"SELECT {expression} FROM log_rows").to_arrow_table()
        except duckdb.Error:
            return None
        finally:
            _DUCKDB.unregister("log_rows")
    return result.column(0).combine_chunks().cast(pa.string())


def _arrow(values: list[Any]) -> Any:
    """An Arrow array of ``values``, NaN as null (JSON has none); None if Arrow cannot type it.

    Numbers go through numpy, ten times faster than Arrow's reading of Python objects.
    """
    import numpy as np
    import pyarrow as pa

    try:
        numbers = np.asarray(values)
    except (ValueError, TypeError, OverflowError):
        numbers = None
    if numbers is not None and numbers.ndim == 1 and numbers.dtype.kind in "fib":
        return pa.array(numbers, from_pandas=True)
    try:
        return pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        return None


def _sql_text(name: str) -> str:
    """A column name as a DuckDB struct key: a quoted identifier."""
    return '"' + name.replace('"', '""') + '"'


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS).decode()


def predictions(deployment: str, since: float | None = None, until: float | None = None) -> Any:
    """Logged rows of ``deployment`` made in [since, until], as one Arrow table."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from forgeml import backend

    store = backend.artifact_store()
    tables = []
    for entry in backend.deployments().log_files(deployment, since, until):
        tables.append(pq.read_table(io.BytesIO(store.read_bytes(entry.digest))))
    if not tables:
        return log_schema().empty_table()
    table = pa.concat_tables(tables)
    mask = None
    if since is not None:
        mask = pc.greater_equal(table["at"], since)
    if until is not None:
        upper = pc.less_equal(table["at"], until)
        mask = upper if mask is None else pc.and_(mask, upper)
    if mask is not None:
        table = table.filter(mask)
    return table.sort_by([("at", "ascending"), ("request_id", "ascending"), ("row", "ascending")])
