"""``evaluate``: the metrics and plots of a fitted model on labelled data, logged to the run.

One function serves every model forgeml trains, so a scikit-learn pipeline, a boosted
tree and a PyTorch network are compared on the same metrics with the same names.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forgeml.errors import InvalidArgumentError
from forgeml.training import deps

if TYPE_CHECKING:
    import os

    import numpy as np

    from forgeml.training.predictions import Predictions, Task


@dataclass(frozen=True)
class Evaluation:
    """The outcome of :func:`evaluate`: ``metrics`` by bare name (``"f1"``, ``"rmse"``), and
    the local PNG file of each plot by name (``"confusion_matrix"``, ``"residuals"``)."""

    task: Task
    metrics: dict[str, float]
    plots: dict[str, Path] = field(default_factory=dict)


def evaluate(
    model: Any,
    X: Any,
    y: Any,
    *,
    task: Task | None = None,
    prefix: str = "test",
    log: bool = True,
    plots: bool = True,
    plot_dir: str | os.PathLike[str] | None = None,
) -> Evaluation:
    """Score ``model`` on ``X`` against ``y``, draw its plots, and log both to the active run.

    ``task`` ("classification" or "regression") is inferred when None: from what the
    model declares itself to be, then from whether it gives probabilities, then from the
    target (booleans, strings, or integers with few values are labels). ``X`` may be a
    pandas or polars frame, an Arrow table or an array; ``y`` any array-like or Series.

    With ``log`` and an open run, metrics are logged as ``{prefix}_{name}`` and plots as
    artifacts ``plots/{prefix}_{name}.png``; without an open run nothing is logged and no
    run is opened. Plots are written to ``plot_dir`` (default: a fresh directory under
    forgeml's cache) and need matplotlib.
    """
    from forgeml.training import frames, metrics, predictions

    checked = predictions.check_task(task)
    if not isinstance(prefix, str) or not prefix.strip():
        raise InvalidArgumentError(f"prefix must be a non-empty string, got {prefix!r}")
    if plots:
        deps.require("matplotlib", "drawing evaluation plots (or pass plots=False)")
    y_true = frames.target(y)
    resolved = checked or predictions.infer_task(model, y_true)
    predicted = predictions.predict(model, X, resolved)
    if len(predicted.y_pred) != len(y_true):
        raise InvalidArgumentError(
            f"X has {len(predicted.y_pred)} rows but y has {len(y_true)}: they must match"
        )
    if len(y_true) == 0:
        raise InvalidArgumentError("cannot evaluate on zero rows")
    if resolved == "classification":
        scores = metrics.classification(y_true, predicted)
    else:
        scores = metrics.regression(y_true, predicted.y_pred)
    drawn: dict[str, Path] = {}
    if plots:
        directory = Path(plot_dir) if plot_dir is not None else _default_plot_dir()
        drawn = _draw(resolved, y_true, predicted, directory, prefix)
    if log:
        _log(prefix, scores, drawn)
    return Evaluation(resolved, scores, drawn)


def _default_plot_dir() -> Path:
    from forgeml import config

    stamp = time.strftime("%Y%m%d-%H%M%S")
    return config.settings().cache_dir / "plots" / f"{stamp}-{uuid.uuid4().hex[:8]}"


def _draw(
    task: Task,
    y: np.ndarray[Any, Any],
    predicted: Predictions,
    directory: Path,
    prefix: str,
) -> dict[str, Path]:
    import numpy as np

    from forgeml.training import plots

    def path(name: str) -> Path:
        return directory / f"{prefix}_{name}.png"

    if task == "regression":
        return {
            "residuals": plots.residuals(y, predicted.y_pred, path("residuals")),
            "predicted_vs_actual": plots.predicted_vs_actual(
                y, predicted.y_pred, path("predicted_vs_actual")
            ),
        }
    classes = predicted.classes
    if classes is None:
        classes = np.unique(np.concatenate([y.astype(object), predicted.y_pred.astype(object)]))
    drawn = {
        "confusion_matrix": plots.confusion_matrix(
            y, predicted.y_pred, classes, path("confusion_matrix")
        )
    }
    if predicted.proba is not None:
        drawn["calibration"] = plots.calibration(y, predicted.proba, classes, path("calibration"))
    return drawn


def _log(prefix: str, scores: dict[str, float], drawn: dict[str, Path]) -> None:
    from forgeml.tracking.fluent import active_run

    run = active_run()
    if run is None:
        return
    run.log_metrics({f"{prefix}_{name}": value for name, value in scores.items()})
    for file in drawn.values():
        run.log_artifact(file, "plots")
