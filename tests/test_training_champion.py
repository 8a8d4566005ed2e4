"""promote_if_better(): the champion alias moves only on recorded evidence."""

from __future__ import annotations

from pathlib import Path

import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import forgeml as fm
from forgeml.errors import NotFoundError
from forgeml.training import fit, promote_if_better


def _train(model: object, name: str) -> int:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X, y = X.iloc[:, :6], y
    result = fit(
        model,
        X.iloc[:300],
        y.iloc[:300],
        eval_set=(X.iloc[300:], y.iloc[300:]),
        register=name,
        plots=False,
    )
    assert result.model_version is not None
    return result.model_version.version


def test_better_challenger_is_promoted_and_worse_one_refused(home: Path) -> None:
    baseline = _train(DummyClassifier(strategy="most_frequent"), "cancer")
    first = promote_if_better("cancer", baseline, metric="valid_accuracy")
    assert first.promoted and first.champion_version is None and first.champion_value is None
    assert fm.get_model_version("cancer", alias="champion").version == baseline

    good = _train(make_pipeline(StandardScaler(), LogisticRegression()), "cancer")
    decision = promote_if_better("cancer", good, metric="valid_accuracy")
    assert decision.promoted
    assert decision.champion_version == baseline
    assert decision.challenger_value > decision.champion_value  # type: ignore[operator]
    assert fm.get_model_version("models:/cancer@champion").version == good
    event = fm.alias_history("cancer", "champion")[-1]
    assert (event.from_version, event.to_version) == (baseline, good)
    assert f"{decision.challenger_value:.6g}" in (event.reason or "")
    assert f"{decision.champion_value:.6g}" in (event.reason or "")

    worse = _train(DummyClassifier(strategy="most_frequent"), "cancer")
    refused = promote_if_better("cancer", worse, metric="valid_log_loss", greater_is_better=False)
    assert not refused.promoted
    assert refused.champion_version == good
    assert refused.reason.startswith("kept champion")
    assert fm.get_model_version("cancer", alias="champion").version == good
    assert len(fm.alias_history("cancer", "champion")) == 2

    again = promote_if_better("cancer", good, metric="valid_accuracy")
    assert not again.promoted and "already holds" in again.reason


def test_min_delta_and_a_missing_metric(home: Path) -> None:
    first = _train(make_pipeline(StandardScaler(), LogisticRegression(C=1.0)), "m")
    second = _train(make_pipeline(StandardScaler(), LogisticRegression(C=0.9)), "m")
    promote_if_better("m", first, metric="valid_accuracy", alias="prod")
    close = promote_if_better("m", second, metric="valid_accuracy", alias="prod", min_delta=0.5)
    assert not close.promoted  # no accuracy can be 0.5 better than a good model's
    assert fm.get_model_version("m", alias="prod").version == first
    with pytest.raises(NotFoundError, match=r"has no metric 'valid_auc' \(its metrics: .*valid_f1"):
        promote_if_better("m", second, metric="valid_auc", alias="prod")
    with pytest.raises(NotFoundError):
        promote_if_better("m", 99, metric="valid_accuracy")
    assert fm.get_model_version("m", alias="prod").version == first
