"""The metrics an evaluation reports, by task.

Each metric that cannot be defined for the data at hand (ROC AUC when the targets hold
a single class, R² on one row) is left out rather than reported as NaN, so a metric
that exists always means something.

Classification: ``accuracy``, ``balanced_accuracy``, ``precision``, ``recall``, ``f1``
(of the positive class, the last of the sorted labels, for two classes; macro averages
for more), and with probabilities ``roc_auc`` (one-vs-rest for several classes),
``log_loss`` and, for two classes, ``brier``.

Regression: ``rmse``, ``mae``, ``r2``, ``median_ae`` and ``mape_nonzero``: the mean
absolute percentage error (as a fraction) over the rows whose target is not zero, named
so because those rows are left out.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from forgeml.training.predictions import Predictions


def _finite(values: dict[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if math.isfinite(v)}


def classification(y: np.ndarray[Any, Any], predictions: Predictions) -> dict[str, float]:
    from sklearn import metrics as m
    from sklearn.exceptions import UndefinedMetricWarning

    y_pred = predictions.y_pred
    classes = predictions.classes
    if classes is None:
        classes = np.unique(np.concatenate([np.asarray(y, dtype=object), y_pred.astype(object)]))
    binary = len(classes) == 2
    average: Any = "binary" if binary else "macro"
    pos_label: Any = classes[1] if binary else 1
    out: dict[str, float] = {}
    with warnings.catch_warnings():
        # zero_division handles empty classes; the rest warn about what we document above
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        warnings.simplefilter("ignore", UserWarning)
        out["accuracy"] = m.accuracy_score(y, y_pred)
        out["balanced_accuracy"] = m.balanced_accuracy_score(y, y_pred)
        labels = None if binary else list(classes)
        options: dict[str, Any] = {
            "average": average,
            "pos_label": pos_label,
            "labels": labels,
            "zero_division": 0,
        }
        out["precision"] = m.precision_score(y, y_pred, **options)
        out["recall"] = m.recall_score(y, y_pred, **options)
        out["f1"] = m.f1_score(y, y_pred, **options)
        proba = predictions.proba
        if proba is not None:
            out.update(_probability_metrics(y, proba, classes))
    return _finite(out)


def _probability_metrics(
    y: np.ndarray[Any, Any], proba: np.ndarray[Any, Any], classes: np.ndarray[Any, Any]
) -> dict[str, float]:
    from sklearn import metrics as m

    out: dict[str, float] = {}
    present = len(np.unique(y))
    if len(classes) == 2:
        positive = np.asarray(y == classes[1])
        if present == 2:
            out["roc_auc"] = m.roc_auc_score(positive, proba[:, 1])
        out["brier"] = m.brier_score_loss(positive, proba[:, 1])
    elif present == len(classes):
        try:
            out["roc_auc"] = m.roc_auc_score(y, proba, multi_class="ovr", labels=list(classes))
        except ValueError:  # probabilities that do not sum to one, say
            pass
    try:
        out["log_loss"] = m.log_loss(y, proba, labels=list(classes))
    except ValueError:  # a target label the model has never seen
        pass
    return out


def regression(y: np.ndarray[Any, Any], y_pred: np.ndarray[Any, Any]) -> dict[str, float]:
    from sklearn import metrics as m

    y = np.asarray(y, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    error = y_pred - y
    out = {
        "rmse": math.sqrt(float(np.mean(error**2))),
        "mae": float(np.mean(np.abs(error))),
        "median_ae": float(np.median(np.abs(error))),
    }
    if len(y) >= 2:
        out["r2"] = m.r2_score(y, y_pred)
    nonzero = y != 0
    if nonzero.any():
        out["mape_nonzero"] = float(np.mean(np.abs(error[nonzero]) / np.abs(y[nonzero])))
    return _finite(out)
