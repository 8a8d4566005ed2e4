"""Objectives for the fm.tune tests, at module level so worker processes can import them."""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np


@cache
def cancer() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Breast cancer, scaled, split 70/30 (loaded once per process)."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    X_train, X_valid, y_train, y_valid = train_test_split(
        X, y, test_size=0.3, random_state=0, stratify=y
    )
    return X_train, X_valid, y_train, y_valid


def logistic(params: dict[str, Any], trial: Any) -> tuple[float, Any]:
    """Validation accuracy of a logistic regression; a tiny C underfits badly."""
    from sklearn.linear_model import LogisticRegression

    X_train, X_valid, y_train, y_valid = cancer()
    model = LogisticRegression(C=params["C"], max_iter=params["max_iter"])
    model.fit(X_train, y_train)
    return float(model.score(X_valid, y_valid)), model


def learning_curve(params: dict[str, Any], trial: Any) -> float:
    """A score that climbs over 10 steps to ``quality``: low-quality trials are hopeless."""
    value = 0.0
    for step in range(10):
        value = params["quality"] * (step + 1) / 10
        trial.report(value, step)
    return value


def flaky(params: dict[str, Any], trial: Any) -> float:
    """Fails on trial 1, scores ``x`` otherwise."""
    if trial.number == 1:
        raise RuntimeError("the data went missing")
    return float(params["x"])


def always_fails(params: dict[str, Any], trial: Any) -> float:
    raise ValueError("no good")


def no_model(params: dict[str, Any], trial: Any) -> float:
    return float(params["x"])


def odd_trials_are_bad(params: dict[str, Any], trial: Any) -> float:
    """Reports a climbing score; odd-numbered trials climb to a tenth of what even ones do."""
    quality = 0.9 if trial.number % 2 == 0 else 0.09
    value = 0.0
    for step in range(5):
        value = quality * params["scale"] * (step + 1) / 5
        trial.report(value, step)
    return value


def slow(params: dict[str, Any], trial: Any) -> float:
    import time

    time.sleep(0.2)
    return float(params["x"])
