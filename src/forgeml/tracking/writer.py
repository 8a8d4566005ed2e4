"""Buffered writes of params, tags and metric points, flushed in batches.

A training loop may call ``log_metric`` a hundred thousand times; each call only
appends a tuple to a list. The list is written in one transaction when it reaches
``flush_size`` (by the background thread, woken early), every ``flush_interval``
seconds, when a run ends, before a read in the same process, and at process exit. If
the producer outruns the database the caller flushes itself, which bounds memory.
"""

from __future__ import annotations

import atexit
import logging
import sys
import threading
from collections.abc import Callable
from dataclasses import replace

from forgeml.store.runs import Finish, MetricRow, NewRun, RunRepository

log = logging.getLogger("forgeml.tracking")

# (run_id, status, end_time, error, system)


def _fold_finishes(runs: list[NewRun], finishes: list[Finish]) -> tuple[list[NewRun], list[Finish]]:
    """A run that ends before its row was written is inserted finished: no UPDATE."""
    position = {run.id: index for index, run in enumerate(runs)}
    left = []
    for finish in finishes:
        run_id, status, end_time, error, system = finish
        index = position.get(run_id)
        if index is None:
            left.append(finish)
        else:
            runs[index] = replace(
                runs[index], status=status, end_time=end_time, error=error, system=system
            )
    return runs, left


class BufferedWriter:
    def __init__(
        self,
        repository: Callable[[], RunRepository],
        flush_interval: float,
        flush_size: int,
    ) -> None:
        self._repository = repository
        self.flush_interval = flush_interval
        self.flush_size = flush_size
        self._hard_limit = flush_size * 20
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._runs: list[NewRun] = []
        self._finishes: list[Finish] = []
        self._metrics: list[MetricRow] = []
        self._params: list[tuple[str, str, str]] = []
        self._tags: list[tuple[str, str, str]] = []
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self.flushes = 0
        atexit.register(self.close)

    # -- producers ----------------------------------------------------------------------
    def add_metric(self, row: MetricRow) -> None:
        with self._lock:
            self._metrics.append(row)
            pending = len(self._metrics)
        if pending >= self.flush_size:
            if pending >= self._hard_limit:
                self.flush()  # the database is slower than the loop: make the loop wait
            else:
                self._ensure_thread()
                self._wake.set()
        elif self._thread is None:
            self._ensure_thread()

    def add_metrics(self, rows: list[MetricRow]) -> None:
        with self._lock:
            self._metrics.extend(rows)
            pending = len(self._metrics)
        self._ensure_thread()
        if pending >= self._hard_limit:
            self.flush()
        elif pending >= self.flush_size:
            self._wake.set()

    def add_run(self, run: NewRun, tags: list[tuple[str, str, str]]) -> None:
        """A new run is written with the next batch, ahead of anything logged to it."""
        with self._lock:
            self._runs.append(run)
            self._tags.extend(tags)
        self._ensure_thread()

    def add_params(self, rows: list[tuple[str, str, str]]) -> None:
        with self._lock:
            self._params.extend(rows)
        self._ensure_thread()

    def add_tags(self, rows: list[tuple[str, str, str]]) -> None:
        with self._lock:
            self._tags.extend(rows)
        self._ensure_thread()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._runs) + len(self._metrics) + len(self._params) + len(self._tags)

    # -- flushing -----------------------------------------------------------------------
    def flush(self, finish: Finish | None = None) -> None:
        """Write everything buffered so far (and end a run, if asked) in one transaction."""
        with self._flush_lock:
            with self._lock:
                runs, self._runs = self._runs, []
                finishes, self._finishes = self._finishes, []
                if finish is not None:
                    finishes.append(finish)
                runs, finishes = _fold_finishes(runs, finishes)
                metrics, self._metrics = self._metrics, []
                params, self._params = self._params, []
                tags, self._tags = self._tags, []
            if not (runs or metrics or params or tags or finishes):
                return
            try:
                self._repository().write_batch(params, tags, metrics, finishes, runs)
            except BaseException:
                with self._lock:  # keep the values for the next attempt, in order
                    self._runs[:0] = runs
                    self._finishes[:0] = finishes
                    self._metrics[:0] = metrics
                    self._params[:0] = params
                    self._tags[:0] = tags
                raise
            self.flushes += 1

    def _ensure_thread(self) -> None:
        if self._thread is not None or self._closed.is_set():
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="forgeml-writer", daemon=True
                )
                self._thread.start()

    def _loop(self) -> None:
        while not self._closed.is_set():
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            try:
                self.flush()
            except Exception as exc:
                log.warning("could not write tracking data, will retry: %s", exc)

    def close(self) -> None:
        """Stop the thread and write what is left; called at exit, so it must not raise."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)
        try:
            self.flush()
        except Exception as exc:
            print(f"forgeml: could not write buffered tracking data: {exc}", file=sys.stderr)
        atexit.unregister(self.close)
