"""The registry verbs: ``fm.log_model``, ``fm.load_model``, ``fm.set_alias``...

A version is written in this order: the bundle's files, then its manifest, then the
database row. A crash before the row leaves only unreferenced blobs, never a version
pointing at missing bytes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from forgeml import backend, config
from forgeml.errors import InvalidArgumentError
from forgeml.registry import bundle
from forgeml.registry.flavors import detect_flavor, get_flavor
from forgeml.registry.signature import infer_signature
from forgeml.registry.uri import ModelRef, check_alias, check_model_name, parse_model_uri
from forgeml.store.models import NewVersion
from forgeml.store.records import AliasEvent, ModelVersion, RegisteredModel

log = logging.getLogger("forgeml.registry")
_CURRENT_RUN: Any = object()


def log_model(
    model: Any,
    name: str,
    *,
    example: Any = None,
    flavor: str | None = None,
    run_id: str | None = _CURRENT_RUN,
    signature: dict[str, Any] | None = None,
    description: str | None = None,
    tags: Mapping[str, Any] | None = None,
    **flavor_options: Any,
) -> ModelVersion:
    """Save ``model`` as the next version of registered model ``name``.

    The signature is inferred from ``example`` (a small batch of real input) unless
    given. The version is linked to ``run_id``, by default the current run, and a
    lineage edge run -> model version is recorded. Flavor options: PyTorch takes
    ``format``, ``code`` and ``init_kwargs``.
    """
    check_model_name(name)
    flavor = flavor or detect_flavor(model)
    module = get_flavor(flavor)
    if not module.matches(model):
        raise InvalidArgumentError(f"flavor {flavor!r} cannot save a {type(model).__name__}")
    if run_id is _CURRENT_RUN:
        from forgeml.tracking.session import current_run

        active = current_run.get()
        run_id = active.id if active is not None else None
    runs = backend.runs()
    if run_id is not None:
        from forgeml.tracking.fluent import flush

        flush()
        run_id = runs.resolve_run_id(run_id)
        runs.get_run(run_id)
    if signature is None and example is not None:
        signature = _infer(module, model, example)
    if example is not None:
        flavor_options.setdefault("example", example)
    saved = bundle.save_bundle(backend.artifact_store(), model, flavor, flavor_options, signature)
    version = backend.models().create_version(
        name,
        NewVersion(
            run_id=run_id,
            flavor=flavor,
            manifest_digest=saved.manifest_digest,
            size=saved.size,
            signature=signature,
            description=description,
            created_by=config.settings().user,
            tags={str(k): str(v) for k, v in (tags or {}).items()},
        ),
    )
    if run_id is not None:
        from forgeml.lineage_graph import record

        record(("run", run_id), version, "produced")
    return version


def _infer(module: Any, model: Any, example: Any) -> dict[str, Any]:
    try:
        output = module.predict(model, example)
    except Exception as exc:
        log.warning("could not infer the output schema of %s: %s", type(model).__name__, exc)
        output = None
    return infer_signature(example, output)


def _ref(model: str | ModelRef, version: int | None, alias: str | None) -> ModelRef:
    if isinstance(model, ModelRef):
        return model
    if ":/" in model:
        if version is not None or alias is not None:
            raise InvalidArgumentError("give either a models:/ URI or version=/alias=, not both")
        return parse_model_uri(model)
    if version is not None and alias is not None:
        raise InvalidArgumentError("give version= or alias=, not both")
    return ModelRef(check_model_name(model), version, alias)


def get_model_version(
    model: str | ModelRef, version: int | None = None, alias: str | None = None
) -> ModelVersion:
    """A version by URI (``models:/name/3``, ``models:/name@champion``) or name + version/alias."""
    ref = _ref(model, version, alias)
    repo = backend.models()
    if ref.version is not None:
        return repo.get_version(ref.name, ref.version)
    if ref.alias is not None:
        return repo.resolve_alias(ref.name, ref.alias)
    return repo.latest_version(ref.name)


def load_model(uri: str | ModelRef | ModelVersion) -> Any:
    """Load a registered model as its native object, after verifying every byte of it."""
    version = uri if isinstance(uri, ModelVersion) else get_model_version(uri)
    return bundle.load_bundle(
        backend.artifact_store(), version.manifest_digest, config.settings().cache_dir
    )


def model_manifest(uri: str | ModelRef | ModelVersion) -> dict[str, Any]:
    """The verified manifest of a version: files, flavor, signature, requirements."""
    version = uri if isinstance(uri, ModelVersion) else get_model_version(uri)
    return bundle.read_manifest(backend.artifact_store(), version.manifest_digest)


def set_alias(name: str, alias: str, version: int, *, reason: str | None = None) -> AliasEvent:
    """Point ``alias`` (e.g. "champion") at ``version``; the move is kept in the audit trail."""
    check_model_name(name)
    check_alias(alias)
    if isinstance(version, bool) or not isinstance(version, int):
        raise InvalidArgumentError(f"version must be a whole number, got {version!r}")
    return backend.models().set_alias(name, alias, version, config.settings().user, reason)


def delete_alias(name: str, alias: str, *, reason: str | None = None) -> AliasEvent:
    check_model_name(name)
    check_alias(alias)
    return backend.models().set_alias(name, alias, None, config.settings().user, reason)


def alias_history(name: str, alias: str | None = None) -> list[AliasEvent]:
    """Every move of ``alias`` (or of all aliases) of ``name``, oldest first."""
    return backend.models().alias_history(check_model_name(name), alias)


def list_models() -> list[RegisteredModel]:
    return backend.models().list_models()


def get_model(name: str) -> RegisteredModel:
    return backend.models().get_model(check_model_name(name))


def list_model_versions(name: str) -> list[ModelVersion]:
    """Versions of ``name``, newest first."""
    return backend.models().list_versions(check_model_name(name))


def set_model_version_tags(uri: str, tags: Mapping[str, Any]) -> None:
    version = get_model_version(uri)
    backend.models().set_version_tags(
        version.model, version.version, {str(k): str(v) for k, v in tags.items()}
    )


def models_of_run(run_id: str) -> list[ModelVersion]:
    repo = backend.runs()
    return backend.models().versions_of_run(repo.resolve_run_id(run_id))


__all__ = [
    "alias_history",
    "delete_alias",
    "get_model",
    "get_model_version",
    "list_model_versions",
    "list_models",
    "load_model",
    "log_model",
    "model_manifest",
    "models_of_run",
    "set_alias",
    "set_model_version_tags",
]
