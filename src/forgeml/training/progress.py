"""A terminal progress line for epoch loops: ``epoch 3/10`` with the running loss.

The trainer asks :meth:`EpochProgress.due` on every batch, which only reads a clock;
the running loss (a device-to-host copy) is fetched and drawn only when an update is
due, a few times a second, so showing progress does not slow training down.
"""

from __future__ import annotations

import time
from typing import Any

_INTERVAL = 0.25


class EpochProgress:
    def __init__(self, epochs: int) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.epochs = epochs
        self._bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"),
            auto_refresh=False,
        )
        self._task: Any = None
        self._next = 0.0
        self._bar.start()

    def start_epoch(self, epoch: int, batches: int | None) -> None:
        description = f"epoch {epoch}/{self.epochs}"
        if self._task is None:
            self._task = self._bar.add_task(description, total=batches, status="")
        else:
            self._bar.reset(self._task, total=batches, description=description, status="")
        self._bar.refresh()
        self._next = time.monotonic() + _INTERVAL

    def due(self) -> bool:
        return time.monotonic() >= self._next

    def show(self, batches_done: int, running_loss: float) -> None:
        self._bar.update(self._task, completed=batches_done, status=f"loss {running_loss:.4f}")
        self._bar.refresh()
        self._next = time.monotonic() + _INTERVAL

    def end_epoch(self, epoch: int, batches_done: int, record: dict[str, float]) -> None:
        """Leave one summary line per epoch above the bar."""
        shown = "  ".join(
            f"{k} {v:.4g}" for k, v in record.items() if k.startswith(("train_", "val_"))
        )
        self._bar.update(self._task, completed=batches_done, status="")
        self._bar.console.print(
            f"epoch {epoch}/{self.epochs}  {shown}  ({record.get('epoch_seconds', 0.0):.1f} s)"
        )
        self._bar.refresh()

    def close(self) -> None:
        self._bar.stop()
