"""Plain, immutable records the repositories return: data only, safe to pass anywhere."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class RunStatus(StrEnum):
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"


@dataclass(frozen=True)
class Experiment:
    id: int
    name: str
    description: str | None
    created_at: float


@dataclass(frozen=True)
class Run:
    """A tracked run as stored: its attributes, params, latest metrics and tags."""

    id: str
    experiment: str
    name: str
    status: RunStatus
    user: str
    start_time: float
    end_time: float | None
    parent_id: str | None = None
    error: str | None = None
    git_sha: str | None = None
    git_dirty: bool | None = None
    command: str | None = None
    host: str | None = None
    environment_digest: str | None = None
    system: dict[str, Any] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def duration(self) -> float | None:
        """Wall time in seconds, or None while the run is still going."""
        return None if self.end_time is None else self.end_time - self.start_time


@dataclass(frozen=True)
class MetricPoint:
    step: int
    timestamp: float
    value: float


@dataclass(frozen=True)
class ArtifactRecord:
    """A file logged to a run: its path inside the run and the content it points to."""

    path: str
    digest: str
    size: int
    created_at: float


@dataclass(frozen=True)
class RegisteredModel:
    id: int
    name: str
    description: str | None
    created_at: float
    updated_at: float
    tags: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, int] = field(default_factory=dict)
    latest_version: int | None = None


@dataclass(frozen=True)
class ModelVersion:
    """One immutable version of a registered model and the bundle it points to."""

    id: int
    model: str
    version: int
    flavor: str
    manifest_digest: str
    size: int
    run_id: str | None
    signature: dict[str, Any] | None
    description: str | None
    created_at: float
    created_by: str
    tags: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()

    @property
    def uri(self) -> str:
        return f"models:/{self.model}/{self.version}"


@dataclass(frozen=True)
class AliasEvent:
    """One move of an alias: ``from_version`` None means it was created, ``to_version``
    None means it was deleted."""

    model: str
    alias: str
    from_version: int | None
    to_version: int | None
    actor: str
    at: float
    reason: str | None = None


@dataclass(frozen=True)
class LineageEdge:
    src_type: str
    src_id: str
    dst_type: str
    dst_id: str
    relation: str
    created_at: float
    properties: dict[str, Any] | None = None


def db_float(value: float) -> float | None:
    """NaN cannot be stored by SQLite, so it travels as NULL."""
    return None if math.isnan(value) else value


def py_float(value: float | None) -> float:
    return math.nan if value is None else float(value)


@dataclass(frozen=True)
class DatasetSummary:
    name: str
    description: str | None
    created_at: float
    updated_at: float
    latest_version: int | None
    versions: int


@dataclass(frozen=True)
class DatasetVersionRecord:
    """One immutable version of a dataset: a Parquet file in the artifact store."""

    id: int
    name: str
    version: int
    digest: str
    size: int
    row_count: int
    columns: list[dict[str, Any]]
    source: dict[str, Any]
    profile: dict[str, Any] | None
    run_id: str | None
    created_at: float
    created_by: str


@dataclass(frozen=True)
class ValidationRecord:
    id: int
    dataset: str
    version: int
    suite: str
    success: bool
    errors: int
    warnings: int
    result: dict[str, Any]
    run_id: str | None
    created_at: float
    created_by: str


@dataclass(frozen=True)
class FeatureViewVersionRecord:
    """One immutable version of a feature view's definition, as registered."""

    id: int
    name: str
    kind: str
    version: int
    digest: str
    definition: dict[str, Any]
    code_hash: str | None
    created_at: float
    created_by: str


@dataclass(frozen=True)
class MaterializationRecord:
    """One run of materialization: which rows of a view version went into which store."""

    id: int
    view: str
    view_version: int
    online_store: str
    start_time: float | None
    end_time: float
    full: bool
    rows_read: int
    entities_written: int
    seconds: float
    run_id: str | None
    created_at: float
    created_by: str


class PipelineStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    CACHED = "cached"  # outputs of an earlier run with the same cache key
    REUSED = "reused"  # outputs of the run this one resumes
    FAILED = "failed"
    SKIPPED = "skipped"  # an upstream step failed

    @property
    def done(self) -> bool:
        """Whether the step has outputs downstream steps can read."""
        return self in (StepStatus.SUCCEEDED, StepStatus.CACHED, StepStatus.REUSED)


@dataclass(frozen=True)
class PipelineRunRecord:
    id: str
    pipeline: str
    ref: str  # "module:qualname" of the pipeline function
    source_file: str | None
    status: PipelineStatus
    params: dict[str, Any]
    executor: str
    trigger: str
    resumed_from: str | None
    dedupe_key: str | None
    host: str
    pid: int
    pid_started: float
    heartbeat_at: float
    created_at: float
    ended_at: float | None
    error: str | None
    created_by: str
    result: Any = None  # what the pipeline function returned, outputs as stored records


@dataclass(frozen=True)
class StepRunRecord:
    id: int
    pipeline_run_id: str
    step: str
    function: str
    status: StepStatus
    attempts: int
    code_hash: str
    cache_key: str | None
    inputs: dict[str, Any]
    outputs: list[dict[str, Any]] | None
    explain: dict[str, Any] | None
    source_run_id: str | None
    logs: dict[str, Any] | None
    started_at: float | None
    ended_at: float | None
    error: str | None

    @property
    def seconds(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return self.ended_at - self.started_at
