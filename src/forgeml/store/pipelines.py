"""Repository for pipeline runs and their step runs.

The orchestrating process is the only writer of a run's rows while it lives; readers
(the CLI, another process resuming a run) look at them. A run whose orchestrator died
is found by its heartbeat or its process id and marked failed, so it can be resumed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Row, and_, select, update
from sqlalchemy.exc import IntegrityError

from forgeml.errors import AlreadyExistsError, NotFoundError
from forgeml.store import schema
from forgeml.store.database import Database
from forgeml.store.records import (
    PipelineRunRecord,
    PipelineStatus,
    StepRunRecord,
    StepStatus,
)


class PipelineRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- pipeline runs ------------------------------------------------------------------
    def create_run(self, row: dict[str, Any], steps: Sequence[dict[str, Any]]) -> None:
        """Insert a run and its steps (all pending) in one transaction.

        A ``dedupe_key`` already taken raises AlreadyExistsError: that firing of a schedule
        already has its run.
        """
        try:
            with self.db.write() as conn:
                conn.execute(schema.pipeline_runs.insert().values(**row))
                if steps:
                    conn.execute(
                        schema.step_runs.insert(),
                        [{"pipeline_run_id": row["id"], **step} for step in steps],
                    )
        except IntegrityError as exc:
            if row.get("dedupe_key") and "dedupe_key" in str(exc.orig):
                raise AlreadyExistsError(
                    f"a pipeline run for {row['dedupe_key']!r} already exists"
                ) from exc
            raise

    def heartbeat(self, run_id: str) -> None:
        with self.db.write() as conn:
            conn.execute(
                update(schema.pipeline_runs)
                .where(schema.pipeline_runs.c.id == run_id)
                .values(heartbeat_at=time.time())
            )

    def finish_run(
        self, run_id: str, status: PipelineStatus, error: str | None, result: Any = None
    ) -> None:
        runs = schema.pipeline_runs
        with self.db.write() as conn:
            conn.execute(
                update(runs)
                .where(runs.c.id == run_id, runs.c.status == PipelineStatus.RUNNING.value)
                .values(status=status.value, error=error, ended_at=time.time(), result=result)
            )

    def get_run(self, run_id: str) -> PipelineRunRecord:
        """A run by its id, or by a unique prefix of at least 6 characters."""
        runs = schema.pipeline_runs
        with self.db.read() as conn:
            row = conn.execute(select(runs).where(runs.c.id == run_id)).first()
            if row is None and len(run_id) >= 6:
                found = conn.execute(
                    select(runs).where(runs.c.id.startswith(run_id, autoescape=True)).limit(2)
                ).all()
                if len(found) > 1:
                    raise NotFoundError(f"pipeline run prefix {run_id!r} is ambiguous")
                row = found[0] if found else None
        if row is None:
            raise NotFoundError(f"no pipeline run {run_id!r}")
        return _run(row)

    def list_runs(
        self, pipeline: str | None = None, status: str | None = None, limit: int = 50
    ) -> list[PipelineRunRecord]:
        runs = schema.pipeline_runs
        query = select(runs).order_by(runs.c.created_at.desc()).limit(limit)
        if pipeline is not None:
            query = query.where(runs.c.pipeline == pipeline)
        if status is not None:
            query = query.where(runs.c.status == status)
        with self.db.read() as conn:
            return [_run(r) for r in conn.execute(query).all()]

    def reap(self, is_alive: Callable[[PipelineRunRecord], bool]) -> list[str]:
        """Mark failed the running runs whose orchestrator is gone; their ids."""
        reaped = []
        for run in self.list_runs(status=PipelineStatus.RUNNING.value, limit=10_000):
            if is_alive(run):
                continue
            runs, steps = schema.pipeline_runs, schema.step_runs
            with self.db.write() as conn:
                changed = conn.execute(
                    update(runs)
                    .where(runs.c.id == run.id, runs.c.status == PipelineStatus.RUNNING.value)
                    .values(
                        status=PipelineStatus.FAILED.value,
                        ended_at=time.time(),
                        error=(
                            f"the process orchestrating this run (pid {run.pid} on "
                            f"{run.host}) stopped before it finished"
                        ),
                    )
                ).rowcount
                if changed:
                    now = time.time()
                    conn.execute(
                        update(steps)
                        .where(
                            steps.c.pipeline_run_id == run.id,
                            steps.c.status == StepStatus.RUNNING.value,
                        )
                        .values(
                            status=StepStatus.FAILED.value,
                            ended_at=now,
                            error="interrupted: the orchestrating process stopped",
                        )
                    )
                    conn.execute(
                        update(steps)
                        .where(
                            steps.c.pipeline_run_id == run.id,
                            steps.c.status == StepStatus.PENDING.value,
                        )
                        .values(status=StepStatus.SKIPPED.value)
                    )
                    reaped.append(run.id)
        return reaped

    # -- step runs ----------------------------------------------------------------------
    def update_step(self, run_id: str, step: str, **values: Any) -> None:
        steps = schema.step_runs
        if isinstance(values.get("status"), StepStatus):
            values["status"] = values["status"].value
        with self.db.write() as conn:
            conn.execute(
                update(steps)
                .where(steps.c.pipeline_run_id == run_id, steps.c.step == step)
                .values(**values)
            )

    def steps(self, run_id: str) -> list[StepRunRecord]:
        steps = schema.step_runs
        with self.db.read() as conn:
            rows = conn.execute(
                select(steps).where(steps.c.pipeline_run_id == run_id).order_by(steps.c.id)
            ).all()
        return [_step(r) for r in rows]

    def get_step(self, run_id: str, step: str) -> StepRunRecord:
        steps = schema.step_runs
        with self.db.read() as conn:
            row = conn.execute(
                select(steps).where(steps.c.pipeline_run_id == run_id, steps.c.step == step)
            ).first()
        if row is None:
            names = ", ".join(s.step for s in self.steps(run_id))
            raise NotFoundError(f"pipeline run {run_id} has no step {step!r} (steps: {names})")
        return _step(row)

    def find_cached(self, cache_key: str) -> StepRunRecord | None:
        """The newest step that ran to completion with ``cache_key``."""
        steps = schema.step_runs
        with self.db.read() as conn:
            row = conn.execute(
                select(steps)
                .where(
                    steps.c.cache_key == cache_key,
                    steps.c.status == StepStatus.SUCCEEDED.value,
                )
                .order_by(steps.c.id.desc())
                .limit(1)
            ).first()
        return _step(row) if row is not None else None

    def previous_step(self, pipeline: str, step: str, before_run: str) -> StepRunRecord | None:
        """The newest completed execution of ``step`` of ``pipeline`` in another run."""
        steps, runs = schema.step_runs, schema.pipeline_runs
        with self.db.read() as conn:
            row = conn.execute(
                select(steps)
                .join(runs, runs.c.id == steps.c.pipeline_run_id)
                .where(
                    and_(
                        runs.c.pipeline == pipeline,
                        steps.c.step == step,
                        steps.c.pipeline_run_id != before_run,
                        steps.c.status == StepStatus.SUCCEEDED.value,
                    )
                )
                .order_by(steps.c.id.desc())
                .limit(1)
            ).first()
        return _step(row) if row is not None else None


def _run(row: Row[Any]) -> PipelineRunRecord:
    return PipelineRunRecord(
        id=row.id,
        pipeline=row.pipeline,
        ref=row.ref,
        source_file=row.source_file,
        status=PipelineStatus(row.status),
        params=dict(row.params or {}),
        executor=row.executor,
        trigger=row.trigger,
        resumed_from=row.resumed_from,
        dedupe_key=row.dedupe_key,
        host=row.host,
        pid=int(row.pid),
        pid_started=float(row.pid_started),
        heartbeat_at=float(row.heartbeat_at),
        created_at=float(row.created_at),
        ended_at=row.ended_at,
        error=row.error,
        created_by=row.created_by,
        result=row.result,
    )


def _step(row: Row[Any]) -> StepRunRecord:
    return StepRunRecord(
        id=int(row.id),
        pipeline_run_id=row.pipeline_run_id,
        step=row.step,
        function=row.function,
        status=StepStatus(row.status),
        attempts=int(row.attempts),
        code_hash=row.code_hash,
        cache_key=row.cache_key,
        inputs=dict(row.inputs or {}),
        outputs=list(row.outputs) if row.outputs is not None else None,
        explain=dict(row.explain) if row.explain is not None else None,
        source_run_id=row.source_run_id,
        logs=dict(row.logs) if row.logs is not None else None,
        started_at=row.started_at,
        ended_at=row.ended_at,
        error=row.error,
    )
