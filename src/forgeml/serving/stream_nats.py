"""NATS JetStream as a scoring broker: a durable pull consumer, acknowledged per message.

    nats://127.0.0.1:4222?subject=requests&stream=REQUESTS&durable=scorers

Requests are read from ``subject`` in ``stream`` (default: the stream capturing the
subject, else a new one named after it) through the durable pull consumer ``durable``
(default: the scorer's group, else ``forgeml``), shared by every scorer of the group.
The consumer's settings carry the promises: explicit acks, ``ack_wait`` = the visibility
timeout (an unacknowledged message goes to another scorer), ``max_ack_pending`` = the
in-flight bound (the server stops handing out messages), ``max_deliver`` one above the
scorer's delivery bound, so the scorer sees the last delivery and dead-letters it.

Outputs are published with JetStream publish, concurrently, and every PubAck is awaited
before a request is acknowledged. The output and dead-letter subjects get a stream of
their own if no stream captures them; with ``output_bound`` the output's is a work
queue of at most that many messages that refuses more (discard new): a refused publish
is what pauses the scorer.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from forgeml.errors import InvalidArgumentError
from forgeml.serving.stream_broker import BrokerOptions, SinkFull, query
from forgeml.serving.stream_codec import Message

PUBLISH_TIMEOUT_S = 5.0


def stream_name(subject: str) -> str:
    """A JetStream stream name for ``subject``: ``predictions.dead`` -> ``PREDICTIONS_DEAD``."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", subject).upper()


class NatsBroker:
    def __init__(
        self, nc: Any, subject: str, stream: str | None, options: BrokerOptions, durable: str
    ):
        self.nc = nc
        self.js = nc.jetstream()
        self.name = subject
        self.stream = stream
        self.options = options
        self.durable = durable
        self.sub: Any = None
        self.max_ack_pending = options.in_flight

    async def setup(self) -> None:
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        if self.stream is None:
            self.stream = await self._ensure_stream(stream_name(self.name), self.name, None)
        await self._ensure_stream(
            stream_name(self.options.output), self.options.output, self.options.output_bound
        )
        await self._ensure_stream(
            stream_name(self.options.dead_letter), self.options.dead_letter, None
        )
        config = ConsumerConfig(
            durable_name=self.durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self.options.visibility_seconds,
            max_deliver=self.options.max_deliveries + 1,
            max_ack_pending=self.options.in_flight,
            filter_subject=self.name,
        )
        self.sub = await self.js.pull_subscribe(
            self.name, durable=self.durable, stream=self.stream, config=config
        )
        # An existing durable keeps its own settings: fetch within its bound, or a pull
        # for more than it may hand out waits out its whole timeout.
        info = await self.sub.consumer_info()
        self.max_ack_pending = info.config.max_ack_pending or self.options.in_flight

    async def _ensure_stream(self, name: str, subject: str, bound: int | None) -> str:
        """The stream capturing ``subject``; ``name`` is created for it if none does."""
        from nats.js.api import DiscardPolicy, RetentionPolicy, StreamConfig
        from nats.js.errors import NotFoundError

        try:
            found: str = await self.js.find_stream_name_by_subject(subject)
            return found
        except NotFoundError:
            pass
        config = StreamConfig(name=name, subjects=[subject])
        if bound is not None:
            config.max_msgs = bound
            config.discard = DiscardPolicy.NEW
            config.retention = RetentionPolicy.WORK_QUEUE
        await self.js.add_stream(config)
        return name

    async def fetch(self, limit: int, wait: float) -> list[Message]:
        try:
            batch = max(1, min(limit, self.max_ack_pending))
            received = await self.sub.fetch(batch, timeout=max(wait, 0.05))
        except TimeoutError:  # nats' own and asyncio's: nothing arrived in time
            return []
        messages = []
        for msg in received:
            meta = msg.metadata
            given = (msg.headers or {}).get("Nats-Msg-Id")
            message_id = given or f"{meta.stream}:{meta.sequence.stream}"
            messages.append(Message(message_id, msg.data, meta.num_delivered, msg))
        return messages

    async def room(self) -> bool:
        return True  # a full output refuses the publish: that is the signal here

    async def publish(
        self, outputs: Sequence[bytes], dead: Sequence[bytes], done: Sequence[Message]
    ) -> None:
        sent = [(self.options.output, p) for p in outputs]
        sent += [(self.options.dead_letter, p) for p in dead]
        # Concurrent requests, one PubAck each; a full stream answers with an error.
        results = await asyncio.gather(
            *(self.js.publish(s, p, timeout=PUBLISH_TIMEOUT_S) for s, p in sent),
            return_exceptions=True,
        )
        failed = [(s, p, r) for (s, p), r in zip(sent, results, strict=True) if _failed(r)]
        if failed:
            raise SinkFull(
                f"{len(failed)} of {len(sent)} publishes refused: {failed[0][2]}",
                [p for s, p, _ in failed if s == self.options.output],
                [p for s, p, _ in failed if s != self.options.output],
            )
        for message in done:
            await message.token.ack()
        # One PING/PONG: the server has taken the acks before the next fetch asks for
        # messages within max_ack_pending.
        await self.nc.flush(timeout=PUBLISH_TIMEOUT_S)

    async def retry(self, messages: Sequence[Message], delay: float) -> None:
        for message in messages:
            await message.token.nak(delay=delay)

    async def touch(self, messages: Sequence[Message]) -> None:
        for message in messages:
            await message.token.in_progress()

    async def close(self) -> None:
        try:
            if self.sub is not None:
                await self.sub.unsubscribe()
            await self.nc.flush(timeout=5)  # the last acks reach the server
        finally:
            await self.nc.close()


def _failed(result: Any) -> bool:
    if isinstance(result, asyncio.CancelledError):
        raise result
    return isinstance(result, BaseException)


async def connect(url: str, options: BrokerOptions) -> NatsBroker:
    """``nats://host:port?subject=S[&stream=NAME][&durable=D]`` (``tls://`` too)."""
    import nats

    settings = query(url)
    subject = settings.get("subject")
    if not subject:
        raise InvalidArgumentError(f"{url!r} names no subject: add ?subject=NAME")
    parts = urlsplit(url)
    server = f"{parts.scheme}://{parts.netloc}"
    durable = options.group or settings.get("durable") or settings.get("group") or "forgeml"
    stream = settings.get("stream")  # default: the one capturing the subject, else a new one
    nc = await nats.connect(servers=[server], connect_timeout=5, name="forgeml-stream")
    broker = NatsBroker(nc, subject, stream, options, durable)
    try:
        await broker.setup()
    except BaseException:
        await nc.close()
        raise
    return broker
