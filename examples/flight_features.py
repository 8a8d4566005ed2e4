"""Feature definitions for the flights demo: weather at the origin airport, and flight context.

Register them with ``forgeml features apply examples/flight_features.py`` (the demo
does the same through ``fm.features.apply``). The weather view reads the
``nyc-weather`` dataset (hourly observations at EWR, JFK and LGA); a training row gets
the latest observation at or before its departure, at most three hours old.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

import forgeml as fm

airport = fm.Entity("airport", join_keys=["origin"], description="NYC departure airport")


def weather_features(rows: pd.DataFrame) -> pd.DataFrame:
    """Missing precipitation means none fell; the dew-point spread tracks fog and icing."""
    rows["precip"] = rows["precip"].fillna(0.0)
    rows["dewpoint_spread"] = rows["temp"] - rows["dewp"]
    return rows


origin_weather = fm.FeatureView(
    name="origin_weather",
    entities=[airport],
    source="datasets:/nyc-weather",
    timestamp_field="time_hour",
    features=[
        "temp",
        "dewp",
        "humid",
        "wind_speed",
        "precip",
        "pressure",
        "visib",
        "dewpoint_spread",
    ],
    transform=weather_features,
    ttl=dt.timedelta(hours=3),
    description="hourly weather at the origin airport",
)


def flight_context(rows: pd.DataFrame) -> pd.DataFrame:
    """Request-time features: the route length on a log scale, and the evening bank."""
    return pd.DataFrame(
        {
            "log_distance": np.log1p(rows["distance"].astype("float64")),
            "evening": (rows["hour"] >= 17).astype("int64"),
        }
    )


flight_context_view = fm.OnDemandFeatureView(
    name="flight_context",
    features=["log_distance", "evening"],
    transform=flight_context,
    request_fields={"distance": "float64", "hour": "int64"},
    description="computed from the flight itself at request time",
)
