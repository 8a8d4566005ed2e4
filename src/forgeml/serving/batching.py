"""Adaptive micro-batching: requests that arrive while the model is busy share its next call.

The batcher never waits for a batch to fill unless told to (``max_wait_s``): the first
request after an idle spell is sent at once, and only requests that queue up behind a
running call are gathered into the next one. Latency at low load stays that of a
single call; under load, calls grow up to ``max_batch_size`` rows and throughput grows
with them. Model calls run in a thread of their own, off the event loop.

Admission watches the queue: a request is refused (503 with Retry-After) when the model
calls already queued ahead of it would take longer than its deadline at the pace of
recent calls, or when the request at the head of the queue has waited the whole
deadline already. Such requests would only time out after holding a place in the
queue; refusing them before anything is spent on them, even parsing, keeps the answers
that are given fast, keeps a burst of load from looking like a sick model to the
circuit breaker, and keeps a storm of retries from starving the model of the CPU it
needs to catch up. Both rules use what was measured (call times, waiting times), never
an extrapolation to call sizes not yet seen.

A failed call is not the whole batch's failure: one request with a value the model
chokes on (a NaN for a model that takes none) would otherwise fail every request it
happened to share a call with. The batch is split in halves until the request at fault
is alone, so only it gets the error, at a cost of two calls per halving. When both
halves of a split fail, the model is taken to fail on everything, and every request
of that part gets the error without further calls.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

P = TypeVar("P")


class Overloaded(Exception):
    """The queue is at its bound: the request is refused rather than left to time out."""


@dataclass
class Ticket:
    """What a caller learns about its request: did a model call pick it up, and when."""

    started_at: float | None = None


@dataclass(frozen=True)
class _Failed:
    error: BaseException


@dataclass
class _Item(Generic[P]):
    payload: P
    rows: int
    future: asyncio.Future[Any]
    ticket: Ticket
    queued_at: float = field(default_factory=time.perf_counter)


class MicroBatcher(Generic[P]):
    """Queue of requests in front of one model; ``call`` answers a list of payloads."""

    def __init__(
        self,
        call: Callable[[Sequence[P]], Sequence[Any]],
        *,
        name: str,
        max_batch_size: int = 64,
        max_wait_s: float = 0.0,
        max_queue_rows: int = 2048,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.call = call
        self.name = name
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.max_queue_rows = max_queue_rows
        self.on_batch = on_batch
        self.queued_rows = 0
        self.running = 0
        self.call_seconds: float | None = None  # recent calls' duration, a moving average
        self._queue: deque[_Item[P]] = deque()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"forgeml-model-{name}")
        self._closing = False

    def start(self) -> None:
        if self._task is None:
            self._wakeup = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run())

    def admit(self, rows: int = 0, deadline_s: float | None = None) -> None:
        """Raise Overloaded if ``rows`` more cannot be queued now (see the module's rules).

        Cheap enough to call before a request's body is read. An empty queue refuses
        nothing: the first request after an idle spell is always tried.
        """
        if self._closing:
            raise Overloaded(f"{self.name} is shutting down")
        if not self._queue:
            return
        if self.queued_rows + rows > self.max_queue_rows:
            raise Overloaded(
                f"{self.name} has {self.queued_rows} rows queued (bound {self.max_queue_rows})"
            )
        if deadline_s is None:
            return
        waited = time.perf_counter() - self._queue[0].queued_at
        if waited > deadline_s:
            raise Overloaded(
                f"{self.name}: the oldest queued request has waited {waited * 1000:.0f} ms, "
                f"more than the {deadline_s * 1000:.0f} ms a request may take"
            )
        if self.call_seconds is not None:
            # A call takes whole requests: rows of several small ones, or one large one.
            by_rows = -(-(self.queued_rows + rows) // self.max_batch_size)
            calls = min(by_rows, len(self._queue) + 1) + (self.running > 0)
            wait = calls * self.call_seconds
            if wait > deadline_s:
                raise Overloaded(
                    f"{self.name}: {calls} model calls of about {self.call_seconds * 1000:.0f} "
                    f"ms are ahead, more than the {deadline_s * 1000:.0f} ms a request may take"
                )

    async def submit(self, payload: P, rows: int, ticket: Ticket | None = None) -> Any:
        """The model's answer for ``payload``; raises Overloaded when the queue is full."""
        self.admit(rows)
        self.start()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append(_Item(payload, rows, future, ticket or Ticket()))
        self.queued_rows += rows
        assert self._wakeup is not None
        self._wakeup.set()
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._wakeup is not None
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if self.max_wait_s > 0 and self.queued_rows < self.max_batch_size:
                await self._fill(self._queue[0].queued_at + self.max_wait_s)
            batch = self._take()
            if not batch:
                continue
            self.running = sum(item.rows for item in batch)
            began = time.perf_counter()
            for item in batch:
                item.ticket.started_at = began
            try:
                outcomes = await loop.run_in_executor(
                    self._executor, self._answer, [item.payload for item in batch]
                )
                took = time.perf_counter() - began
                last = self.call_seconds
                self.call_seconds = took if last is None else 0.8 * last + 0.2 * took
            except Exception as exc:  # not the model's answers: the executor is gone
                outcomes = [_Failed(exc)] * len(batch)
            try:
                for item, outcome in zip(batch, outcomes, strict=True):
                    if item.future.done():
                        continue
                    if isinstance(outcome, _Failed):
                        item.future.set_exception(outcome.error)
                    else:
                        item.future.set_result(outcome)
            finally:
                if self.on_batch is not None:
                    self.on_batch(self.running)
                self.running = 0

    def _answer(self, payloads: list[P]) -> list[Any]:
        """Each payload's answer, or _Failed for those the model fails on (see module)."""
        try:
            return self._checked_call(payloads)
        except Exception as exc:
            if len(payloads) == 1:
                return [_Failed(exc)]
            return self._split(payloads, exc)

    def _split(self, payloads: list[P], error: Exception) -> list[Any]:
        """Answers of the halves of a batch that failed; when both halves fail too, the
        model fails on everything (it is sick, not a request) and so does every payload."""
        middle = len(payloads) // 2
        halves = (payloads[:middle], payloads[middle:])
        results: list[list[Any] | Exception] = []
        for half in halves:
            try:
                results.append(self._checked_call(half))
            except Exception as exc:
                results.append(exc)
        if all(isinstance(result, Exception) for result in results):
            return [_Failed(error)] * len(payloads)
        answers: list[Any] = []
        for half, result in zip(halves, results, strict=True):
            if not isinstance(result, Exception):
                answers.extend(result)
            elif len(half) == 1:
                answers.append(_Failed(result))
            else:
                answers.extend(self._split(half, result))
        return answers

    def _checked_call(self, payloads: list[P]) -> list[Any]:
        answers = list(self.call(payloads))
        if len(answers) != len(payloads):
            raise RuntimeError(f"{len(answers)} answers for {len(payloads)} requests")
        return answers

    async def _fill(self, deadline: float) -> None:
        """Wait (up to ``deadline``) for the queue to hold a full batch."""
        assert self._wakeup is not None
        while self.queued_rows < self.max_batch_size and not self._closing:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except TimeoutError:
                return

    def _take(self) -> list[_Item[P]]:
        """Up to ``max_batch_size`` rows of requests still waiting for their answer."""
        batch: list[_Item[P]] = []
        rows = 0
        while self._queue:
            item = self._queue[0]
            if item.future.done():  # its caller gave up (timeout): do not compute it
                self._queue.popleft()
                self.queued_rows -= item.rows
                continue
            if batch and rows + item.rows > self.max_batch_size:
                break
            self._queue.popleft()
            self.queued_rows -= item.rows
            batch.append(item)
            rows += item.rows
        return batch

    async def close(self) -> None:
        """Answer everything already queued, then stop."""
        self._closing = True
        if self._task is not None:
            assert self._wakeup is not None
            self._wakeup.set()
            await self._task
        self._executor.shutdown(wait=True)
