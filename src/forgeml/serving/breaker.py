"""Circuit breakers: stop sending requests to a model that keeps failing or is too slow.

closed -> open after ``failures`` failures in a row, or when too many recent answers
break the latency SLO; open -> half-open after ``open_seconds``, letting ``probes``
requests through; half-open -> closed when they all succeed, -> open when one fails.
While open, the deployment answers from its fallback instead of queueing behind a
model that would only time out.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from forgeml.serving.spec import BreakerSpec

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
STATE_VALUES = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}

StateListener = Callable[[str, str, str], None]  # (old state, new state, reason)


class CircuitBreaker:
    def __init__(
        self,
        spec: BreakerSpec,
        on_change: StateListener | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spec = spec
        self.on_change = on_change
        self.clock = clock
        self.state = CLOSED
        self.reason = ""
        self._failures = 0
        self._opened_at = 0.0
        self._probes_sent = 0
        self._probes_passed = 0
        self._slow: deque[bool] = deque(maxlen=spec.slo_window)
        self._lock = threading.Lock()

    def allow(self) -> bool:
        """May a request go to the model now? In half-open, only the probes may."""
        with self._lock:
            if self.state == CLOSED:
                return True
            if self.state == OPEN:
                if self.clock() - self._opened_at < self.spec.open_seconds:
                    return False
                self._move(HALF_OPEN, f"{self.spec.open_seconds:g}s passed; probing")
                self._probes_sent = self._probes_passed = 0
            if self._probes_sent < self.spec.probes:
                self._probes_sent += 1
                return True
            return False

    def success(self, seconds: float) -> None:
        with self._lock:
            slo = self.spec.latency_slo_ms
            slow = slo is not None and seconds * 1000.0 > slo
            if self.state == HALF_OPEN:
                if slow:
                    self._open(f"probe took {seconds * 1000:.1f} ms (SLO {slo:g} ms)")
                    return
                self._probes_passed += 1
                if self._probes_passed >= self.spec.probes:
                    self._failures = 0
                    self._slow.clear()
                    self._move(CLOSED, f"{self._probes_passed} probes succeeded")
                return
            self._failures = 0
            if slo is None:
                return
            self._slow.append(slow)
            if len(self._slow) == self._slow.maxlen:
                share = sum(self._slow) / len(self._slow)
                if share >= self.spec.slo_ratio:
                    self._open(
                        f"{share:.0%} of the last {len(self._slow)} answers took longer than "
                        f"{slo:g} ms"
                    )

    def failure(self, reason: str) -> None:
        with self._lock:
            if self.state == HALF_OPEN:
                self._open(f"probe failed: {reason}")
                return
            if self.state == OPEN:
                return
            self._failures += 1
            if self._failures >= self.spec.failures:
                self._open(f"{self._failures} failures in a row, last: {reason}")

    def _open(self, reason: str) -> None:
        self._opened_at = self.clock()
        self._failures = 0
        self._slow.clear()
        self._move(OPEN, reason)

    def _move(self, state: str, reason: str) -> None:
        old, self.state, self.reason = self.state, state, reason
        if self.on_change is not None and old != state:
            self.on_change(old, state, reason)
