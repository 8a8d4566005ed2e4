"""Predictions from any model forgeml trains: labels, class probabilities, or values.

scikit-learn estimators and pipelines, XGBoost and LightGBM wrappers answer through
``predict`` / ``predict_proba``. PyTorch modules are run in evaluation mode, in
chunks, on the device their parameters live on; their outputs are taken to be logits
(softmax over several columns, a sigmoid over one) for classification and values for
regression.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from forgeml.errors import InvalidArgumentError
from forgeml.training import frames

Task = Literal["classification", "regression"]
TASKS: tuple[Task, ...] = ("classification", "regression")
_CHUNK = 8192
_MAX_CLASSES = 20


@dataclass(frozen=True)
class Predictions:
    """What a model said about ``X``: ``proba`` columns follow the order of ``classes``."""

    y_pred: np.ndarray[Any, Any]
    proba: np.ndarray[Any, Any] | None = None
    classes: np.ndarray[Any, Any] | None = None


def _mro_roots(model: Any) -> set[str]:
    return {cls.__module__.split(".")[0] for cls in type(model).__mro__}


def is_torch_module(model: Any) -> bool:
    """True for a ``torch.nn.Module``, decided without importing torch for other models."""
    if "torch" not in _mro_roots(model):
        return False
    import torch

    return isinstance(model, torch.nn.Module)


def _declared_task(model: Any) -> Task | None:
    declared = getattr(model, "_estimator_type", None)
    if declared == "classifier":
        return "classification"
    if declared == "regressor":
        return "regression"
    if _mro_roots(model) & {"sklearn", "xgboost", "lightgbm"}:
        from sklearn.base import is_classifier, is_regressor

        if is_classifier(model):
            return "classification"
        if is_regressor(model):
            return "regression"
    return None


def looks_categorical(y: np.ndarray[Any, Any]) -> bool:
    """Labels rather than quantities: booleans, strings, or integers with few values."""
    kind = y.dtype.kind
    if kind in "bOUS":
        return True
    if kind in "iu":
        return len(np.unique(y)) <= _MAX_CLASSES
    return False


def check_task(task: str | None) -> Task | None:
    if task is None:
        return None
    if task not in TASKS:
        raise InvalidArgumentError(
            f"task must be 'classification' or 'regression' (or None to infer it), got {task!r}"
        )
    return "classification" if task == "classification" else "regression"


def infer_task(model: Any, y: np.ndarray[Any, Any]) -> Task:
    """What the model is for: its own declaration first, then the shape of the target."""
    declared = _declared_task(model)
    if declared is not None:
        return declared
    if hasattr(model, "predict_proba"):
        return "classification"
    return "classification" if looks_categorical(y) else "regression"


def predict(model: Any, X: Any, task: Task) -> Predictions:
    if is_torch_module(model):
        return _from_outputs(torch_outputs(model, X), task)
    X = frames.features(X)
    y_pred = np.asarray(model.predict(X))
    if y_pred.ndim == 2 and y_pred.shape[1] == 1:
        y_pred = y_pred.ravel()
    if task == "regression":
        return Predictions(y_pred)
    proba = np.asarray(model.predict_proba(X)) if hasattr(model, "predict_proba") else None
    classes = getattr(model, "classes_", None)
    classes = np.asarray(classes) if classes is not None else None
    if proba is not None and (classes is None or proba.ndim != 2 or proba.shape[1] != len(classes)):
        proba = None  # columns that cannot be matched to labels are no use to any metric
    return Predictions(y_pred, proba, classes)


def torch_outputs(model: Any, X: Any) -> np.ndarray[Any, Any]:
    """The module's outputs for ``X`` as float32 NumPy, computed without gradients."""
    import torch

    parameter = next(iter(model.parameters()), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    if isinstance(X, torch.Tensor):
        inputs = X
    else:
        array = frames.features(X)
        inputs = torch.as_tensor(np.asarray(array))
    if inputs.is_floating_point() and parameter is not None and parameter.is_floating_point():
        inputs = inputs.to(parameter.dtype)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            chunks = [
                model(inputs[start : start + _CHUNK].to(device)).float().cpu()
                for start in range(0, len(inputs), _CHUNK)
            ]
    finally:
        model.train(was_training)
    return torch.cat(chunks).numpy() if chunks else np.empty((0,), dtype=np.float32)


def _from_outputs(outputs: np.ndarray[Any, Any], task: Task) -> Predictions:
    if task == "regression":
        if outputs.ndim == 2 and outputs.shape[1] == 1:
            outputs = outputs.ravel()
        return Predictions(outputs)
    if outputs.ndim == 1 or (outputs.ndim == 2 and outputs.shape[1] == 1):
        positive = 1.0 / (1.0 + np.exp(-outputs.reshape(-1).astype(np.float64)))
        proba = np.column_stack([1.0 - positive, positive])
    elif outputs.ndim == 2:
        shifted = outputs.astype(np.float64) - outputs.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        proba = exp / exp.sum(axis=1, keepdims=True)
    else:
        raise InvalidArgumentError(
            f"a classifier's outputs must be (rows, classes) logits, got shape {outputs.shape}"
        )
    classes = np.arange(proba.shape[1])
    return Predictions(classes[proba.argmax(axis=1)], proba, classes)
