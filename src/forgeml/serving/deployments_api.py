"""Deployment verbs: declare, change and read what model servers host.

Every change is a new revision of the deployment's row; servers pick it up within
their refresh interval (or at once on ``POST /v1/admin/refresh`` or SIGHUP). Each
change is also an event (kind "deployment") with who made it and why, so the history
of a deployment reads like its alias history does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from forgeml import backend, config
from forgeml.errors import InvalidArgumentError
from forgeml.serving.spec import DeploymentSpec
from forgeml.store.deployments import DeploymentRecord


def deploy(
    name: str,
    model: str,
    *,
    reason: str | None = None,
    expected_revision: int | None = None,
    **options: Any,
) -> DeploymentRecord:
    """Create or replace deployment ``name`` serving ``model`` (a models:/ URI).

    ``options`` are the other fields of :class:`DeploymentSpec`: ``policy``,
    ``challenger``, ``weight``, ``fallback``, ``default_answer``, ``timeout_ms``,
    ``breaker={...}``, ``features=[...]`` and so on.
    """
    spec = DeploymentSpec.from_dict({"name": name, "model": model, **options})
    return save(spec, reason=reason, expected_revision=expected_revision)


def save(
    spec: DeploymentSpec, *, reason: str | None = None, expected_revision: int | None = None
) -> DeploymentRecord:
    """Store ``spec`` as the deployment's next revision and record the change."""
    _check_models_exist(spec)
    user = config.settings().user
    record = backend.deployments().put(spec.name, spec.to_dict(), user, expected_revision)
    backend.events().add(
        "deployment",
        spec.name,
        {"change": "saved", "revision": record.revision, "spec": record.spec, "reason": reason},
        user,
    )
    return record


def update(
    name: str, *, reason: str | None = None, expected_revision: int | None = None, **changes: Any
) -> DeploymentRecord:
    """Change some fields of a deployment, keeping the others."""
    current = backend.deployments().get(name)
    data = {**current.spec, **changes}
    spec = DeploymentSpec.from_dict(data, f"deployment {name!r}")
    revision = current.revision if expected_revision is None else expected_revision
    return save(spec, reason=reason, expected_revision=revision)


def apply_file(path: str | Path, reason: str | None = None) -> list[DeploymentRecord]:
    """Create or replace every deployment declared in a YAML or JSON file."""
    import yaml

    text = Path(path).read_text()
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidArgumentError(f"{path}: not valid YAML: {exc}") from None
    items = document.get("deployments") if isinstance(document, dict) else document
    if isinstance(document, dict) and "deployments" not in document:
        items = [document]
    if not isinstance(items, list) or not items:
        raise InvalidArgumentError(f"{path}: expected a list of deployments")
    specs = [
        DeploymentSpec.from_dict(item, f"{path}: deployments[{i}]") for i, item in enumerate(items)
    ]
    return [save(spec, reason=reason) for spec in specs]


def get_deployment(name: str) -> DeploymentRecord:
    return backend.deployments().get(name)


def list_deployments() -> list[DeploymentRecord]:
    return backend.deployments().list()


def remove_deployment(name: str, reason: str | None = None) -> None:
    backend.deployments().remove(name)
    backend.events().add(
        "deployment", name, {"change": "removed", "reason": reason}, config.settings().user
    )


def history(name: str, limit: int = 1000) -> list[dict[str, Any]]:
    """Every recorded change and rollout step of deployment ``name``, oldest first."""
    events = backend.events().since(0, kinds=["deployment"], limit=100_000)
    return [
        {"id": e.id, "at": e.created_at, "by": e.created_by, **(e.payload or {})}
        for e in events
        if e.subject == name
    ][-limit:]


def _check_models_exist(spec: DeploymentSpec) -> None:
    """Refuse a deployment naming a model version the registry does not have."""
    from forgeml.registry.api import get_model_version

    for role, uri in spec.model_uris.items():
        try:
            get_model_version(uri)
        except Exception as exc:
            raise InvalidArgumentError(f"deployment {spec.name!r}: {role} {uri}: {exc}") from None
