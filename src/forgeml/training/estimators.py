"""``fit``: train a scikit-learn, XGBoost or LightGBM estimator with everything recorded.

One call fits the model, logs what it was (its parameters, flattened), how long it took,
how it learned (the validation curve of boosted trees, and where early stopping cut
it), how good it is (``evaluate`` on the validation set, or on the training data when
there is none), and optionally registers it. The run is the caller's open run, or one
``fit`` opens and closes.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from forgeml.errors import InvalidArgumentError
from forgeml.training import deps

if TYPE_CHECKING:
    from forgeml.store.records import ModelVersion
    from forgeml.tracking.active_run import ActiveRun
    from forgeml.training.evaluation import Evaluation
    from forgeml.training.predictions import Task

_SCALARS = (bool, int, float, str)


@dataclass(frozen=True)
class TrainResult:
    """What :func:`fit` produced: the fitted ``model`` (the object passed in), the run it
    logged to, its evaluation, its registered version (None unless ``register`` was
    given), and ``seconds`` spent in the model's own ``fit``."""

    model: Any
    run_id: str
    evaluation: Evaluation
    model_version: ModelVersion | None
    seconds: float


def fit(
    model: Any,
    X: Any,
    y: Any = None,
    *,
    eval_set: tuple[Any, Any] | None = None,
    task: Task | None = None,
    register: str | None = None,
    experiment: str | None = None,
    run_name: str | None = None,
    params: Mapping[str, Any] | None = None,
    early_stopping_rounds: int | None = None,
    example_rows: int = 5,
    plots: bool = True,
) -> TrainResult:
    """Fit ``model`` on ``X``, ``y`` and record it in a run.

    ``y`` may name a column of the frame ``X`` (it is taken out of the features); the
    second element of ``eval_set`` may likewise name a column of its first. Polars
    frames and Arrow tables are converted to pandas first, so the model keeps its
    feature names. ``params`` are logged alongside the estimator's own.

    For XGBoost and LightGBM models with an ``eval_set``, the per-iteration validation
    metrics are logged as metric histories ``valid_<metric>`` (step = iteration) and,
    with ``early_stopping_rounds``, training stops once the first validation metric has
    not improved for that many rounds and ``best_iteration`` is logged.

    With ``register`` (a model name), the fitted model is logged as a new version of that
    registered model, with the first ``example_rows`` rows of ``X`` as its input example.
    The run is the open one if there is one (``experiment`` and ``run_name`` are then
    not used), else a new one that ends when ``fit`` returns, FAILED if fitting raised.
    ``plots=False`` skips the evaluation plots, which need matplotlib.
    """
    from forgeml.training import boosting, evaluation, frames, predictions

    checked_task = predictions.check_task(task)
    _check_options(early_stopping_rounds, eval_set, example_rows)
    if plots:
        deps.require("matplotlib", "drawing evaluation plots (or pass plots=False)")
    X_train, y_train = _split(X, y, "y")
    valid = None
    if eval_set is not None:
        X_valid, y_valid = _split(eval_set[0], eval_set[1], "eval_set[1]")
        valid = (X_valid, y_valid)
    kind = boosting.library(model)
    if early_stopping_rounds is not None and kind == "sklearn":
        raise InvalidArgumentError(
            f"early_stopping_rounds applies to XGBoost and LightGBM models, not to "
            f"{type(model).__name__}"
        )
    from forgeml.training.runs import run_scope

    with run_scope(experiment, run_name) as run:
        logged = estimator_params(model)
        logged["train_rows"] = frames.rows(X_train)
        if valid is not None:
            logged["valid_rows"] = frames.rows(valid[0])
        if early_stopping_rounds is not None:
            logged["early_stopping_rounds"] = early_stopping_rounds
        logged.update(params or {})
        run.log_params(logged)
        options = boosting.fit_options(model, kind, valid, early_stopping_rounds)
        started = time.perf_counter()
        model.fit(X_train, y_train, **options)
        seconds = time.perf_counter() - started
        run.log_metric("fit_seconds", seconds)
        _log_curves(run, model, kind)
        if valid is not None:
            result = evaluation.evaluate(
                model, valid[0], valid[1], task=checked_task, prefix="valid", plots=plots
            )
        else:
            result = evaluation.evaluate(
                model, X_train, y_train, task=checked_task, prefix="train", plots=plots
            )
        version = None
        if register is not None:
            from forgeml.registry.api import log_model

            version = log_model(
                model, register, example=frames.head(X_train, example_rows), run_id=run.id
            )
        run_id = run.id
    return TrainResult(model, run_id, result, version, seconds)


def _check_options(
    early_stopping_rounds: int | None, eval_set: tuple[Any, Any] | None, example_rows: int
) -> None:
    if early_stopping_rounds is not None:
        if isinstance(early_stopping_rounds, bool) or not isinstance(early_stopping_rounds, int):
            raise InvalidArgumentError(
                f"early_stopping_rounds must be a whole number, got {early_stopping_rounds!r}"
            )
        if early_stopping_rounds < 1:
            raise InvalidArgumentError(
                f"early_stopping_rounds must be at least 1, got {early_stopping_rounds}"
            )
        if eval_set is None:
            raise InvalidArgumentError(
                "early_stopping_rounds needs an eval_set to watch: pass eval_set=(X_valid, y_valid)"
            )
    if eval_set is not None and (not isinstance(eval_set, tuple | list) or len(eval_set) != 2):
        raise InvalidArgumentError("eval_set must be a pair (X_valid, y_valid)")
    if isinstance(example_rows, bool) or not isinstance(example_rows, int) or example_rows < 1:
        raise InvalidArgumentError(f"example_rows must be at least 1, got {example_rows!r}")


def _split(X: Any, y: Any, name: str) -> tuple[Any, Any]:
    """Features and targets as estimators take them, ``y`` taken out of ``X`` when named."""
    from forgeml.training import frames

    if isinstance(y, str):
        X, y = frames.split_target(X, y, name)
    elif y is None:
        raise InvalidArgumentError(f"{name} is required: the targets, or a column name of X")
    X = frames.features(X)
    y = frames.target(y)
    if frames.rows(X) != len(y):
        raise InvalidArgumentError(f"X has {frames.rows(X)} rows but {name} has {len(y)}")
    return X, y


def estimator_params(model: Any) -> dict[str, Any]:
    """The estimator's parameters as loggable scalars.

    ``get_params(deep=True)`` already names a nested estimator's parameters with its
    prefix (``logisticregression__C``); nested estimators themselves are logged by class
    name and anything else that is not a scalar (lists of steps, callables) is left out.
    """
    import numpy as np

    out: dict[str, Any] = {"model_class": type(model).__name__}
    get_params = getattr(model, "get_params", None)
    if get_params is None:
        return out
    for key, value in sorted(get_params(deep=True).items()):
        if value is None or isinstance(value, _SCALARS):
            out[key] = value
        elif isinstance(value, np.generic):
            out[key] = value.item()
        elif hasattr(value, "get_params"):
            out[key] = type(value).__name__
    return out


def _log_curves(run: ActiveRun, model: Any, kind: Any) -> None:
    from forgeml.training import boosting

    curves = boosting.validation_curves(model, kind)
    for key, values in curves.items():
        for step, value in enumerate(values):
            run.log_metric(key, value, step)
    best = boosting.best_iteration(model, kind)
    if best is not None and curves:
        run.log_metric("best_iteration", best)
