"""The metadata store: SQLAlchemy Core tables, Alembic migrations, one repository per
aggregate (runs, models, lineage)."""

from forgeml.store.database import Database, current_revision, ensure_schema, upgrade
from forgeml.store.records import (
    AliasEvent,
    ArtifactRecord,
    Experiment,
    LineageEdge,
    MetricPoint,
    ModelVersion,
    RegisteredModel,
    Run,
    RunStatus,
)

__all__ = [
    "AliasEvent",
    "ArtifactRecord",
    "Database",
    "Experiment",
    "LineageEdge",
    "MetricPoint",
    "ModelVersion",
    "RegisteredModel",
    "Run",
    "RunStatus",
    "current_revision",
    "ensure_schema",
    "upgrade",
]
