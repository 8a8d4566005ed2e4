"""Who scores the chunks: this process, local worker processes, or Ray actors.

Every way holds the model once per worker (loaded from the verified bundle, as the
server loads it), keeps a bounded number of chunks in flight so memory does not grow
with the input, and hands answers back in input order, so the writer can append them
as they come. Ray is imported only when it is chosen.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from forgeml.errors import ForgeMLError, ServingError
from forgeml.serving.batch_convert import check_schema, check_values, model_input, output_columns
from forgeml.serving.batch_io import FilePart
from forgeml.serving.runtime import LoadedModel, ResolvedModel, example_rows

if TYPE_CHECKING:
    import pyarrow as pa

T = TypeVar("T")  # what the caller keeps beside each chunk
H = TypeVar("H")  # a handle on a chunk being scored (a future, a Ray object ref)
Chunk = tuple[int, "pa.Table", "pa.Table"]  # offset, the model's columns, the kept columns
IN_FLIGHT_PER_WORKER = 2  # one being scored, one waiting: workers never idle, memory bounded


@dataclass(frozen=True)
class ScoringJob:
    """What a worker needs to score chunks; small, so it travels to processes and actors."""

    model: ResolvedModel
    method: str
    where: str  # the input, for messages
    tensor: tuple[str, ...] = ()  # a tensor model's columns, in order
    passthrough: tuple[str, ...] = ()  # kept columns a signature-less model must not see
    features: tuple[str, ...] = ()  # the columns the model reads
    read_schema: pa.Schema | None = None  # model and kept columns, for workers that read
    chunk_rows: int = 100_000


class ChunkScorer:
    """One loaded model turning Arrow chunks into Arrow answers."""

    def __init__(self, job: ScoringJob) -> None:
        self.job = job
        self.loaded = LoadedModel(job.model, job.method)
        self.classes: Sequence[Any] | None = getattr(self.loaded.model, "classes_", None)

    def score(self, offset: int, table: pa.Table) -> pa.Table:
        """Answers for ``table``, whose first row is row ``offset`` of the input (from 0)."""
        import pyarrow as pa

        inputs, label = self.loaded.inputs, self.loaded.label
        check_schema(table.schema, inputs, self.job.where, label)
        check_values(table, inputs, offset, self.job.where)
        features = model_input(table, inputs, self.job.tensor, self.job.passthrough)
        rows = table.num_rows
        try:
            output = self._call(features)
        except ForgeMLError:
            raise
        except Exception as exc:
            raise ServingError(
                f"model {label} failed on rows {offset + 1:,} to {offset + rows:,} of "
                f"{self.job.where}: {type(exc).__name__}: {exc}"
            ) from None
        columns = output_columns(output, self.job.method, self.classes)
        answers = pa.table(columns)
        if answers.num_rows != rows:
            raise ServingError(f"model {label} returned {answers.num_rows} answers for {rows} rows")
        return answers

    def _call(self, features: Any) -> Any:
        if self.job.method == "predict_proba":
            return self.loaded.model.predict_proba(features)
        output = self.loaded.flavor.predict(self.loaded.model, features)
        if output is None:
            raise ServingError(f"model {self.loaded.label} has no predict method")
        return output

    def empty_answers(self) -> pa.Table:
        """No rows, but the answer columns and types: what an empty input scores to."""
        import pyarrow as pa

        row = example_rows(self.loaded.inputs)
        if row is None:
            return pa.table({"prediction": pa.array([], pa.null())})
        output = self._call(self.loaded.inputs.model_input([row]))
        return pa.table(output_columns(output, self.job.method, self.classes)).slice(0, 0)


class Scorers(Protocol):
    """Chunks in, answers out, in order; ``close`` stops every worker."""

    name: str

    def map(self, chunks: Iterator[Chunk]) -> Iterator[tuple[pa.Table, pa.Table]]: ...

    def close(self) -> None: ...


def ordered(
    chunks: Iterator[tuple[int, pa.Table, T]],
    submit: Callable[[int, pa.Table], H],
    result: Callable[[H], pa.Table],
    limit: int,
) -> Iterator[tuple[T, pa.Table]]:
    """Keep up to ``limit`` chunks in flight; yield answers in the order chunks came."""
    pending: deque[tuple[T, H]] = deque()
    for offset, table, kept in chunks:
        pending.append((kept, submit(offset, table)))
        del table  # the worker has it now; only what the caller keeps stays here
        if len(pending) >= limit:
            kept_first, handle = pending.popleft()
            yield kept_first, result(handle)
    while pending:
        kept_first, handle = pending.popleft()
        yield kept_first, result(handle)


class InProcess:
    """The model in this process, one chunk at a time: no copies, no start-up."""

    name = "in-process"

    def __init__(self, job: ScoringJob) -> None:
        self.scorer = ChunkScorer(job)

    def map(self, chunks: Iterator[Chunk]) -> Iterator[tuple[pa.Table, pa.Table]]:
        for offset, table, kept in chunks:
            yield kept, self.scorer.score(offset, table)

    def close(self) -> None:
        pass


# -- local worker processes ----------------------------------------------------------------

_job: ScoringJob | None = None
_scorer: ChunkScorer | None = None


def _start_worker(job: ScoringJob, env: dict[str, str], cwd: str, path: list[str]) -> None:
    """In a new worker: take the caller's settings (a forkserver may predate them)."""
    from forgeml.pipelines.worker import settle

    global _job, _scorer
    settle(env, cwd, path)
    _job, _scorer = job, None


def _score_in_worker(offset: int, table: pa.Table) -> pa.Table:
    global _scorer
    if _scorer is None:
        assert _job is not None
        _scorer = ChunkScorer(_job)  # once per process, on its first chunk
    return _scorer.score(offset, table)


def _score_part_in_worker(part: FilePart) -> tuple[pa.Table, pa.Table]:
    """Read a part of a Parquet file here and score it: only answers travel back."""
    import pyarrow as pa

    assert _job is not None and _job.read_schema is not None
    kept: list[pa.Table] = []
    answers: list[pa.Table] = []
    offset = part.offset
    for batch in part.batches(_job.read_schema, _job.chunk_rows):
        table = pa.Table.from_batches([batch])
        answers.append(_score_in_worker(offset, table.select(list(_job.features))))
        kept.append(table.select(list(_job.passthrough)))
        offset += batch.num_rows
    if not answers:
        raise ServingError(f"{part.path}: row groups {part.row_groups} hold no rows")
    return pa.concat_tables(kept), pa.concat_tables(answers)


def _context() -> Any:
    if "forkserver" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("forkserver")
    return multiprocessing.get_context("spawn")


class LocalProcesses:
    """``workers`` processes started fresh (no inherited threads or connections)."""

    name = "processes"

    def __init__(self, job: ScoringJob, workers: int) -> None:
        from concurrent.futures import ProcessPoolExecutor

        from forgeml.pipelines.worker import settings_env

        self.workers = workers
        self.pool = ProcessPoolExecutor(
            workers,
            mp_context=_context(),
            initializer=_start_worker,
            initargs=(job, settings_env(), os.getcwd(), list(sys.path)),
        )

    def map(self, chunks: Iterator[Chunk]) -> Iterator[tuple[pa.Table, pa.Table]]:
        return ordered(
            chunks,
            lambda offset, table: self.pool.submit(_score_in_worker, offset, table),
            self._result,
            self.workers * IN_FLIGHT_PER_WORKER,
        )

    def map_parts(self, parts: Sequence[FilePart]) -> Iterator[tuple[pa.Table, pa.Table]]:
        """Each worker reads its own rows: no table is decoded here or sent through a pipe."""
        pending: deque[Any] = deque()
        limit = self.workers * IN_FLIGHT_PER_WORKER
        for part in parts:
            pending.append(self.pool.submit(_score_part_in_worker, part))
            if len(pending) >= limit:
                yield self._result(pending.popleft())
        while pending:
            yield self._result(pending.popleft())

    @staticmethod
    def _result(future: Any) -> Any:
        from concurrent.futures.process import BrokenProcessPool

        try:
            answers = future.result()
        except BrokenProcessPool as exc:
            raise ServingError(
                f"a scoring worker process died ({exc}); it may have run out of memory: "
                "try fewer --workers or a smaller --chunk-rows"
            ) from None
        return answers

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


# -- Ray actors ----------------------------------------------------------------------------


class _RayScorer:
    """The body of one Ray actor: the model loaded once, on the actor's first chunk."""

    def __init__(self, job: ScoringJob, env: dict[str, str], cwd: str, path: list[str]) -> None:
        _start_worker(job, env, cwd, path)

    def score(self, offset: int, table: pa.Table) -> pa.Table:
        return _score_in_worker(offset, table)


class RayActors:
    """``workers`` Ray actors of one CPU each; chunks travel through Ray's object store."""

    def __init__(self, job: ScoringJob, workers: int, address: str) -> None:
        from forgeml.pipelines.ray_executor import connect_ray
        from forgeml.pipelines.worker import settings_env

        ray = connect_ray(address, "the Ray executor")
        self.ray = ray
        self.name = "ray" if address == "ray" else address
        actor = ray.remote(num_cpus=1, max_restarts=0)(_RayScorer)
        env, cwd, path = settings_env(), os.getcwd(), list(sys.path)
        self.actors = [actor.remote(job, env, cwd, path) for _ in range(workers)]
        self.turn = 0

    def _submit(self, offset: int, table: pa.Table) -> Any:
        actor = self.actors[self.turn % len(self.actors)]
        self.turn += 1
        return actor.score.remote(offset, table)

    def _result(self, ref: Any) -> pa.Table:
        exceptions = self.ray.exceptions
        try:
            answers: pa.Table = self.ray.get(ref)
        except exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, ForgeMLError):
                raise cause from None
            raise ServingError(f"a Ray scoring actor failed: {cause or exc}") from None
        except exceptions.RayError as exc:
            raise ServingError(f"a Ray scoring actor was lost: {type(exc).__name__}") from None
        return answers

    def map(self, chunks: Iterator[Chunk]) -> Iterator[tuple[pa.Table, pa.Table]]:
        limit = len(self.actors) * IN_FLIGHT_PER_WORKER
        return ordered(chunks, self._submit, self._result, limit)

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)
        self.actors = []


def start_scorers(job: ScoringJob, workers: int, executor: str) -> Scorers:
    """In-process for one local worker, processes for more, Ray actors on Ray."""
    if executor == "ray" or executor.startswith("ray://"):
        return RayActors(job, workers, executor)
    if workers == 1:
        return InProcess(job)
    return LocalProcesses(job, workers)
