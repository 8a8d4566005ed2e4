"""forgeml: a self-hostable machine-learning platform in one package.

    import forgeml as fm

    with fm.start_run(experiment="flights", name="gbm"):
        fm.log_params({"max_depth": 6})
        fm.log_metrics({"auc": 0.91}, step=3)
        version = fm.log_model(model, name="flight-delay", example=X[:5])
    fm.set_alias("flight-delay", "champion", version.version)
    model = fm.load_model("models:/flight-delay@champion")

Names are imported on first use, so ``import forgeml`` costs almost nothing and a
command such as ``forgeml --help`` never loads a database driver.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # tracking
    "start_run": "forgeml.tracking.fluent",
    "end_run": "forgeml.tracking.fluent",
    "active_run": "forgeml.tracking.fluent",
    "log_param": "forgeml.tracking.fluent",
    "log_params": "forgeml.tracking.fluent",
    "log_metric": "forgeml.tracking.fluent",
    "log_metrics": "forgeml.tracking.fluent",
    "set_tag": "forgeml.tracking.fluent",
    "set_tags": "forgeml.tracking.fluent",
    "log_artifact": "forgeml.tracking.fluent",
    "log_text": "forgeml.tracking.fluent",
    "log_dict": "forgeml.tracking.fluent",
    "flush": "forgeml.tracking.fluent",
    "get_run": "forgeml.tracking.fluent",
    "search_runs": "forgeml.tracking.fluent",
    "get_metric_history": "forgeml.tracking.fluent",
    "list_artifacts": "forgeml.tracking.fluent",
    "download_artifact": "forgeml.tracking.fluent",
    # registry
    "log_model": "forgeml.registry.api",
    "load_model": "forgeml.registry.api",
    "get_model_version": "forgeml.registry.api",
    "list_models": "forgeml.registry.api",
    "set_alias": "forgeml.registry.api",
    "delete_alias": "forgeml.registry.api",
    "alias_history": "forgeml.registry.api",
    # lineage
    "lineage": "forgeml.lineage_graph",
    # data
    "Dataset": "forgeml.data.dataset",
    # features
    "Entity": "forgeml.features.definitions",
    "FeatureView": "forgeml.features.definitions",
    "OnDemandFeatureView": "forgeml.features.definitions",
    # training
    "tune": "forgeml.training.tune",
    # pipelines
    "step": "forgeml.pipelines.dsl",
    "pipeline": "forgeml.pipelines.dsl",
    "resources": "forgeml.pipelines.dsl",
    # records and errors users catch or annotate with
    "Run": "forgeml.store.records",
    "RunStatus": "forgeml.store.records",
    "ModelVersion": "forgeml.store.records",
    "ForgeMLError": "forgeml.errors",
}

_SUBPACKAGES = ("data", "features", "pipelines", "serving", "training")

__all__ = sorted([*_EXPORTS, "__version__", *_SUBPACKAGES])


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:  # fm.data.Suite, fm.features.training_frame and friends
        return importlib.import_module(f"forgeml.{name}")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'forgeml' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover - gives type checkers and IDEs the real signatures
    from forgeml import (
        data as data,
        features as features,
        pipelines as pipelines,
        serving as serving,
        training as training,
    )
    from forgeml.data.dataset import Dataset as Dataset
    from forgeml.errors import ForgeMLError as ForgeMLError
    from forgeml.features.definitions import (
        Entity as Entity,
        FeatureView as FeatureView,
        OnDemandFeatureView as OnDemandFeatureView,
    )
    from forgeml.lineage_graph import lineage as lineage
    from forgeml.pipelines.dsl import (
        pipeline as pipeline,
        resources as resources,
        step as step,
    )
    from forgeml.registry.api import (
        alias_history as alias_history,
        delete_alias as delete_alias,
        get_model_version as get_model_version,
        list_models as list_models,
        load_model as load_model,
        log_model as log_model,
        set_alias as set_alias,
    )
    from forgeml.store.records import (
        ModelVersion as ModelVersion,
        Run as Run,
        RunStatus as RunStatus,
    )
    from forgeml.tracking.fluent import (
        active_run as active_run,
        download_artifact as download_artifact,
        end_run as end_run,
        flush as flush,
        get_metric_history as get_metric_history,
        get_run as get_run,
        list_artifacts as list_artifacts,
        log_artifact as log_artifact,
        log_dict as log_dict,
        log_metric as log_metric,
        log_metrics as log_metrics,
        log_param as log_param,
        log_params as log_params,
        log_text as log_text,
        search_runs as search_runs,
        set_tag as set_tag,
        set_tags as set_tags,
        start_run as start_run,
    )
    from forgeml.training.tune import tune as tune
