"""Evaluation: metrics by task, PNG plots, and what lands in the run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.metrics import f1_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import forgeml as fm
import forgeml.training
from forgeml.errors import ForgeMLError, InvalidArgumentError
from forgeml.training import evaluate

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, path
    assert 5_000 < len(data) < 500_000, (path, len(data))


@pytest.fixture(scope="module")
def cancer() -> tuple[pd.DataFrame, pd.Series, Any]:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X, y = X.iloc[:300, :10], y.iloc[:300]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    return X, y, model


def test_binary_classification_metrics_plots_and_run_logging(home: Path, cancer: Any) -> None:
    X, y, model = cancer
    with fm.start_run(experiment="eval", name="binary") as run:
        result = evaluate(model, X, y, plot_dir=home / "plots")
    assert result.task == "classification"
    assert set(result.metrics) == {
        "accuracy",
        "balanced_accuracy",
        "precision",
        "recall",
        "f1",
        "roc_auc",
        "log_loss",
        "brier",
    }
    assert result.metrics["f1"] == pytest.approx(f1_score(y, model.predict(X)))
    assert result.metrics["roc_auc"] == pytest.approx(
        roc_auc_score(y, model.predict_proba(X)[:, 1])
    )
    assert 0.9 < result.metrics["accuracy"] <= 1.0
    assert set(result.plots) == {"confusion_matrix", "calibration"}
    for path in result.plots.values():
        assert path.parent == home / "plots"
        assert_png(path)
    stored = fm.get_run(run.id)
    assert stored.metrics["test_f1"] == pytest.approx(result.metrics["f1"])
    assert {k for k in stored.metrics if k.startswith("test_")} == {
        f"test_{k}" for k in result.metrics
    }
    artifacts = {a.path: a.size for a in fm.list_artifacts(run.id)}
    assert set(artifacts) == {"plots/test_confusion_matrix.png", "plots/test_calibration.png"}
    assert artifacts["plots/test_calibration.png"] == result.plots["calibration"].stat().st_size


def test_multiclass_from_polars_uses_macro_averages_and_one_vs_rest_auc(home: Path) -> None:
    X, y = load_iris(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=1000).fit(X, y)
    frame = pl.from_pandas(X)
    result = evaluate(model, frame, pl.Series("target", y.to_numpy()), prefix="iris")
    assert result.task == "classification"
    assert "brier" not in result.metrics
    assert result.metrics["roc_auc"] == pytest.approx(
        roc_auc_score(y, model.predict_proba(X), multi_class="ovr")
    )
    assert result.metrics["f1"] == pytest.approx(f1_score(y, model.predict(X), average="macro"))
    assert {p.name for p in result.plots.values()} == {
        "iris_confusion_matrix.png",
        "iris_calibration.png",
    }
    for path in result.plots.values():
        assert path.is_relative_to(home / "cache" / "plots")
        assert_png(path)


def test_regression_from_arrow_with_zero_targets_left_out_of_mape(home: Path) -> None:
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    X, y = X.iloc[:200], y.iloc[:200].to_numpy().copy()
    model = Ridge(alpha=0.1).fit(X, y)
    y[:3] = 0.0  # rows with a zero target cannot have a percentage error
    with fm.start_run(experiment="eval") as run:
        result = evaluate(model, pa.Table.from_pandas(X), y, prefix="holdout")
    predicted = model.predict(X)
    assert result.task == "regression"
    assert set(result.metrics) == {"rmse", "mae", "r2", "median_ae", "mape_nonzero"}
    expected_mape = np.mean(np.abs(predicted[3:] - y[3:]) / np.abs(y[3:]))
    assert result.metrics["mape_nonzero"] == pytest.approx(expected_mape)
    assert result.metrics["rmse"] == pytest.approx(np.sqrt(np.mean((predicted - y) ** 2)))
    assert set(result.plots) == {"residuals", "predicted_vs_actual"}
    for path in result.plots.values():
        assert_png(path)
    logged = fm.get_run(run.id).metrics
    assert logged["holdout_r2"] == pytest.approx(result.metrics["r2"])
    assert {a.path for a in fm.list_artifacts(run.id)} == {
        "plots/holdout_residuals.png",
        "plots/holdout_predicted_vs_actual.png",
    }


def test_without_a_run_nothing_is_logged_and_no_run_is_opened(home: Path, cancer: Any) -> None:
    X, y, _ = cancer
    model = LogisticRegression(max_iter=3000).fit(X.to_numpy(), y.to_numpy())
    result = evaluate(model, X.to_numpy(), y.to_numpy(), plots=False)
    assert result.plots == {}
    assert result.metrics["accuracy"] > 0.9
    assert fm.active_run() is None
    assert len(fm.search_runs()) == 0


def test_task_is_inferred_from_the_target_when_the_model_does_not_say(home: Path) -> None:
    class Threshold:  # neither a scikit-learn estimator nor one with predict_proba
        def predict(self, X: np.ndarray) -> np.ndarray:
            return (X[:, 0] > 0).astype(np.int64)

    X = np.array([[-1.0], [2.0], [3.0], [-4.0]])
    labels = evaluate(Threshold(), X, np.array([0, 1, 0, 0]), plots=False, log=False)
    assert labels.task == "classification"
    assert labels.metrics["accuracy"] == 0.75
    assert "roc_auc" not in labels.metrics  # no probabilities, no AUC
    values = evaluate(Threshold(), X, np.array([0.0, 1.5, 0.5, 0.2]), plots=False, log=False)
    assert values.task == "regression"
    model = LinearRegression().fit(X, np.array([1, 2, 3, 4]))
    assert evaluate(model, X, [1, 2, 3, 4], plots=False).task == "regression"


def test_bad_arguments_are_refused_with_the_value(home: Path, cancer: Any) -> None:
    X, y, model = cancer
    with pytest.raises(InvalidArgumentError, match="task must be 'classification' or"):
        evaluate(model, X, y, task="ranking")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="300 rows but y has 10"):
        evaluate(model, X, y[:10], plots=False)
    with pytest.raises(InvalidArgumentError, match="prefix must be"):
        evaluate(model, X, y, prefix="")


def test_missing_matplotlib_is_named(
    home: Path, cancer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    X, y, model = cancer
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    with pytest.raises(ForgeMLError, match=r"needs matplotlib.*pip install matplotlib"):
        evaluate(model, X, y)
    assert evaluate(model, X, y, plots=False).plots == {}


def test_training_exports_exactly_its_public_names_and_imports_cheaply() -> None:
    assert forgeml.training.__all__ == sorted(
        [
            "Choice",
            "EarlyStopping",
            "Evaluation",
            "Float",
            "Int",
            "PromotionDecision",
            "TrainResult",
            "TrainedModel",
            "Trainer",
            "Trial",
            "TrialPruned",
            "TuneResult",
            "evaluate",
            "fit",
            "promote_if_better",
            "tune",
        ]
    )
    for name in forgeml.training.__all__:
        assert getattr(forgeml.training, name) is not None
    code = "import forgeml.training, sys; print(' '.join(sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert not {"torch", "sklearn", "matplotlib", "pandas", "numpy"} & set(out.split())
