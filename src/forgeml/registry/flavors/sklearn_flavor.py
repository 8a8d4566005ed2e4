"""scikit-learn estimators and pipelines, in the skops format (no pickle).

skops refuses to build any type it has not been told to trust. The types a model needs
are recorded in the manifest when it is saved; loading trusts exactly those, and only
after the bundle's sha256 has been checked against the registry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from forgeml.errors import ModelFlavorError

NAME = "sklearn"
PACKAGES = ("scikit-learn", "skops", "numpy", "scipy")
FILE = "model.skops"


def matches(model: Any) -> bool:
    from sklearn.base import BaseEstimator

    return isinstance(model, BaseEstimator)


def save(model: Any, directory: Path, options: dict[str, Any]) -> dict[str, Any]:
    import skops.io

    path = directory / FILE
    try:
        skops.io.dump(model, path)
    except Exception as exc:
        raise ModelFlavorError(
            f"cannot save {type(model).__name__} in the skops format: {exc}"
        ) from exc
    return {"file": FILE, "trusted_types": sorted(skops.io.get_untrusted_types(file=path))}


def load(directory: Path, options: dict[str, Any]) -> Any:
    import skops.io
    from skops.io.exceptions import UntrustedTypesFoundException

    path = directory / options.get("file", FILE)
    trusted = list(options.get("trusted_types", []))
    try:
        return skops.io.load(path, trusted=trusted)  # refuses any type not in ``trusted``
    except UntrustedTypesFoundException as exc:
        raise ModelFlavorError(
            f"{path.name} asks for types it did not declare when saved: {exc}"
        ) from None


def predict(model: Any, example: Any) -> Any:
    if hasattr(model, "predict"):
        return model.predict(example)
    if hasattr(model, "transform"):
        return model.transform(example)
    return None
