"""XGBoost boosters and their scikit-learn wrappers, in XGBoost's own UBJSON format."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from forgeml.errors import ModelFlavorError

NAME = "xgboost"
PACKAGES = ("xgboost", "numpy")
FILE = "model.ubj"
# Only these classes are ever built on load: a manifest cannot name arbitrary code.
_CLASSES = (
    "Booster",
    "XGBClassifier",
    "XGBRegressor",
    "XGBRanker",
    "XGBRFClassifier",
    "XGBRFRegressor",
)


def matches(model: Any) -> bool:
    return type(model).__name__ in _CLASSES and type(model).__module__.startswith("xgboost")


def save(model: Any, directory: Path, options: dict[str, Any]) -> dict[str, Any]:
    kind = type(model).__name__
    model.save_model(str(directory / FILE))
    return {"file": FILE, "class": kind}


def load(directory: Path, options: dict[str, Any]) -> Any:
    import xgboost

    kind = options.get("class", "Booster")
    if kind not in _CLASSES:
        raise ModelFlavorError(f"xgboost class {kind!r} is not one forgeml loads")
    path = str(directory / options.get("file", FILE))
    if kind == "Booster":
        return xgboost.Booster(model_file=path)
    model = getattr(xgboost, kind)()
    model.load_model(path)
    return model


def predict(model: Any, example: Any) -> Any:
    import xgboost

    if isinstance(model, xgboost.Booster):
        return model.predict(xgboost.DMatrix(example))
    return model.predict(example)
