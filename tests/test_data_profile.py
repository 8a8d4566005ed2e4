"""Profiles against independent computations, and the drift statistics against SciPy."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import chisquare, wasserstein_distance

from forgeml.data import drift
from forgeml.data.profiling import profile_data


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    rows = 50_000
    values = rng.lognormal(3, 1, rows)
    values[rng.choice(rows, 500, replace=False)] = np.nan
    return pd.DataFrame(
        {
            "amount": values,
            "count": rng.integers(0, 100, rows),
            "city": rng.choice(["paris", "lyon", "nice", "lille"], rows, p=[0.5, 0.25, 0.15, 0.1]),
            "when": pd.Timestamp("2024-01-01")
            + pd.to_timedelta(rng.integers(0, 86400 * 30, rows), unit="s"),
            "ok": rng.choice([True, False], rows),
            "user": [f"u{i}" for i in range(rows)],
        }
    )


def test_numeric_statistics_match_pandas(data: pd.DataFrame) -> None:
    profile = profile_data(data)
    assert profile["row_count"] == len(data)
    amount = profile["columns"]["amount"]
    series = data["amount"]
    assert amount["nulls"] == 500 and amount["count"] == len(data) - 500
    assert amount["min"] == pytest.approx(series.min())
    assert amount["max"] == pytest.approx(series.max())
    assert amount["mean"] == pytest.approx(series.mean())
    assert amount["std"] == pytest.approx(series.std(), rel=1e-9)
    for q in ("0.05", "0.25", "0.5", "0.75", "0.95"):
        # t-digest estimates: within 1% of the rank
        assert (series <= amount["quantiles"][q]).mean() == pytest.approx(float(q), abs=0.01)
    histogram = amount["histogram"]
    assert sum(histogram["counts"]) == amount["count"]
    assert len(histogram["edges"]) == len(histogram["counts"]) + 1
    assert histogram["edges"][0] == amount["min"] and histogram["edges"][-1] == amount["max"]
    expected, _ = np.histogram(series.dropna(), bins=histogram["edges"])
    assert np.abs(np.asarray(histogram["counts"]) - expected).sum() <= 2  # edge rounding only
    assert sum(amount["drift_counts"]) == amount["count"]
    assert len(amount["drift_counts"]) == len(amount["drift_edges"]) + 1
    assert max(amount["drift_counts"]) / amount["count"] < 0.08  # ~5% per quantile bin


def test_categories_distinct_and_kinds(data: pd.DataFrame) -> None:
    columns = profile_data(data)["columns"]
    city = columns["city"]
    assert city["kind"] == "string" and city["distinct_approximate"] is False
    assert {t["value"]: t["count"] for t in city["top"]} == data["city"].value_counts().to_dict()
    assert city["top_complete"] is True and city["other_count"] == 0
    assert columns["ok"]["true"] == int(data["ok"].sum())
    assert columns["user"]["distinct"] == len(data)  # near-unique: counted exactly
    assert columns["user"]["distinct_approximate"] is False
    assert columns["count"]["distinct"] == pytest.approx(100, rel=0.05)  # HyperLogLog
    when = columns["when"]
    assert when["kind"] == "temporal"
    assert when["min"] == pytest.approx(data["when"].min().timestamp())
    assert sum(when["histogram"]["counts"]) == len(data)


def test_empty_and_all_null_columns() -> None:
    frame = pd.DataFrame({"x": [None, None, None], "y": [1.0, math.inf, -math.inf]})
    columns = profile_data(frame)["columns"]
    assert columns["x"]["nulls"] == 3
    assert columns["y"]["non_finite"] == 2
    assert columns["y"]["min"] == columns["y"]["max"] == 1.0


def test_drift_statistics_agree_with_scipy() -> None:
    reference = [100, 200, 300, 400]
    current = [150, 250, 250, 350]
    p = np.asarray(reference) / sum(reference)
    q = np.asarray(current) / sum(current)
    assert drift.psi(reference, current) == pytest.approx(
        float(np.sum((q - p) * np.log(q / p))), rel=1e-4
    )
    assert drift.jensen_shannon(reference, current) == pytest.approx(
        jensenshannon(p, q, base=2), rel=1e-4
    )
    d, p_value = drift.kolmogorov_smirnov(reference, current)
    assert d == pytest.approx(np.max(np.abs(np.cumsum(p) - np.cumsum(q))))
    assert 0 <= p_value <= 1
    edges = [0.0, 1.0, 2.0, 3.0, 4.0]
    centers = [0.5, 1.5, 2.5, 3.5]
    assert drift.wasserstein(edges, reference, current, 2.0) == pytest.approx(
        wasserstein_distance(centers, centers, reference, current) / 2.0
    )
    statistic, chi_p = drift.chi_square(reference, current)
    expected = chisquare(current, p * sum(current))
    assert statistic == pytest.approx(expected.statistic, rel=1e-4)
    assert chi_p == pytest.approx(expected.pvalue, rel=1e-3)
    assert drift.psi(reference, reference) == pytest.approx(0, abs=1e-9)
    assert drift.compare("chi2", reference, reference).drifted is False
    assert drift.compare("psi", [100, 0], [0, 100]).drifted is True
