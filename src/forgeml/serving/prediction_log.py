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
from collections.abc import Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from forgeml.serving.inputs import Rows
from forgeml.serving.log_encoding import (
    flat_texts,
    flat_values,
    inputs_json,
    json_rows,
    repeat_rows,
    row_texts,
)

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
    """What one request contributes; taken apart by :meth:`PredictionLog.append`."""

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


_PER_REQUEST = (
    "request_id", "at", "deployment", "arm", "model", "version", "latency_ms", "fallback",
    "shadow", "status",
)  # fmt: skip
_per_request = attrgetter(*_PER_REQUEST)


class _Pending:
    """The requests waiting for the next file, one list per field.

    No object made for a request outlives the request here: its values go into these
    lists as numbers and strings, its inputs as a place in the micro-batch's matrix
    (float signatures) or as JSON text. Keeping the requests themselves for the
    seconds between files kept tens of thousands of dicts and lists alive, which the
    garbage collector walked and the writer then freed one by one, holding the
    interpreter lock for tens of milliseconds: that, more than any encoding, was what
    the log cost in tail latency.
    """

    def __init__(self) -> None:
        self.fields: list[tuple[Any, ...]] = []  # _PER_REQUEST of each request
        self.counts: list[int] = []
        self.inputs: list[Any] = []  # a Block, a JSON text, a list of texts, or None
        self.features: list[Any] = []  # JSON text(s) or None
        self.outputs: list[Any] = []  # the one row's output, the rows' list, or None

    def add(self, record: LoggedRequest) -> None:
        rows = record.rows
        count = rows.count
        self.fields.append(_per_request(record))
        self.counts.append(count)
        block = rows.block
        self.inputs.append(
            block if block is not None else row_texts(rows.columns, rows.tensor, count)
        )
        features = record.features
        self.features.append(None if features is None else row_texts(features, None, count))
        outputs = record.outputs
        if outputs is not None:
            outputs = outputs[0] if count == 1 else list(outputs)
        self.outputs.append(outputs)

    def select(self, positions: list[int]) -> _Pending:
        part = _Pending()
        for name in ("fields", "counts", "inputs", "features", "outputs"):
            values = getattr(self, name)
            setattr(part, name, [values[p] for p in positions])
        return part


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
        self._pending = _Pending()
        self._unindexed: list[tuple[str, str, int, float, float, list[str]]] = []
        self._wake = threading.Condition()
        self._lock = threading.Lock()  # the buffer and its counts
        self._stopping = False
        self._thread = threading.Thread(
            target=self._run, name="forgeml-prediction-log", daemon=True
        )
        self._thread.start()

    def append(self, record: LoggedRequest) -> bool:
        """Queue a request's rows; False (and counted) when the buffer is full."""
        rows = record.rows.count
        with self._lock:
            full = self.buffered_rows + rows > self.max_rows
            if full:
                self.dropped_rows += rows
            else:
                self.buffered_rows += rows
                self._pending.add(record)
        if full:
            if self.on_dropped is not None:
                self.on_dropped(rows)
            return False
        if self.buffered_rows >= self.flush_rows:
            with self._wake:
                self._wake.notify()
        return True

    def flush(self) -> None:
        """Write everything buffered now (the writer thread does this on its own, too)."""
        with self._lock:
            pending, self._pending = self._pending, _Pending()
            self.buffered_rows -= sum(pending.counts)
        if pending.counts:
            deployments = [fields[2] for fields in pending.fields]
            names = set(deployments)
            for deployment in sorted(names):
                if len(names) == 1:
                    part = pending
                else:
                    part = pending.select([i for i, d in enumerate(deployments) if d == deployment])
                self._write_or_count(deployment, part)
        self._index()

    def _write_or_count(self, deployment: str, part: _Pending) -> None:
        try:
            self._write(deployment, part)
        except Exception:  # the artifact store failed: these rows are lost, say so
            count = sum(part.counts)
            with self._lock:
                self.dropped_rows += count
            if self.on_dropped is not None:
                self.on_dropped(count)
            log.exception("could not write %d prediction-log rows of %s", count, deployment)

    def _write(self, deployment: str, part: _Pending) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        from forgeml import backend

        counts = part.counts
        single = counts.count(1) == len(counts)
        total = sum(counts)
        per_request = dict(zip(_PER_REQUEST, zip(*part.fields, strict=True), strict=True))
        columns: dict[str, Any] = {
            name: repeat_rows(list(values), counts, single)
            for name, values in per_request.items()
            if name != "deployment"
        }
        columns |= {
            "row": [0] * total if single else [i for count in counts for i in range(count)],
            "deployment": [deployment] * total,
            "inputs": inputs_json(part.inputs, counts),
            "features": pa.array(flat_texts(part.features, counts), pa.string()),
            "output": json_rows(
                [{"": flat_values(part.outputs, counts, single)}], [total], bare=True
            ),
        }
        models = {
            f"{model}/{version}"
            for model, version in set(
                zip(per_request["model"], per_request["version"], strict=True)
            )
            if model is not None
        }
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
        times = per_request["at"]
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
            if self.buffered_rows or self._unindexed:
                self.flush()
            if stopping:
                return

    def close(self) -> None:
        """Write what is buffered and stop the writer."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._thread.join()


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
