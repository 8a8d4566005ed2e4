"""Batch scoring: a registered model over a table too big for memory, into one Parquet file.

import forgeml as fm
done = fm.serving.predict_batch("models:/churn@champion", "customers/", "scores.parquet",
                                keep=["customer_id"], workers=2)
print(done.rows, done.seconds, done.version)          # or: forgeml predict ...

The input streams through in chunks of ``chunk_rows``; the model sees each chunk as the
model server would build it (signature order and types), the answers are appended to the
output in input order, and the output appears only once complete. Before the first row
is scored, every file's schema is checked against the model's signature, so a wrong file
fails at once, not after an hour. The job is recorded as a ``batch_prediction`` event and
as a lineage edge from the model version (and the dataset version it read) to the output.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forgeml.errors import InvalidArgumentError
from forgeml.serving.batch_convert import check_schema, tensor_columns
from forgeml.serving.batch_io import (
    BatchInput,
    ParquetOutput,
    fragment_schemas,
    metadata_text,
    open_input,
)
from forgeml.serving.batch_workers import (
    Chunk,
    ChunkScorer,
    LocalProcesses,
    ScoringJob,
    start_scorers,
)
from forgeml.serving.inputs import InputSchema
from forgeml.serving.runtime import ResolvedModel, resolve
from forgeml.serving.spec import METHODS

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger("forgeml.serving")

EVENT_KIND = "batch_prediction"
DEFAULT_CHUNK_ROWS = 100_000
Progress = Callable[[int, "int | None"], None]  # (rows written, total rows when known)


@dataclass(frozen=True)
class BatchPrediction:
    """What a batch scoring job did: which model, how many rows, how fast, written where."""

    model: str
    version: int
    digest: str
    input: str
    output: Path
    rows: int
    seconds: float
    method: str
    columns: tuple[str, ...]
    workers: int
    executor: str
    event_id: int

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["output"] = str(self.output)
        data["columns"] = list(self.columns)
        data["rows_per_second"] = round(self.rows_per_second, 1)
        return data


def predict_batch(
    model: str,
    input: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    method: str = "predict",
    keep: Sequence[str] = (),
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    workers: int = 1,
    executor: str | None = None,
    progress: Progress | None = None,
) -> BatchPrediction:
    """Score every row of ``input`` with ``model`` into the Parquet file ``output``.

    ``input`` is a Parquet file, a directory or glob of them, a CSV file, or
    ``datasets:/NAME[/VERSION]``. ``keep`` names input columns copied beside the answers
    (an id, say). ``workers`` above 1 scores in that many local processes; on Ray
    (``executor="ray"`` or ``ray://HOST:PORT``, by default the ``executor`` setting the
    pipelines use) in that many actors. ``progress(done, total)`` is called after each
    chunk is written. A failure leaves no output and an existing ``output`` unchanged.
    """
    import pyarrow as pa

    from forgeml import config

    _check_options(method, keep, chunk_rows, workers)
    chosen = config.normalize_executor(
        "executor", executor or config.settings().executor, "batch scoring"
    )
    resolved = resolve(model)
    inputs = InputSchema(_signature(resolved).get("inputs"))
    opened = open_input(input)
    keep = list(dict.fromkeys(keep))
    features = _check_input(opened, inputs, keep, resolved)
    tensor = tuple(features) if inputs.kind == "tensor" else ()
    read = list(dict.fromkeys(features + keep))
    job = ScoringJob(
        resolved,
        method,
        opened.description,
        tensor,
        tuple(keep),
        tuple(features),
        pa.schema([opened.schema.field(name) for name in read]),
        chunk_rows,
    )
    metadata = {
        "model": resolved.name,
        "model_version": resolved.version,
        "model_digest": resolved.digest,
        "model_uri": resolved.uri,
        "method": method,
        "input": opened.description,
    }
    target = ParquetOutput(output, metadata_text(metadata))
    started = time.perf_counter()
    if progress is not None:
        progress(0, opened.total_rows)
    scorers = start_scorers(job, workers, chosen)
    try:
        # Local workers read their own row groups of a Parquet input; others get chunks.
        if isinstance(scorers, LocalProcesses) and (parts := opened.parts(chunk_rows)):
            stream = scorers.map_parts(parts)
        else:
            stream = scorers.map(_chunks(opened, features, keep, chunk_rows))
        columns = _run(stream, keep, target, opened.total_rows, progress)
        if target.writer is None:  # no rows: the columns still say what would be there
            answers = ChunkScorer(job).empty_answers()
            target.write(_empty(opened.schema, keep, answers))
            columns = tuple(answers.column_names)
        seconds = time.perf_counter() - started
        target.commit(metadata_text({"rows": target.rows, "seconds": round(seconds, 3)}))
    except BaseException:
        target.abort()
        raise
    finally:
        scorers.close()
    done = BatchPrediction(
        model=resolved.name,
        version=resolved.version,
        digest=resolved.digest,
        input=opened.description,
        output=target.target,
        rows=target.rows,
        seconds=seconds,
        method=method,
        columns=columns,
        workers=workers,
        executor=chosen if chosen != "local" else ("in-process" if workers == 1 else "processes"),
        event_id=0,
    )
    done = _record(done, opened)
    log.info(
        "scored %d rows of %s with %s in %.1f s -> %s",
        done.rows,
        done.input,
        resolved.label,
        done.seconds,
        done.output,
    )
    return done


def _check_options(method: str, keep: Sequence[str], chunk_rows: int, workers: int) -> None:
    if method not in METHODS:
        raise InvalidArgumentError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if isinstance(keep, str) or not all(isinstance(k, str) and k for k in keep):
        raise InvalidArgumentError(f"keep must be a list of column names, got {keep!r}")
    for name, value in (("chunk_rows", chunk_rows), ("workers", workers)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidArgumentError(f"{name} must be a whole number >= 1, got {value!r}")


def _signature(resolved: ResolvedModel) -> dict[str, Any]:
    """The version's signature from its manifest, without loading the model here."""
    from forgeml import backend
    from forgeml.registry.bundle import read_manifest

    manifest = read_manifest(backend.artifact_store(), resolved.digest)
    return dict(manifest.get("signature") or {})


def _check_input(
    opened: BatchInput, inputs: InputSchema, keep: list[str], resolved: ResolvedModel
) -> list[str]:
    """Every file against the signature, before scoring: the columns the model reads."""
    names = opened.schema.names
    for name in keep:
        if name not in names:
            raise InvalidArgumentError(
                f"{opened.description} has no column {name!r} to keep "
                f"(its columns: {', '.join(names[:12])}{', ...' if len(names) > 12 else ''})"
            )
    for where, schema in fragment_schemas(opened):
        check_schema(schema, inputs, where, resolved.label)
        for name in keep:
            if name not in schema.names:
                raise InvalidArgumentError(f"{where} has no column {name!r} to keep")
    if inputs.kind == "columns":
        return list(inputs.names)
    if inputs.kind == "tensor":
        return tensor_columns(opened.schema, inputs, keep, opened.description, resolved.label)
    return [n for n in names if n not in keep]


def _chunks(
    opened: BatchInput, features: list[str], keep: list[str], chunk_rows: int
) -> Iterator[Chunk]:
    """(first row, the model's columns, the kept columns) for each chunk read here."""
    offset = 0
    for table in opened.chunks(list(dict.fromkeys(features + keep)), chunk_rows):
        yield offset, table.select(features), table.select(keep)
        offset += table.num_rows


def _run(
    stream: Iterable[tuple[pa.Table, pa.Table]],
    keep: list[str],
    target: ParquetOutput,
    total: int | None,
    progress: Progress | None,
) -> tuple[str, ...]:
    """Append every chunk's kept columns and answers, in order; the answer columns."""
    import pyarrow as pa

    columns: tuple[str, ...] = ()
    for kept, answers in stream:
        if not columns:
            columns = tuple(answers.column_names)
            clash = [name for name in keep if name in columns]
            if clash:
                raise InvalidArgumentError(
                    f"kept column {clash[0]!r} has the name of an output column; "
                    f"the outputs are {', '.join(columns)}"
                )
        combined = pa.Table.from_arrays(
            [*kept.columns, *answers.columns], names=[*kept.column_names, *columns]
        )
        target.write(combined)
        if progress is not None:
            progress(target.rows, total)
    return columns


def _empty(schema: pa.Schema, keep: list[str], answers: pa.Table) -> pa.Table:
    import pyarrow as pa

    fields = [schema.field(name) for name in keep] + list(answers.schema)
    return pa.Table.from_batches([], pa.schema(fields))


def _record(done: BatchPrediction, opened: BatchInput) -> BatchPrediction:
    """The job as an event, and lineage from the model (and dataset) version to the file."""
    from dataclasses import replace

    from forgeml import backend, config
    from forgeml.lineage_graph import record

    payload = {k: v for k, v in done.to_dict().items() if k != "event_id"}
    event_id = backend.events().add(
        EVENT_KIND, f"{done.model}/{done.version}", payload, config.settings().user
    )
    output = ("batch_output", str(done.output))
    properties = {"event_id": event_id, "rows": done.rows, "input": done.input}
    record(("model_version", f"{done.model}/{done.version}"), output, "scored", properties)
    if opened.dataset_version is not None:
        name, version = opened.dataset_version
        record(("dataset_version", f"{name}/{version}"), output, "used", properties)
    return replace(done, event_id=event_id)
