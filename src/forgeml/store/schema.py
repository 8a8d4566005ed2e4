"""The metadata tables, as SQLAlchemy Core objects.

This module is what queries are written against; the Alembic revisions under
``migrations/versions`` create the same tables, and a test proves the two agree.
Timestamps are seconds since the epoch as double precision: one type on every backend,
cheap to compare, and exact enough for ordering events within a run.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# A 64-bit identity on PostgreSQL that is still SQLite's fast rowid alias.
BigId = BigInteger().with_variant(Integer(), "sqlite")

experiments = Table(
    "experiments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(256), nullable=False, unique=True),
    Column("description", Text),
    Column("created_at", Float, nullable=False),
)

environments = Table(
    "environments",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("body", JSON, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("experiment_id", Integer, ForeignKey("experiments.id"), nullable=False),
    Column("parent_id", String(32), ForeignKey("runs.id"), index=True),
    Column("name", String(256), nullable=False),
    Column("status", String(16), nullable=False),
    Column("user", String(256), nullable=False),
    Column("start_time", Float, nullable=False),
    Column("end_time", Float),
    Column("error", Text),
    Column("git_sha", String(40)),
    Column("git_dirty", Boolean),
    Column("command", Text),
    Column("host", String(256)),
    Column("environment_digest", String(64), ForeignKey("environments.digest")),
    Column("system", JSON),
    Index(None, "experiment_id", "start_time"),
)

params = Table(
    "params",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("key", String(256), nullable=False),
    Column("value", Text, nullable=False),
    PrimaryKeyConstraint("run_id", "key"),
)

run_tags = Table(
    "run_tags",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("key", String(256), nullable=False),
    Column("value", Text, nullable=False),
    PrimaryKeyConstraint("run_id", "key"),
)

# Every logged value, in order; NaN is stored as NULL because SQLite cannot hold it.
metrics = Table(
    "metrics",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("key", String(256), nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", Float, nullable=False),
    Column("value", Float),
    Index(None, "run_id", "key", "step"),
)

# The value at the highest step (then latest time) per run and key: what searches filter on.
latest_metrics = Table(
    "latest_metrics",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("key", String(256), nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", Float, nullable=False),
    Column("value", Float),
    PrimaryKeyConstraint("run_id", "key"),
    Index(None, "key", "value"),
)

run_artifacts = Table(
    "run_artifacts",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("path", String(1024), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("created_at", Float, nullable=False),
    PrimaryKeyConstraint("run_id", "path"),
)

registered_models = Table(
    "registered_models",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(256), nullable=False, unique=True),
    Column("description", Text),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_id", Integer, ForeignKey("registered_models.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("run_id", String(32), ForeignKey("runs.id"), index=True),
    Column("flavor", String(64), nullable=False),
    Column("manifest_digest", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("signature", JSON),
    Column("description", Text),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(256), nullable=False),
    UniqueConstraint("model_id", "version"),
)

model_tags = Table(
    "model_tags",
    metadata,
    Column("model_id", Integer, ForeignKey("registered_models.id"), nullable=False),
    Column("key", String(256), nullable=False),
    Column("value", Text, nullable=False),
    PrimaryKeyConstraint("model_id", "key"),
)

model_version_tags = Table(
    "model_version_tags",
    metadata,
    Column("version_id", Integer, ForeignKey("model_versions.id"), nullable=False),
    Column("key", String(256), nullable=False),
    Column("value", Text, nullable=False),
    PrimaryKeyConstraint("version_id", "key"),
)

model_aliases = Table(
    "model_aliases",
    metadata,
    Column("model_id", Integer, ForeignKey("registered_models.id"), nullable=False),
    Column("alias", String(128), nullable=False),
    Column("version_id", Integer, ForeignKey("model_versions.id"), nullable=False),
    PrimaryKeyConstraint("model_id", "alias"),
)

# Append-only: every move of an alias, with who made it and when.
alias_events = Table(
    "alias_events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("model_id", Integer, ForeignKey("registered_models.id"), nullable=False),
    Column("alias", String(128), nullable=False),
    Column("from_version", Integer),
    Column("to_version", Integer),
    Column("actor", String(256), nullable=False),
    Column("at", Float, nullable=False),
    Column("reason", Text),
    Index(None, "model_id", "at"),
)

# Generic provenance: "dataset_version x -> run y", "run y -> model_version z", ...
lineage_edges = Table(
    "lineage_edges",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("src_type", String(64), nullable=False),
    Column("src_id", String(256), nullable=False),
    Column("dst_type", String(64), nullable=False),
    Column("dst_id", String(256), nullable=False),
    Column("relation", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("properties", JSON),
    UniqueConstraint("src_type", "src_id", "dst_type", "dst_id", "relation"),
    Index(None, "dst_type", "dst_id"),
)

# Datasets: a version is immutable Parquet in the artifact store, named by its sha256.
datasets = Table(
    "datasets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(256), nullable=False, unique=True),
    Column("description", Text),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

dataset_versions = Table(
    "dataset_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dataset_id", Integer, ForeignKey("datasets.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("row_count", BigInteger, nullable=False),
    Column("columns", JSON, nullable=False),
    Column("source", JSON, nullable=False),
    Column("profile", JSON),
    Column("run_id", String(32), ForeignKey("runs.id")),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(256), nullable=False),
    UniqueConstraint("dataset_id", "version"),
    UniqueConstraint("dataset_id", "digest"),
)

# Every validation of a dataset version: the suite as run and each check's outcome.
validations = Table(
    "validations",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("dataset_version_id", Integer, ForeignKey("dataset_versions.id"), nullable=False),
    Column("suite", String(256), nullable=False),
    Column("success", Boolean, nullable=False),
    Column("errors", Integer, nullable=False),
    Column("warnings", Integer, nullable=False),
    Column("result", JSON, nullable=False),
    Column("run_id", String(32), ForeignKey("runs.id")),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(256), nullable=False),
    Index(None, "dataset_version_id", "created_at"),
)

# Feature store: entities, feature views and their immutable versions, materializations.
feature_entities = Table(
    "feature_entities",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(256), nullable=False, unique=True),
    Column("join_keys", JSON, nullable=False),
    Column("description", Text),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

feature_views = Table(
    "feature_views",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(256), nullable=False, unique=True),
    Column("kind", String(32), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

feature_view_versions = Table(
    "feature_view_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("view_id", Integer, ForeignKey("feature_views.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("definition", JSON, nullable=False),
    Column("code_hash", String(64)),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(256), nullable=False),
    UniqueConstraint("view_id", "version"),
    UniqueConstraint("view_id", "digest"),
)

# One row per materialization of a view version into an online store; the newest
# successful one per (version, store) is the watermark an incremental run starts from.
feature_materializations = Table(
    "feature_materializations",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column(
        "view_version_id",
        Integer,
        # named by hand: the generated name passes PostgreSQL's 63-character limit
        ForeignKey("feature_view_versions.id", name="fk_feature_materializations_view_version"),
        nullable=False,
    ),
    Column("online_store", String(512), nullable=False),
    Column("start_time", Float),
    Column("end_time", Float, nullable=False),
    Column("full", Boolean, nullable=False),
    Column("rows_read", BigInteger, nullable=False),
    Column("entities_written", BigInteger, nullable=False),
    Column("seconds", Float, nullable=False),
    Column("run_id", String(32), ForeignKey("runs.id")),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(256), nullable=False),
    Index(
        "ix_feature_materializations_version_store_end",
        "view_version_id",
        "online_store",
        "end_time",
    ),
)

# One row per execution of a pipeline. ``host``/``pid``/``pid_started`` name the process
# that orchestrates it and ``heartbeat_at`` shows it is alive: a run left "running" by a
# process that died is found and marked failed. ``dedupe_key`` makes a scheduled firing
# create at most one run, however many schedulers race or restart.
pipeline_runs = Table(
    "pipeline_runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("pipeline", String(256), nullable=False),
    Column("ref", String(1024), nullable=False),
    Column("source_file", String(1024)),
    Column("status", String(16), nullable=False),
    Column("params", JSON, nullable=False),
    Column("executor", String(64), nullable=False),
    Column("trigger", String(256), nullable=False),
    Column("resumed_from", String(32)),
    Column("dedupe_key", String(256), unique=True),
    Column("host", String(256), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("pid_started", Float, nullable=False),
    Column("heartbeat_at", Float, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("ended_at", Float),
    Column("error", Text),
    Column("result", JSON),
    Column("created_by", String(256), nullable=False),
    Index("ix_pipeline_runs_pipeline_created_at", "pipeline", "created_at"),
    Index("ix_pipeline_runs_status", "status"),
)

# One row per step of a pipeline run. ``cache_key`` finds earlier results of the same
# code on the same inputs; ``explain`` says why the step ran or was taken from cache.
step_runs = Table(
    "step_runs",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("pipeline_run_id", String(32), ForeignKey("pipeline_runs.id"), nullable=False),
    Column("step", String(256), nullable=False),
    Column("function", String(1024), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("code_hash", String(64), nullable=False),
    Column("cache_key", String(64)),
    Column("inputs", JSON, nullable=False),
    Column("outputs", JSON),
    Column("explain", JSON),
    Column("source_run_id", String(32)),
    Column("logs", JSON),
    Column("started_at", Float),
    Column("ended_at", Float),
    Column("error", Text),
    UniqueConstraint("pipeline_run_id", "step"),
    Index("ix_step_runs_cache_key", "cache_key"),
    Index("ix_step_runs_step", "step"),
)

# Things that happened and that schedules react to: a new dataset version, an alert, a
# manual trigger. Append-only; ``id`` orders them, and each event schedule keeps the id
# of the last event it handled as its cursor.
events = Table(
    "events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("subject", String(256), nullable=False),
    Column("payload", JSON),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(256), nullable=False),
    Index("ix_events_kind_subject", "kind", "subject"),
)

# A pipeline run on a clock (``cron`` or ``interval_seconds``) or on events (``event_kind``
# and ``event_subject``, "*" for any). ``next_fire_at`` is the slot a scheduler claims by a
# compare-and-set update; ``last_event_id`` is the cursor of an event schedule.
pipeline_schedules = Table(
    "pipeline_schedules",
    metadata,
    Column("name", String(256), primary_key=True),
    Column("pipeline", String(1024), nullable=False),
    Column("params", JSON, nullable=False),
    Column("cron", String(256)),
    Column("interval_seconds", Integer),
    Column("timezone", String(64), nullable=False),
    Column("event_kind", String(32)),
    Column("event_subject", String(256)),
    Column("enabled", Boolean, nullable=False),
    Column("next_fire_at", Float),
    Column("last_fired_at", Float),
    Column("last_run_id", String(32)),
    Column("last_event_id", BigInteger),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("created_by", String(256), nullable=False),
    Index("ix_pipeline_schedules_next_fire_at", "next_fire_at"),
)

# A deployment: the registry versions a model server hosts under one name and how traffic
# is split between them. ``spec`` is the whole declaration (see forgeml.serving.spec);
# ``revision`` grows with every change, so servers polling the row see a change at once.
deployments = Table(
    "deployments",
    metadata,
    Column("name", String(256), primary_key=True),
    Column("spec", JSON, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("updated_by", String(256), nullable=False),
)

# One Parquet file of logged predictions in the artifact store (``digest``), with the span
# of request times it covers and the model versions that answered: what monitoring reads.
prediction_log_files = Table(
    "prediction_log_files",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("deployment", String(256), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("rows", Integer, nullable=False),
    Column("first_at", Float, nullable=False),
    Column("last_at", Float, nullable=False),
    Column("models", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
    Index("ix_prediction_log_files_deployment_last_at", "deployment", "last_at"),
)
