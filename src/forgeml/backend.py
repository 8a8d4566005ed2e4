"""The process's connections to its stores, opened lazily from the settings.

Nothing here runs at import time: ``import forgeml`` stays cheap, and the first call
that needs the database opens it (creating the schema if the database is empty).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from forgeml import config

if TYPE_CHECKING:
    from forgeml.artifacts import ArtifactStore
    from forgeml.store import Database
    from forgeml.store.datasets import DatasetRepository
    from forgeml.store.features import FeatureRepository
    from forgeml.store.lineage import LineageRepository
    from forgeml.store.models import ModelRepository
    from forgeml.store.pipelines import PipelineRepository
    from forgeml.store.runs import RunRepository

_lock = threading.RLock()
_state: dict[str, Any] = {}
T = TypeVar("T")


def _get(name: str, factory: Callable[[], T]) -> T:
    """The process-wide instance ``name``, made by ``factory`` on first use."""
    value = _state.get(name)
    if value is None:
        with _lock:
            value = _state.get(name)
            if value is None:
                value = factory()
                _state[name] = value
    return cast(T, value)


def database() -> Database:
    from forgeml.store import Database

    return _get("database", lambda: Database(config.settings().db_url))


def artifact_store() -> ArtifactStore:
    from forgeml.artifacts import ArtifactStore

    return _get("artifacts", lambda: ArtifactStore(config.settings().artifacts_url))


def runs() -> RunRepository:
    from forgeml.store.runs import RunRepository

    return _get("runs", lambda: RunRepository(database()))


def models() -> ModelRepository:
    from forgeml.store.models import ModelRepository

    return _get("models", lambda: ModelRepository(database()))


def lineage() -> LineageRepository:
    from forgeml.store.lineage import LineageRepository

    return _get("lineage", lambda: LineageRepository(database()))


def datasets() -> DatasetRepository:
    from forgeml.store.datasets import DatasetRepository

    return _get("datasets", lambda: DatasetRepository(database()))


def features() -> FeatureRepository:
    from forgeml.store.features import FeatureRepository

    return _get("features", lambda: FeatureRepository(database()))


def reset() -> None:
    """Close connections and forget them; the next call reopens from fresh settings."""
    from forgeml.tracking import fluent

    fluent.shutdown_writer()
    from forgeml.features.online_store import close_default_stores

    close_default_stores()
    with _lock:
        db = _state.get("database")
        _state.clear()
    if db is not None:
        db.dispose()
    config.settings.cache_clear()


def pipelines() -> PipelineRepository:
    from forgeml.store.pipelines import PipelineRepository

    return _get("pipelines", lambda: PipelineRepository(database()))


def schedules() -> ScheduleRepository:
    from forgeml.store.schedules import ScheduleRepository

    return _get("schedules", lambda: ScheduleRepository(database()))


def events() -> EventRepository:
    from forgeml.store.schedules import EventRepository

    return _get("events", lambda: EventRepository(database()))


def deployments() -> DeploymentRepository:
    from forgeml.store.deployments import DeploymentRepository

    return _get("deployments", lambda: DeploymentRepository(database()))


if TYPE_CHECKING:
    from forgeml.store.deployments import DeploymentRepository
    from forgeml.store.schedules import EventRepository, ScheduleRepository
