"""Early stopping, and the bookkeeping of "the best epoch so far" that it shares with
checkpointing. Nothing here needs PyTorch, so a stopping rule can be built and checked
without it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from forgeml.errors import InvalidArgumentError

Mode = Literal["min", "max"]


@dataclass(frozen=True)
class EarlyStopping:
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience``
    epochs in a row; the trainer then puts back the weights of the best epoch.

    ``monitor`` is a key of the per-epoch record: ``val_loss``, ``train_loss`` or
    ``val_<metric>``; ``mode`` says whether lower ("min") or higher ("max") is better.
    """

    monitor: str = "val_loss"
    patience: int = 3
    mode: Mode = "min"
    min_delta: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.monitor, str) or not self.monitor:
            raise InvalidArgumentError(f"monitor must be a metric name, got {self.monitor!r}")
        if isinstance(self.patience, bool) or not isinstance(self.patience, int):
            raise InvalidArgumentError(f"patience must be a whole number, got {self.patience!r}")
        if self.patience < 1:
            raise InvalidArgumentError(f"patience must be at least 1, got {self.patience}")
        if self.mode not in ("min", "max"):
            raise InvalidArgumentError(f"mode must be 'min' or 'max', got {self.mode!r}")
        if not isinstance(self.min_delta, int | float) or not self.min_delta >= 0:
            raise InvalidArgumentError(f"min_delta must be a number >= 0, got {self.min_delta!r}")


class BestTracker:
    """Follows one monitored value over epochs: the best value, its epoch, and how many
    epochs have passed without an improvement."""

    def __init__(self, monitor: str, mode: Mode = "min", min_delta: float = 0.0) -> None:
        self.monitor = monitor
        self.mode = mode
        self.min_delta = float(min_delta)
        self.best_value: float | None = None
        self.best_epoch: int | None = None
        self.wait = 0

    def update(self, epoch: int, value: float) -> bool:
        """Record ``value`` for ``epoch``; True when it is the new best."""
        improved = math.isfinite(value) and (
            self.best_value is None
            or (
                value < self.best_value - self.min_delta
                if self.mode == "min"
                else value > self.best_value + self.min_delta
            )
        )
        if improved:
            self.best_value, self.best_epoch, self.wait = value, epoch, 0
        else:
            self.wait += 1
        return improved

    def exhausted(self, patience: int) -> bool:
        return self.wait >= patience

    def state_dict(self) -> dict[str, Any]:
        return {
            "monitor": self.monitor,
            "mode": self.mode,
            "min_delta": self.min_delta,
            "best_value": self.best_value,
            "best_epoch": self.best_epoch,
            "wait": self.wait,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("monitor") != self.monitor or state.get("mode") != self.mode:
            raise InvalidArgumentError(
                f"the checkpoint tracked {state.get('monitor')!r} ({state.get('mode')}), "
                f"this trainer tracks {self.monitor!r} ({self.mode}): resume with the same "
                "early-stopping settings"
            )
        self.best_value = state["best_value"]
        self.best_epoch = state["best_epoch"]
        self.wait = int(state["wait"])
