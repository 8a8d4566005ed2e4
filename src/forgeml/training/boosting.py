"""What XGBoost and LightGBM need beyond the scikit-learn contract: evaluation sets, early
stopping, and the per-iteration validation curve they record while fitting.

Both libraries name things their own way (``validation_0`` / ``valid_0``, ``best_iteration``
counted from 0 / ``best_iteration_`` counted from 1); this module maps them onto one
convention: the curve of metric ``m`` is logged as ``valid_m`` with step = iteration,
counted from 0, and ``best_iteration`` is a step of that curve.
"""

from __future__ import annotations

import inspect
from typing import Any, Literal

Library = Literal["xgboost", "lightgbm", "sklearn"]
_VALID = "valid"


def library(model: Any) -> Library:
    """Which fitting convention ``model`` follows, from the package its class comes from."""
    roots = {cls.__module__.split(".")[0] for cls in type(model).__mro__}
    if "xgboost" in roots:
        return "xgboost"
    if "lightgbm" in roots:
        return "lightgbm"
    return "sklearn"


def fit_options(
    model: Any, kind: Library, eval_set: tuple[Any, Any] | None, early_stopping_rounds: int | None
) -> dict[str, Any]:
    """Keyword arguments for ``model.fit`` (XGBoost takes early stopping as a parameter, so
    it is set on the model here)."""
    if eval_set is None:
        return {}
    if kind == "xgboost":
        if early_stopping_rounds is not None:
            model.set_params(early_stopping_rounds=early_stopping_rounds)
        return {"eval_set": [eval_set], "verbose": False}
    if kind == "lightgbm":
        options: dict[str, Any] = {"eval_names": [_VALID]}
        if "eval_X" in inspect.signature(model.fit).parameters:  # LightGBM 4.7 and later
            options.update(eval_X=(eval_set[0],), eval_y=(eval_set[1],))
        else:
            options["eval_set"] = [eval_set]
        if early_stopping_rounds is not None:
            import lightgbm

            options["callbacks"] = [lightgbm.early_stopping(early_stopping_rounds, verbose=False)]
        return options
    return {}


def validation_curves(model: Any, kind: Library) -> dict[str, list[float]]:
    """Per-iteration validation metrics recorded during fitting, keyed ``valid_<metric>``."""
    if kind == "xgboost":
        try:
            results: dict[str, dict[str, list[float]]] = model.evals_result()
        except Exception:  # XGBoost raises XGBoostError when no evaluation set was given
            return {}
    elif kind == "lightgbm":
        results = getattr(model, "evals_result_", None) or {}
    else:
        return {}
    curves: dict[str, list[float]] = {}
    for metrics in results.values():  # one evaluation set, whatever the library called it
        for metric, values in metrics.items():
            curves[f"{_VALID}_{metric}"] = [float(v) for v in values]
        break
    return curves


def best_iteration(model: Any, kind: Library) -> int | None:
    """The iteration early stopping kept, counted from 0; None when it did not run."""
    if kind == "xgboost":
        value = getattr(model, "best_iteration", None)
        return int(value) if value is not None else None
    if kind == "lightgbm":
        value = getattr(model, "best_iteration_", None)
        return int(value) - 1 if value else None  # LightGBM counts from 1; 0 means unset
    return None
