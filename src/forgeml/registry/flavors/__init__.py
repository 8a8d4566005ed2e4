"""Model flavors: how each kind of model is saved to files and loaded back.

Flavors are listed by name with a dotted module path and imported only when used, so
``import forgeml`` never loads xgboost or torch. Each flavor module provides::

    NAME: str
    PACKAGES: tuple[str, ...]                       # recorded as requirements
    def matches(model) -> bool
    def save(model, directory: Path, options: dict) -> dict   # options for the manifest
    def load(directory: Path, options: dict) -> model
    def predict(model, example) -> output | None     # for the output signature
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from forgeml.errors import ModelFlavorError

# Order matters for detection: gradient-boosting wrappers are also scikit-learn estimators.
FLAVORS: dict[str, str] = {
    "xgboost": "forgeml.registry.flavors.xgboost_flavor",
    "lightgbm": "forgeml.registry.flavors.lightgbm_flavor",
    "pytorch": "forgeml.registry.flavors.pytorch_flavor",
    "sklearn": "forgeml.registry.flavors.sklearn_flavor",
}

# Module prefixes of model classes, checked before importing any flavor module.
_DETECT: dict[str, str] = {
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
    "torch": "pytorch",
    "sklearn": "sklearn",
}


def get_flavor(name: str) -> ModuleType:
    path = FLAVORS.get(name)
    if path is None:
        raise ModelFlavorError(
            f"unknown model flavor {name!r} (known: {', '.join(sorted(FLAVORS))})"
        )
    return importlib.import_module(path)


def detect_flavor(model: Any) -> str:
    """The flavor for ``model``, from the modules its class and bases come from."""
    for cls in type(model).__mro__:
        root = cls.__module__.split(".")[0]
        if root in _DETECT:
            name = _DETECT[root]
            if get_flavor(name).matches(model):
                return name
    raise ModelFlavorError(
        f"no flavor can save a {type(model).__module__}.{type(model).__qualname__}; "
        f"supported: scikit-learn estimators, XGBoost, LightGBM and PyTorch modules "
        "(pass flavor= to choose one)"
    )
