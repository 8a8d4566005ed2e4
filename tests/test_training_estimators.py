"""fit(): scikit-learn, XGBoost and LightGBM estimators trained with their runs recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightgbm
import numpy as np
import pandas as pd
import polars as pl
import pytest
import xgboost
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import forgeml as fm
from forgeml.errors import InvalidArgumentError
from forgeml.store.records import RunStatus
from forgeml.training import fit


@pytest.fixture(scope="module")
def cancer() -> pd.DataFrame:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    frame: pd.DataFrame = X.iloc[:400, :8].copy()
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    frame["label"] = y.iloc[:400].to_numpy()
    return frame


@pytest.fixture(scope="module")
def diabetes() -> tuple[pd.DataFrame, np.ndarray]:
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    return X.iloc[:300], y.iloc[:300].to_numpy()


def test_sklearn_pipeline_from_a_frame_with_a_label_column(home: Path, cancer: Any) -> None:
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=500))
    result = fit(
        model,
        cancer,
        "label",
        register="cancer-lr",
        experiment="cancer",
        run_name="lr",
        params={"dataset": "breast_cancer"},
    )
    assert result.model is model
    assert result.seconds > 0
    run = fm.get_run(result.run_id)
    assert (run.experiment, run.name, run.status) == ("cancer", "lr", RunStatus.FINISHED)
    assert run.params["model_class"] == "Pipeline"
    assert run.params["logisticregression"] == "LogisticRegression"
    assert run.params["logisticregression__C"] == "0.5"
    assert run.params["standardscaler__with_mean"] == "True"
    assert run.params["dataset"] == "breast_cancer"
    assert run.params["train_rows"] == "400"
    assert "steps" not in run.params  # a list of estimators is not a scalar
    assert run.metrics["fit_seconds"] > 0
    assert run.metrics["train_accuracy"] == pytest.approx(result.evaluation.metrics["accuracy"])
    assert result.evaluation.metrics["accuracy"] > 0.9
    assert {a.path for a in fm.list_artifacts(run.id)} == {
        "plots/train_confusion_matrix.png",
        "plots/train_calibration.png",
    }
    version = result.model_version
    assert version is not None and version.run_id == run.id and version.flavor == "sklearn"
    columns = [c["name"] for c in version.signature["inputs"]["columns"]]  # type: ignore[index]
    assert columns == [c for c in cancer.columns if c != "label"]
    loaded = fm.load_model(version.uri)
    features = cancer.drop(columns=["label"])
    np.testing.assert_array_equal(loaded.predict(features), model.predict(features))
    np.testing.assert_allclose(loaded.predict_proba(features), model.predict_proba(features))


def test_xgboost_logs_the_validation_curve_and_stops_early(home: Path, cancer: Any) -> None:
    train, valid = pl.from_pandas(cancer.iloc[:300]), pl.from_pandas(cancer.iloc[300:])
    model = xgboost.XGBClassifier(n_estimators=300, learning_rate=0.5, max_depth=3, n_jobs=1)
    result = fit(
        model,
        train,
        "label",
        eval_set=(valid, "label"),
        early_stopping_rounds=5,
        register="cancer-xgb",
        plots=False,
    )
    run = fm.get_run(result.run_id)
    assert run.params["model_class"] == "XGBClassifier"
    assert run.params["max_depth"] == "3"
    assert run.params["early_stopping_rounds"] == "5"
    assert run.params["valid_rows"] == "100"
    history = fm.get_metric_history(run.id, "valid_logloss")
    assert [p.step for p in history] == list(range(len(history)))
    assert len(history) < 300  # early stopping cut training short
    best = int(run.metrics["best_iteration"])
    assert best == model.best_iteration == len(history) - 6
    assert min(p.value for p in history) == pytest.approx(history[best].value)
    assert run.metrics["valid_roc_auc"] == pytest.approx(result.evaluation.metrics["roc_auc"])
    assert result.evaluation.plots == {}
    assert result.model_version is not None
    loaded = fm.load_model(result.model_version.uri)
    features = cancer.iloc[300:].drop(columns=["label"])
    np.testing.assert_allclose(loaded.predict_proba(features), model.predict_proba(features))


def test_lightgbm_regression_inside_an_open_run(home: Path, diabetes: Any) -> None:
    X, y = diabetes
    model = lightgbm.LGBMRegressor(n_estimators=200, learning_rate=0.2, verbose=-1, n_jobs=1)
    with fm.start_run(experiment="diabetes", name="outer") as run:
        fm.log_param("note", "kept")
        result = fit(
            model,
            X.iloc[:220],
            y[:220],
            eval_set=(X.iloc[220:], y[220:]),
            early_stopping_rounds=10,
            register="diabetes-lgbm",
        )
        assert fm.active_run() is run  # fit used this run and left it open
    assert result.run_id == run.id
    stored = fm.get_run(run.id)
    assert stored.params["note"] == "kept" and stored.params["model_class"] == "LGBMRegressor"
    history = fm.get_metric_history(run.id, "valid_l2")
    best = int(stored.metrics["best_iteration"])
    assert best == model.best_iteration_ - 1
    assert len(history) == best + 11
    assert result.evaluation.task == "regression"
    assert stored.metrics["valid_rmse"] == pytest.approx(result.evaluation.metrics["rmse"])
    assert {a.path for a in fm.list_artifacts(run.id)} == {
        "plots/valid_residuals.png",
        "plots/valid_predicted_vs_actual.png",
    }
    assert result.model_version is not None
    loaded = fm.load_model(result.model_version.uri)
    expected = np.asarray(model.predict(X.iloc[220:]))
    np.testing.assert_allclose(loaded.predict(X.iloc[220:]), expected)


def test_a_failing_fit_marks_its_own_run_failed(home: Path, cancer: Any) -> None:
    frame = cancer.assign(label=cancer["label"].astype(float) * 0.5)  # not class labels
    with pytest.raises(ValueError, match="Unknown label type"):
        fit(LogisticRegression(), frame, "label", experiment="broken", plots=False)
    (run,) = fm.search_runs(experiment="broken")
    assert run.status == RunStatus.FAILED
    assert "Unknown label type" in (run.error or "")
    assert fm.active_run() is None


def test_bad_arguments_are_refused_before_any_run(home: Path, cancer: Any) -> None:
    X, y = cancer.drop(columns=["label"]), cancer["label"]
    with pytest.raises(InvalidArgumentError, match="'target' is not a column of its table"):
        fit(LogisticRegression(), cancer, "target")
    with pytest.raises(InvalidArgumentError, match="early_stopping_rounds needs an eval_set"):
        fit(xgboost.XGBClassifier(), X, y, early_stopping_rounds=3)
    with pytest.raises(InvalidArgumentError, match="applies to XGBoost and LightGBM"):
        fit(LogisticRegression(), X, y, eval_set=(X, y), early_stopping_rounds=3)
    with pytest.raises(InvalidArgumentError, match="names a column, but its table is a ndarray"):
        fit(LogisticRegression(), X.to_numpy(), "label")
    with pytest.raises(InvalidArgumentError, match="X has 400 rows but y has 10"):
        fit(LogisticRegression(), X, y[:10])
    assert len(fm.search_runs()) == 0
