"""Stream scoring: read requests from a broker, score them, publish the answers.

    import forgeml as fm
    fm.serving.score_stream("models:/fraud@champion",
                            "redis://127.0.0.1:6379/0?stream=payments", "fraud-scores")

One loop, whichever broker (``forgeml.serving.stream_broker``): fetch at most
``batch`` messages, check each as the HTTP server would, score every valid one in a
single model call, publish the answers and the dead letters, and only then acknowledge
the messages. A crash anywhere before the acknowledgement leaves the messages to be
delivered again: at least once, never lost. A message that can never be scored as
sent goes to the dead letter at once; one the model fails on is handed back with a
delay and dead-lettered only after ``max_deliveries``. The scorer never reads ahead of
what it has scored, and when the output is full it stops reading until there is room.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from forgeml.errors import InvalidArgumentError
from forgeml.serving.inputs import RequestError
from forgeml.serving.prediction_log import LoggedRequest, PredictionLog
from forgeml.serving.runtime import LoadedModel, resolve
from forgeml.serving.stream_broker import Broker, BrokerOptions, SinkFull, connect
from forgeml.serving.stream_codec import (
    Message,
    ScoringRequest,
    decode,
    encode_dead_letter,
    encode_output,
)

log = logging.getLogger("forgeml.serving.stream")

MAX_BACKOFF_S = 2.0


@dataclass
class StreamStats:
    """What a scorer did; ``paused`` counts the times a full output stopped reading."""

    scored: int = 0
    rows: int = 0
    dead_lettered: int = 0
    redelivered: int = 0
    retried: int = 0
    paused: int = 0
    paused_seconds: float = 0.0
    batches: int = 0
    swaps: int = 0
    model: str = ""
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        return (
            f"scored {self.scored} messages ({self.rows} rows) with {self.model} in "
            f"{self.seconds:.1f} s; dead-lettered {self.dead_lettered}, redelivered "
            f"{self.redelivered}, retried {self.retried}, paused {self.paused} times "
            f"({self.paused_seconds:.1f} s), model swaps {self.swaps}"
        )


@dataclass
class _Batch:
    outputs: list[bytes] = field(default_factory=list)
    dead: list[bytes] = field(default_factory=list)
    done: list[Message] = field(default_factory=list)
    retry: list[Message] = field(default_factory=list)


class StreamScorer:
    """Scores the messages of ``source`` with ``model`` until stopped.

    ``max_messages`` and ``idle_exit`` (seconds without a message) end the run on their
    own; ``stop()`` ends it after the batch in hand is published and acknowledged.
    ``grace_seconds`` bounds how long a stop waits for a full output: past it, the
    batch is left unacknowledged, to be delivered again.
    """

    def __init__(
        self,
        model: str,
        source: str,
        options: BrokerOptions,
        *,
        name: str | None = None,
        method: str = "predict",
        wait_seconds: float = 1.0,
        retry_delay: float = 1.0,
        refresh_seconds: float = 10.0,
        log_predictions: bool = True,
        max_messages: int | None = None,
        idle_exit: float | None = None,
        grace_seconds: float = 30.0,
    ) -> None:
        if options.batch < 1 or options.max_deliveries < 1:
            raise InvalidArgumentError("batch and max_deliveries must be at least 1")
        self.uri = model
        self.source = source
        self.options = options
        self.name = name
        self.method = method
        self.wait_seconds = wait_seconds
        self.retry_delay = retry_delay
        self.refresh_seconds = refresh_seconds
        self.log_predictions = log_predictions
        self.max_messages = max_messages
        self.idle_exit = idle_exit
        self.grace_seconds = grace_seconds
        self.stats = StreamStats()
        self.model: LoadedModel | None = None
        self.prediction_log: PredictionLog | None = None
        self._next_model: LoadedModel | None = None
        self._stopping = threading.Event()
        self._stop_at: float | None = None

    def stop(self) -> None:
        """Finish the batch in hand, then return from ``run`` (safe from any thread)."""
        if not self._stopping.is_set():
            self._stop_at = time.monotonic()
            self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def run(self) -> StreamStats:
        started = time.monotonic()
        self.model = await asyncio.to_thread(self._load, self.uri)
        self.stats.model = self.model.label
        self.name = self.name or f"stream-{self.model.resolved.name}"
        broker = await connect(self.source, self.options)
        if self.log_predictions:
            self.prediction_log = PredictionLog()
        follow = None
        if self.refresh_seconds > 0:
            follow = asyncio.get_running_loop().create_task(self._follow_alias())
        log.info("scoring %s with %s into %s", broker.name, self.model.label, self.options.output)
        try:
            await self._loop(broker)
        finally:
            if follow is not None:
                follow.cancel()
                await asyncio.gather(follow, return_exceptions=True)
            await broker.close()
            if self.prediction_log is not None:
                await asyncio.to_thread(self.prediction_log.close)
            self.stats.seconds = time.monotonic() - started
        return self.stats

    async def _loop(self, broker: Broker) -> None:
        last_message = time.monotonic()
        settled = 0
        while not self.stopping:
            if self._next_model is not None:
                self._swap()
            if not await self._wait_for_room(broker):
                return
            limit = self.options.batch
            if self.max_messages is not None:
                limit = min(limit, self.max_messages - settled)
                if limit <= 0:
                    return
            messages = await broker.fetch(limit, self.wait_seconds)
            if not messages:
                idle = time.monotonic() - last_message
                if self.idle_exit is not None and idle >= self.idle_exit:
                    log.info("no message for %.1f s: stopping", idle)
                    return
                continue
            last_message = time.monotonic()
            settled += await self._handle(broker, messages)

    async def _handle(self, broker: Broker, messages: list[Message]) -> int:
        """Score, publish and settle one fetch; the number of messages acknowledged."""
        assert self.model is not None
        model = self.model
        started = time.perf_counter()
        batch = _Batch()
        valid: list[ScoringRequest] = []
        limit = self.options.max_deliveries
        for message in messages:
            if message.deliveries > 1:
                self.stats.redelivered += 1
            if message.deliveries > limit:
                error = f"delivered {message.deliveries} times without being settled"
                self._dead(batch, broker, message, "deliveries", error, None)
                continue
            try:
                valid.append(decode(message, model.inputs))
            except RequestError as exc:
                self._dead(batch, broker, message, "invalid", str(exc), exc.field)
        answers, failures = await self._score(model, valid)
        latency_ms = (time.perf_counter() - started) * 1000.0
        for request, outputs in answers:
            batch.outputs.append(
                encode_output(
                    request.id, model.resolved.name, model.resolved.version, outputs, latency_ms
                )
            )
            batch.done.append(request.message)
        for request, failure in failures:
            message = request.message
            if message.deliveries >= limit:
                error = f"model {model.label} failed {message.deliveries} times: {failure}"
                self._dead(batch, broker, message, "model", error, None)
            else:
                batch.retry.append(message)
        if batch.retry:
            await broker.retry(batch.retry, self.retry_delay)
            self.stats.retried += len(batch.retry)
        if not await self._publish(broker, batch):
            return 0
        self.stats.batches += 1
        self.stats.scored += len(answers)
        self.stats.rows += sum(r.rows.count for r, _ in answers)
        self.stats.dead_lettered += len(batch.dead)
        self._log(model, answers, latency_ms)
        return len(batch.done)

    def _dead(
        self,
        batch: _Batch,
        broker: Broker,
        message: Message,
        reason: str,
        error: str,
        field_name: str | None,
    ) -> None:
        log.warning("message %s to the dead letter (%s): %s", message.id, reason, error)
        batch.dead.append(encode_dead_letter(message, broker.name, reason, error, field_name))
        batch.done.append(message)

    async def _score(
        self, model: LoadedModel, requests: list[ScoringRequest]
    ) -> tuple[list[tuple[ScoringRequest, list[Any]]], list[tuple[ScoringRequest, Exception]]]:
        """One model call for the batch; if it fails, one per message to find the culprits."""
        if not requests:
            return [], []
        try:
            answers = await asyncio.to_thread(model.predict, [r.rows for r in requests])
            return list(zip(requests, answers, strict=True)), []
        except Exception as exc:
            if len(requests) == 1:
                log.warning("model %s failed on %s: %s", model.label, requests[0].id, exc)
                return [], [(requests[0], exc)]
        scored: list[tuple[ScoringRequest, list[Any]]] = []
        failed: list[tuple[ScoringRequest, Exception]] = []
        for request in requests:
            try:
                outputs = await asyncio.to_thread(model.predict, [request.rows])
                scored.append((request, outputs[0]))
            except Exception as exc:
                log.warning("model %s failed on %s: %s", model.label, request.id, exc)
                failed.append((request, exc))
        return scored, failed

    async def _publish(self, broker: Broker, batch: _Batch) -> bool:
        """Publish and acknowledge, waiting out a full output; False if given up on stop."""
        outputs, dead = batch.outputs, batch.dead
        if not outputs and not dead and not batch.done:
            return True
        delay = 0.01
        paused_at: float | None = None
        while True:
            try:
                await broker.publish(outputs, dead, batch.done)
                break
            except SinkFull as exc:
                outputs, dead = exc.outputs, exc.dead
                if paused_at is None:
                    paused_at = time.monotonic()
                    self.stats.paused += 1
                    log.info("output full (%s): pausing", exc)
                if self._stop_at is not None and time.monotonic() - self._stop_at > (
                    self.grace_seconds
                ):
                    log.warning("stopping with %d messages unacknowledged", len(batch.done))
                    return False
                await broker.touch(batch.done)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_S)
        if paused_at is not None:
            self.stats.paused_seconds += time.monotonic() - paused_at
        return True

    async def _wait_for_room(self, broker: Broker) -> bool:
        """Before reading: wait (backing off) while the output is over its bound."""
        if await broker.room():
            return True
        paused_at = time.monotonic()
        self.stats.paused += 1
        log.info("output over its bound: pausing reads")
        delay = 0.01
        try:
            while not self.stopping:
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_S)
                if await broker.room():
                    return True
            return False
        finally:
            self.stats.paused_seconds += time.monotonic() - paused_at

    def _log(
        self, model: LoadedModel, answers: list[tuple[ScoringRequest, list[Any]]], ms: float
    ) -> None:
        if self.prediction_log is None or self.name is None:
            return
        resolved = model.resolved
        now = time.time()
        for request, outputs in answers:
            self.prediction_log.append(
                LoggedRequest(
                    request.id, now, self.name, "stream", resolved.name, resolved.version,
                    request.rows, None, outputs, ms, False, False, 200,
                )
            )  # fmt: skip

    # -- following the alias ----------------------------------------------------------
    def _load(self, uri: str) -> LoadedModel:
        loaded = LoadedModel(resolve(uri), self.method)
        loaded.warm_up()
        return loaded

    async def _follow_alias(self) -> None:
        """Resolve the URI every ``refresh_seconds``; load a moved alias off the loop."""
        while True:
            await asyncio.sleep(self.refresh_seconds)
            current = self._next_model or self.model
            try:
                resolved = await asyncio.to_thread(resolve, self.uri)
                if current is not None and resolved.digest == current.resolved.digest:
                    continue
                loaded = LoadedModel(resolved, self.method)
                await asyncio.to_thread(loaded.warm_up)
            except Exception as exc:  # the control plane is down: keep scoring
                log.warning("cannot refresh %s, scoring with what is loaded: %s", self.uri, exc)
                continue
            self._next_model = loaded

    def _swap(self) -> None:
        old, self.model, self._next_model = self.model, self._next_model, None
        assert self.model is not None
        self.stats.swaps += 1
        self.stats.model = self.model.label
        log.info("%s moved: %s -> %s", self.uri, old.label if old else "-", self.model.label)


def score_stream(
    model: str,
    source: str,
    output: str,
    dead_letter: str | None = None,
    *,
    name: str | None = None,
    group: str | None = None,
    consumer: str | None = None,
    batch: int = 64,
    max_deliveries: int = 5,
    visibility_seconds: float = 30.0,
    max_in_flight: int | None = None,
    output_bound: int | None = None,
    output_maxlen: int | None = None,
    retry_delay: float = 1.0,
    refresh_seconds: float = 10.0,
    log_predictions: bool = True,
    method: str = "predict",
    max_messages: int | None = None,
    idle_exit: float | None = None,
    metrics_port: int | None = None,
) -> StreamStats:
    """Score the requests on ``source`` with ``model`` until SIGTERM/SIGINT (or a limit).

    ``source`` is a broker URL (see ``forgeml.serving.stream_broker``); ``output`` and
    ``dead_letter`` (default: ``<output>.dead``) are stream names (Redis) or subjects
    (NATS) on the same broker. Returns what was done once stopped.
    """
    options = BrokerOptions(
        output=output,
        dead_letter=dead_letter or f"{output}.dead",
        group=group,
        consumer=consumer,
        batch=batch,
        visibility_seconds=visibility_seconds,
        max_deliveries=max_deliveries,
        max_in_flight=max_in_flight,
        output_bound=output_bound,
        output_maxlen=output_maxlen,
    )
    scorer = StreamScorer(
        model,
        source,
        options,
        name=name,
        method=method,
        retry_delay=retry_delay,
        refresh_seconds=refresh_seconds,
        log_predictions=log_predictions,
        max_messages=max_messages,
        idle_exit=idle_exit,
    )
    server = None
    if metrics_port is not None:
        from forgeml.serving.stream_metrics import start_metrics

        server = start_metrics(scorer, metrics_port)
    try:
        return asyncio.run(_run_until_signal(scorer))
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()


async def _run_until_signal(scorer: StreamScorer) -> StreamStats:
    """``scorer.run()``, with SIGTERM and SIGINT asking it to stop after its batch."""
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    if threading.current_thread() is threading.main_thread():
        for number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(number, scorer.stop)
            handled.append(number)
    try:
        return await scorer.run()
    finally:
        for number in handled:
            loop.remove_signal_handler(number)
