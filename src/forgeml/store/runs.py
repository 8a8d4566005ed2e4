"""Repository for the tracking aggregate: experiments, runs and what is logged to them.

Writes arrive in batches (one transaction for any number of params, tags and metric
points) because the tracking client buffers; this module never commits per value.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BindParameter, Connection, and_, bindparam, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from forgeml.errors import InvalidArgumentError, NotFoundError
from forgeml.store import schema
from forgeml.store.database import Database
from forgeml.store.records import (
    ArtifactRecord,
    Experiment,
    MetricPoint,
    Run,
    RunStatus,
    db_float,
    py_float,
)
from forgeml.store.run_filter import Expr, OrderBy
from forgeml.store.run_search import build_query, count_query

# SQLite accepts at most 32,766 bound parameters per statement; stay well under it.
_IN_CHUNK = 500


# Statements used on every search, built once (SQLAlchemy then caches their compilation).
_IDS: BindParameter[list[str]] = bindparam("ids", expanding=True)
_RUNS_BY_ID = (
    select(schema.runs, schema.experiments.c.name.label("experiment_name"))
    .join(schema.experiments, schema.experiments.c.id == schema.runs.c.experiment_id)
    .where(schema.runs.c.id.in_(_IDS))
)
_PARAMS_BY_RUN = select(schema.params.c.run_id, schema.params.c.key, schema.params.c.value).where(
    schema.params.c.run_id.in_(_IDS)
)
_METRICS_BY_RUN = select(
    schema.latest_metrics.c.run_id, schema.latest_metrics.c.key, schema.latest_metrics.c.value
).where(schema.latest_metrics.c.run_id.in_(_IDS))
_TAGS_BY_RUN = select(
    schema.run_tags.c.run_id, schema.run_tags.c.key, schema.run_tags.c.value
).where(schema.run_tags.c.run_id.in_(_IDS))

_INSERT_RUN = schema.runs.insert()
_INSERT_METRIC = schema.metrics.insert()
_FINISH_RUN = (
    update(schema.runs)
    .where(schema.runs.c.id == bindparam("run_id"))
    .values(
        status=bindparam("status"),
        end_time=bindparam("end_time"),
        error=bindparam("error"),
        system=bindparam("system"),
    )
)

# (run_id, key, value, step, timestamp): a plain tuple, because the tracking client makes
# one per logged value and a tuple is the cheapest thing Python can build.
MetricRow = tuple[str, str, float, int, float]
# (run_id, status, end_time, error, system): the outcome of a run, written when it ends.
Finish = tuple[str, RunStatus, float, str | None, dict[str, Any] | None]


@dataclass(frozen=True)
class NewRun:
    id: str
    experiment_id: int
    name: str
    user: str
    start_time: float
    parent_id: str | None
    git_sha: str | None
    git_dirty: bool | None
    command: str | None
    host: str | None
    environment_digest: str | None
    # Set when a run ends before its row was ever written: one INSERT says it all.
    status: RunStatus = RunStatus.RUNNING
    end_time: float | None = None
    error: str | None = None
    system: dict[str, Any] | None = None


class RunRepository:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._known_environments: set[str] = set()
        self._experiment_ids: dict[str, int] = {}

    # -- experiments --------------------------------------------------------------------
    def get_or_create_experiment(self, name: str) -> int:
        """The id of experiment ``name``, created if it does not exist yet (race-safe)."""
        cached = self._experiment_ids.get(name)
        if cached is not None:
            return cached
        table = schema.experiments
        with self.db.read() as conn:
            found = conn.execute(select(table.c.id).where(table.c.name == name)).scalar()
        if found is None:
            try:
                with self.db.write() as conn:
                    self.db.upsert(
                        conn, table, [{"name": name, "created_at": time.time()}], ["name"], []
                    )
                    found = conn.execute(select(table.c.id).where(table.c.name == name)).scalar()
            except IntegrityError:  # pragma: no cover - another process won the race
                with self.db.read() as conn:
                    found = conn.execute(select(table.c.id).where(table.c.name == name)).scalar()
        assert found is not None
        self._experiment_ids[name] = int(found)
        return int(found)

    def get_experiment(self, name: str) -> Experiment:
        table = schema.experiments
        with self.db.read() as conn:
            row = conn.execute(select(table).where(table.c.name == name)).first()
        if row is None:
            raise NotFoundError(f"no experiment named {name!r}")
        return Experiment(row.id, row.name, row.description, row.created_at)

    def list_experiments(self) -> list[Experiment]:
        table = schema.experiments
        with self.db.read() as conn:
            rows = conn.execute(select(table).order_by(table.c.name)).all()
        return [Experiment(r.id, r.name, r.description, r.created_at) for r in rows]

    # -- runs ---------------------------------------------------------------------------
    def ensure_environment(self, digest: str, body: Mapping[str, Any]) -> None:
        """Store an environment description once; runs refer to it by digest."""
        if digest in self._known_environments:
            return
        with self.db.write() as conn:
            self.db.upsert(
                conn, schema.environments, [{"digest": digest, "body": dict(body)}], ["digest"], []
            )
        self._known_environments.add(digest)

    def get_environment(self, digest: str) -> dict[str, Any]:
        table = schema.environments
        with self.db.read() as conn:
            body = conn.execute(select(table.c.body).where(table.c.digest == digest)).scalar()
        if body is None:
            raise NotFoundError(f"no environment with digest {digest!r}")
        return dict(body)

    def create_run(self, run: NewRun, tags: Mapping[str, str] | None = None) -> None:
        self.write_batch(runs=[run], tags=[(run.id, k, v) for k, v in (tags or {}).items()])

    def write_batch(
        self,
        params: Iterable[tuple[str, str, str]] = (),
        tags: Iterable[tuple[str, str, str]] = (),
        metrics: Sequence[MetricRow] = (),
        finishes: Sequence[Finish] = (),
        runs: Sequence[NewRun] = (),
    ) -> None:
        """Write new runs, buffered values, and the ends of runs, in one transaction."""
        param_rows = [{"run_id": r, "key": k, "value": v} for r, k, v in params]
        tag_rows = [{"run_id": r, "key": k, "value": v} for r, k, v in tags]
        with self.db.write() as conn:
            if runs:
                self.db.execute_many(conn, _INSERT_RUN, [_run_row(run) for run in runs])
            if param_rows:
                self.db.upsert(conn, schema.params, param_rows, ["run_id", "key"], [])
            if tag_rows:
                self.db.upsert(conn, schema.run_tags, tag_rows, ["run_id", "key"], ["value"])
            if metrics:
                self._write_metrics(conn, metrics)
            if finishes:
                self.db.execute_many(
                    conn,
                    _FINISH_RUN,
                    [
                        {
                            "run_id": run_id,
                            "status": status.value,
                            "end_time": end_time,
                            "error": error,
                            "system": system,
                        }
                        for run_id, status, end_time, error, system in finishes
                    ],
                )

    def _write_metrics(self, conn: Connection, metrics: Sequence[MetricRow]) -> None:
        self.db.execute_many(
            conn,
            _INSERT_METRIC,
            [
                {"run_id": r, "key": k, "step": s, "timestamp": t, "value": db_float(v)}
                for r, k, v, s, t in metrics
            ],
        )
        latest: dict[tuple[str, str], MetricRow] = {}
        for m in metrics:
            seen = latest.get((m[0], m[1]))
            if seen is None or (m[3], m[4]) >= (seen[3], seen[4]):
                latest[(m[0], m[1])] = m

        self.db.upsert(
            conn,
            schema.latest_metrics,
            [
                {"run_id": r, "key": k, "step": s, "timestamp": t, "value": db_float(v)}
                for r, k, v, s, t in latest.values()
            ],
            ["run_id", "key"],
            ["step", "timestamp", "value"],
            where=_newer_point,
        )

    def set_status(self, run_id: str, status: RunStatus, end_time: float | None) -> None:
        with self.db.write() as conn:
            result = conn.execute(
                update(schema.runs)
                .where(schema.runs.c.id == run_id)
                .values(status=status.value, end_time=end_time)
            )
        if result.rowcount == 0:
            raise NotFoundError(f"no run with id {run_id!r}")

    def delete_tag(self, run_id: str, key: str) -> None:
        table = schema.run_tags
        with self.db.write() as conn:
            conn.execute(table.delete().where(table.c.run_id == run_id, table.c.key == key))

    # -- reading ------------------------------------------------------------------------
    def get_run(self, run_id: str) -> Run:
        found = self.get_runs([run_id])
        if not found:
            raise NotFoundError(f"no run with id {run_id!r}")
        return found[0]

    def resolve_run_id(self, prefix: str) -> str:
        """A full run id from an unambiguous prefix of at least 6 characters (as git does)."""
        runs = schema.runs
        if len(prefix) == 32:
            return prefix
        if len(prefix) < 6:
            raise InvalidArgumentError(
                f"run id {prefix!r} is too short (give at least 6 characters)"
            )
        with self.db.read() as conn:
            ids = (
                conn.execute(
                    select(runs.c.id).where(runs.c.id.like(prefix.replace("%", "") + "%")).limit(2)
                )
                .scalars()
                .all()
            )
        if not ids:
            raise NotFoundError(f"no run with id {prefix!r}")
        if len(ids) > 1:
            raise InvalidArgumentError(f"run id prefix {prefix!r} matches several runs")
        return str(ids[0])

    def get_runs(self, run_ids: Sequence[str]) -> list[Run]:
        """Runs by id, in the order given, with params, latest metrics and tags."""
        if not run_ids:
            return []
        rows: dict[str, Any] = {}
        params: dict[str, dict[str, str]] = defaultdict(dict)
        metrics: dict[str, dict[str, float]] = defaultdict(dict)
        tags: dict[str, dict[str, str]] = defaultdict(dict)
        with self.db.read() as conn:
            for start in range(0, len(run_ids), _IN_CHUNK):
                ids = {"ids": list(run_ids[start : start + _IN_CHUNK])}
                for row in conn.execute(_RUNS_BY_ID, ids).all():
                    rows[row.id] = row
                for run_id, key, text in conn.execute(_PARAMS_BY_RUN, ids).all():
                    params[run_id][key] = text
                for run_id, key, value in conn.execute(_METRICS_BY_RUN, ids).all():
                    metrics[run_id][key] = py_float(value)
                for run_id, key, text in conn.execute(_TAGS_BY_RUN, ids).all():
                    tags[run_id][key] = text
        return [
            _run_from_row(rows[i], params[i], metrics[i], tags[i]) for i in run_ids if i in rows
        ]

    def metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
        table = schema.metrics
        query = (
            select(table.c.step, table.c.timestamp, table.c.value)
            .where(table.c.run_id == run_id, table.c.key == key)
            .order_by(table.c.step, table.c.timestamp, table.c.id)
        )
        with self.db.read() as conn:
            rows = conn.execute(query).all()
        return [MetricPoint(int(r.step), float(r.timestamp), py_float(r.value)) for r in rows]

    def metric_trend(self, run_id: str, key: str, buckets: int = 40) -> tuple[int, list[float]]:
        """(number of points, mean value per step bucket): a history reduced in the database,
        so drawing a 100,000-step curve reads ``buckets`` rows, not 100,000."""
        table = schema.metrics
        where = (table.c.run_id == run_id, table.c.key == key)
        with self.db.read() as conn:
            low, high, count = conn.execute(
                select(func.min(table.c.step), func.max(table.c.step), func.count()).where(*where)
            ).one()
            if not count:
                return 0, []
            bucket = ((table.c.step - low) * buckets // (high - low + 1)).label("bucket")
            rows = conn.execute(
                select(bucket, func.avg(table.c.value))
                .where(*where)
                .group_by(bucket)
                .order_by(bucket)
            ).all()
        return int(count), [py_float(value) for _, value in rows]

    def metric_keys(self, run_id: str) -> list[str]:
        table = schema.latest_metrics
        with self.db.read() as conn:
            keys = conn.execute(
                select(table.c.key).where(table.c.run_id == run_id).order_by(table.c.key)
            ).scalars()
            return list(keys)

    def child_run_ids(self, run_id: str) -> list[str]:
        runs = schema.runs
        with self.db.read() as conn:
            ids = conn.execute(
                select(runs.c.id).where(runs.c.parent_id == run_id).order_by(runs.c.start_time)
            ).scalars()
            return list(ids)

    def search(
        self,
        expr: Expr | None,
        experiment_names: Sequence[str] | None,
        order_by: list[OrderBy],
        limit: int,
        offset: int,
    ) -> tuple[list[str], int | None]:
        """Ids of matching runs for one page, and the offset of the next page (or None)."""
        experiment_ids = self._experiment_ids_for(experiment_names)
        query = build_query(expr, experiment_ids, order_by).limit(limit + 1).offset(offset)
        with self.db.read() as conn:
            ids = [str(i) for i in conn.execute(query).scalars()]
        next_offset = offset + limit if len(ids) > limit else None
        return ids[:limit], next_offset

    def count(self, expr: Expr | None, experiment_names: Sequence[str] | None) -> int:
        experiment_ids = self._experiment_ids_for(experiment_names)
        with self.db.read() as conn:
            return int(conn.execute(count_query(expr, experiment_ids)).scalar_one())

    def _experiment_ids_for(self, names: Sequence[str] | None) -> list[int] | None:
        if names is None:
            return None
        table = schema.experiments
        with self.db.read() as conn:
            ids = conn.execute(select(table.c.id).where(table.c.name.in_(list(names)))).scalars()
            return [int(i) for i in ids]

    def run_count_by_experiment(self) -> dict[str, int]:
        runs, experiments = schema.runs, schema.experiments
        query = (
            select(experiments.c.name, func.count(runs.c.id))
            .select_from(experiments)
            .outerjoin(runs, runs.c.experiment_id == experiments.c.id)
            .group_by(experiments.c.name)
        )
        with self.db.read() as conn:
            return {str(name): int(n) for name, n in conn.execute(query)}

    # -- artifacts ----------------------------------------------------------------------
    def add_artifacts(self, run_id: str, records: Sequence[ArtifactRecord]) -> None:
        rows = [
            {
                "run_id": run_id,
                "path": r.path,
                "digest": r.digest,
                "size": r.size,
                "created_at": r.created_at,
            }
            for r in records
        ]
        with self.db.write() as conn:
            exists = conn.execute(
                select(schema.runs.c.id).where(schema.runs.c.id == run_id)
            ).scalar()
            if exists is None:
                raise NotFoundError(f"no run with id {run_id!r}")
            self.db.upsert(
                conn,
                schema.run_artifacts,
                rows,
                ["run_id", "path"],
                ["digest", "size", "created_at"],
            )

    def list_artifacts(self, run_id: str) -> list[ArtifactRecord]:
        table = schema.run_artifacts
        with self.db.read() as conn:
            rows = conn.execute(
                select(table).where(table.c.run_id == run_id).order_by(table.c.path)
            ).all()
        return [ArtifactRecord(r.path, r.digest, int(r.size), r.created_at) for r in rows]


def _newer_point(table: Any, excluded: Any) -> Any:
    """The incoming point replaces the latest one if its step is higher (or equal and later)."""
    return or_(
        excluded.step > table.c.step,
        and_(excluded.step == table.c.step, excluded.timestamp >= table.c.timestamp),
    )


def _run_row(run: NewRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "experiment_id": run.experiment_id,
        "parent_id": run.parent_id,
        "name": run.name,
        "status": run.status.value,
        "user": run.user,
        "start_time": run.start_time,
        "git_sha": run.git_sha,
        "git_dirty": run.git_dirty,
        "command": run.command,
        "host": run.host,
        "environment_digest": run.environment_digest,
        "end_time": run.end_time,
        "error": run.error,
        "system": run.system,
    }


def _run_from_row(
    row: Any, params: dict[str, str], metrics: dict[str, float], tags: dict[str, str]
) -> Run:
    return Run(
        id=row.id,
        experiment=row.experiment_name,
        name=row.name,
        status=RunStatus(row.status),
        user=row.user,
        start_time=row.start_time,
        end_time=row.end_time,
        parent_id=row.parent_id,
        error=row.error,
        git_sha=row.git_sha,
        git_dirty=row.git_dirty,
        command=row.command,
        host=row.host,
        environment_digest=row.environment_digest,
        system=dict(row.system or {}),
        params=params,
        metrics=metrics,
        tags=tags,
    )
