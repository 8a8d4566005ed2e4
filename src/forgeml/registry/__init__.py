"""The model registry: versions with signatures, aliases with an audit trail, flavors."""

from forgeml.registry.api import (
    alias_history,
    delete_alias,
    get_model,
    get_model_version,
    list_model_versions,
    list_models,
    load_model,
    log_model,
    model_manifest,
    models_of_run,
    set_alias,
    set_model_version_tags,
)
from forgeml.registry.signature import infer_signature
from forgeml.registry.uri import ModelRef, parse_model_uri

__all__ = [
    "ModelRef",
    "alias_history",
    "delete_alias",
    "get_model",
    "get_model_version",
    "infer_signature",
    "list_model_versions",
    "list_models",
    "load_model",
    "log_model",
    "model_manifest",
    "models_of_run",
    "parse_model_uri",
    "set_alias",
    "set_model_version_tags",
]
