"""Evaluation plots as PNG files, drawn with matplotlib's Agg renderer.

Figures are built with matplotlib's object API and rendered by an Agg canvas of their
own: pyplot is never imported, so the caller's backend (a notebook's inline display,
say) is left as it was, and nothing needs a display. matplotlib is imported only when a
plot is drawn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from forgeml.training import deps

_MAX_POINTS = 5000  # a scatter of more points says nothing more and draws slowly
_ANNOTATE_UP_TO = 30  # classes whose confusion-matrix cells still fit a count
_MAX_CURVES = 10


def _figure(width: float = 5.0, height: float = 4.0) -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise deps.missing("matplotlib", "drawing evaluation plots (or pass plots=False)") from exc
    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path


def _sample(*arrays: np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any], ...]:
    n = len(arrays[0])
    if n <= _MAX_POINTS:
        return arrays
    keep = np.sort(np.random.default_rng(0).choice(n, _MAX_POINTS, replace=False))
    return tuple(a[keep] for a in arrays)


def _label(value: Any, width: int = 12) -> str:
    text = str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def confusion_matrix(
    y: np.ndarray[Any, Any], y_pred: np.ndarray[Any, Any], classes: np.ndarray[Any, Any], path: Path
) -> Path:
    """Counts of true (rows) against predicted (columns) labels, each cell labelled."""
    from sklearn.metrics import confusion_matrix as counts_of

    counts = counts_of(y, y_pred, labels=list(classes))
    size = max(4.0, min(12.0, 1.0 + 0.45 * len(classes)))
    figure = _figure(size + 1.0, size)
    ax = figure.add_subplot()
    image = ax.imshow(counts, cmap="Blues", interpolation="nearest")
    figure.colorbar(image, ax=ax)
    ticks = np.arange(len(classes))
    names = [_label(c) for c in classes]
    ax.set_xticks(ticks, names, rotation=45 if len(classes) > 4 else 0, ha="right")
    ax.set_yticks(ticks, names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix")
    if len(classes) <= _ANNOTATE_UP_TO:
        threshold = counts.max() / 2 if counts.size else 0
        for (row, col), count in np.ndenumerate(counts):
            color = "white" if count > threshold else "black"
            ax.text(col, row, str(count), ha="center", va="center", color=color, fontsize=9)
    return _save(figure, path)


def calibration(
    y: np.ndarray[Any, Any], proba: np.ndarray[Any, Any], classes: np.ndarray[Any, Any], path: Path
) -> Path:
    """Reliability curve: observed frequency against mean predicted probability, per bin.

    Two classes get the curve of the positive class; more get one one-vs-rest curve per
    class (the first ten).
    """
    from sklearn.calibration import calibration_curve

    figure = _figure()
    ax = figure.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    shown = [1] if len(classes) == 2 else list(range(min(len(classes), _MAX_CURVES)))
    for column in shown:
        hits = np.asarray(y == classes[column])
        if hits.all() or not hits.any():
            continue  # one outcome only: there is no curve to draw
        observed, predicted = calibration_curve(hits, proba[:, column], n_bins=10)
        ax.plot(predicted, observed, marker="o", label=_label(classes[column], 20))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed frequency")
    ax.set_title("Calibration")
    ax.legend(loc="upper left", fontsize=8)
    return _save(figure, path)


def residuals(y: np.ndarray[Any, Any], y_pred: np.ndarray[Any, Any], path: Path) -> Path:
    """Residual (actual - predicted) against predicted: structure here is model error."""
    actual, predicted = _sample(np.asarray(y, dtype=float), np.asarray(y_pred, dtype=float))
    figure = _figure()
    ax = figure.add_subplot()
    ax.scatter(predicted, actual - predicted, s=8, alpha=0.5)
    ax.axhline(0.0, color="grey", linestyle="--")
    ax.set_xlabel("predicted")
    ax.set_ylabel("residual (actual - predicted)")
    ax.set_title("Residuals")
    return _save(figure, path)


def predicted_vs_actual(y: np.ndarray[Any, Any], y_pred: np.ndarray[Any, Any], path: Path) -> Path:
    """Predicted against actual, with the line a perfect model would sit on."""
    actual, predicted = _sample(np.asarray(y, dtype=float), np.asarray(y_pred, dtype=float))
    figure = _figure()
    ax = figure.add_subplot()
    ax.scatter(actual, predicted, s=8, alpha=0.5)
    if len(actual):
        low = float(min(actual.min(), predicted.min()))
        high = float(max(actual.max(), predicted.max()))
        ax.plot([low, high], [low, high], linestyle="--", color="grey")
    ax.set_xlabel("actual")
    ax.set_ylabel("predicted")
    ax.set_title("Predicted vs actual")
    return _save(figure, path)
