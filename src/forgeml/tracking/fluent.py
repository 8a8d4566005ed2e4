"""The module-level tracking verbs: ``fm.start_run``, ``fm.log_metric``, ``fm.search_runs``...

Each logging verb acts on the current run of the calling context (see ``session``).
"""

from __future__ import annotations

import base64
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forgeml import backend
from forgeml.errors import InvalidArgumentError, NotFoundError
from forgeml.store.records import ArtifactRecord, MetricPoint, Run, RunStatus
from forgeml.store.run_filter import parse_filter, parse_order_by
from forgeml.tracking.active_run import ActiveRun
from forgeml.tracking.session import TrackingSession, current_run

if TYPE_CHECKING:
    import pandas as pd

_session: TrackingSession | None = None
_session_lock = threading.Lock()
_INHERIT: Any = object()


def session() -> TrackingSession:
    """The tracking client of this process (created on first use)."""
    global _session
    if _session is None:
        with _session_lock:
            if _session is None:
                _session = TrackingSession()
    return _session


def shutdown_writer() -> None:
    """End open runs, flush, and drop the client (the next call makes a fresh one)."""
    global _session
    with _session_lock:
        old, _session = _session, None
    if old is not None:
        old.close()


def start_run(
    experiment: str | None = None,
    name: str | None = None,
    *,
    tags: Mapping[str, Any] | None = None,
    parent: ActiveRun | None = _INHERIT,
    description: str | None = None,
) -> ActiveRun:
    """Open a run; inside another run it becomes that run's child unless ``parent=None``.

    Use it in a ``with`` block: the run ends FINISHED, or FAILED with the traceback when
    the block raises.
    """
    if parent is _INHERIT:
        parent = current_run.get()
    return session().start_run(experiment, name, tags, parent, description)


def active_run() -> ActiveRun | None:
    return current_run.get()


def _run() -> ActiveRun:
    run = current_run.get()
    if run is None:
        raise InvalidArgumentError("no active run: wrap this call in `with fm.start_run(...):`")
    return run


def end_run(status: RunStatus | str = RunStatus.FINISHED) -> None:
    """End the current run (for code that cannot use ``with``)."""
    _run().end(status)


def log_param(key: str, value: Any) -> None:
    _run().log_params({key: value})


def log_params(params: Mapping[str, Any]) -> None:
    _run().log_params(params)


def log_metric(key: str, value: Any, step: int | None = None) -> None:
    run = current_run.get()
    if run is None:
        _run()
    else:
        run.log_metric(key, value, step)


def log_metrics(metrics: Mapping[str, Any], step: int | None = None) -> None:
    _run().log_metrics(metrics, step)


def set_tag(key: str, value: Any) -> None:
    _run().set_tags({key: value})


def set_tags(tags: Mapping[str, Any]) -> None:
    _run().set_tags(tags)


def log_artifact(
    path: str | os.PathLike[str], artifact_path: str | None = None
) -> list[ArtifactRecord]:
    return _run().log_artifact(path, artifact_path)


def log_text(text: str, artifact_path: str) -> ArtifactRecord:
    return _run().log_text(text, artifact_path)


def log_dict(data: Mapping[str, Any], artifact_path: str) -> ArtifactRecord:
    return _run().log_dict(data, artifact_path)


def flush() -> None:
    """Write buffered tracking data now (reads in this process do it on their own)."""
    if _session is not None:
        _session.writer.flush()


# -- reading ----------------------------------------------------------------------------


class RunPage(list[Run]):
    """One page of runs; ``next_page_token`` fetches the next one (None on the last page)."""

    def __init__(self, runs: Sequence[Run], next_page_token: str | None) -> None:
        super().__init__(runs)
        self.next_page_token = next_page_token

    def to_pandas(self) -> pd.DataFrame:
        """One row per run: attributes, then ``params.*``, ``metrics.*`` and ``tags.*``."""
        import pandas as pd

        records = []
        for run in self:
            record: dict[str, Any] = {
                "run_id": run.id,
                "experiment": run.experiment,
                "name": run.name,
                "status": run.status.value,
                "start_time": pd.to_datetime(run.start_time, unit="s"),
                "duration_s": run.duration,
            }
            record.update({f"params.{k}": v for k, v in run.params.items()})
            record.update({f"metrics.{k}": v for k, v in run.metrics.items()})
            record.update({f"tags.{k}": v for k, v in run.tags.items()})
            records.append(record)
        return pd.DataFrame.from_records(records)


def _encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _decode_token(token: str) -> int:
    try:
        kind, _, value = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        if kind != "offset":
            raise ValueError
        return int(value)
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgumentError(
            f"page_token {token!r} is not a token search_runs gave out"
        ) from None


def search_runs(
    filter: str = "",
    *,
    experiment: str | Sequence[str] | None = None,
    order_by: Sequence[str] | None = None,
    max_results: int = 100,
    page_token: str | None = None,
) -> RunPage:
    """Runs matching ``filter``, e.g. ``"metrics.auc > 0.9 and params.model = 'gbm'"``.

    ``order_by`` entries look like ``"metrics.auc desc"``; pages hold ``max_results``
    runs and ``RunPage.next_page_token`` continues.
    """
    if not isinstance(max_results, int) or not 1 <= max_results <= 50_000:
        raise InvalidArgumentError(f"max_results must be between 1 and 50000, got {max_results!r}")
    expr = parse_filter(filter)
    orders = [parse_order_by(entry) for entry in (order_by or [])]
    names = [experiment] if isinstance(experiment, str) else experiment
    flush()
    repo = backend.runs()
    offset = _decode_token(page_token) if page_token else 0
    ids, next_offset = repo.search(
        expr, list(names) if names is not None else None, orders, max_results, offset
    )
    token = _encode_token(next_offset) if next_offset is not None else None
    return RunPage(repo.get_runs(ids), token)


def get_run(run_id: str) -> Run:
    """A run by id (or an unambiguous prefix of at least 6 characters)."""
    flush()
    repo = backend.runs()
    return repo.get_run(repo.resolve_run_id(run_id))


def get_metric_history(run_id: str, key: str) -> list[MetricPoint]:
    flush()
    repo = backend.runs()
    full_id = repo.resolve_run_id(run_id)
    history = repo.metric_history(full_id, key)
    if not history:
        repo.get_run(full_id)  # raises NotFoundError for an unknown run
        raise NotFoundError(f"run {run_id} has no metric {key!r}")
    return history


def list_artifacts(run_id: str) -> list[ArtifactRecord]:
    repo = backend.runs()
    return repo.list_artifacts(repo.resolve_run_id(run_id))


def download_artifact(
    run_id: str, artifact_path: str, destination: str | os.PathLike[str] = "."
) -> Path:
    """Copy one artifact of a run (verified against its sha256) into ``destination``."""
    records = {r.path: r for r in list_artifacts(run_id)}
    record = records.get(artifact_path)
    if record is None:
        raise NotFoundError(f"run {run_id} has no artifact {artifact_path!r}")
    target = Path(destination) / Path(artifact_path).name
    return backend.artifact_store().get_file(record.digest, target)
