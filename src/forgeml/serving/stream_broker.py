"""The one interface a stream scorer holds, whichever broker is behind it.

A broker hands out messages, takes outputs and dead letters, and settles messages:
acknowledged once their answers are stored, handed back to be delivered again, or
kept (still being worked on). The scorer never learns which broker it holds; brokers
are chosen by URL and their clients imported only when chosen::

    memory://requests                                  in-process queue (the default)
    redis://host:6379/0?stream=requests&group=scorers  Redis Streams, a consumer group
    nats://host:4222?subject=requests&stream=REQUESTS  NATS JetStream, a durable consumer
"""

from __future__ import annotations

import importlib
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import parse_qs, urlsplit

from forgeml.errors import InvalidArgumentError
from forgeml.serving.stream_codec import Message

BROKERS = {
    "memory": "forgeml.serving.stream_memory",
    "redis": "forgeml.serving.stream_redis",
    "rediss": "forgeml.serving.stream_redis",
    "unix": "forgeml.serving.stream_redis",
    "nats": "forgeml.serving.stream_nats",
    "tls": "forgeml.serving.stream_nats",
}


class SinkFull(Exception):
    """The output cannot take more now; ``outputs`` and ``dead`` were not published.

    Whatever is not listed here was published; the messages were not acknowledged.
    """

    def __init__(self, reason: str, outputs: Sequence[bytes], dead: Sequence[bytes]) -> None:
        super().__init__(reason)
        self.outputs = list(outputs)
        self.dead = list(dead)


@dataclass(frozen=True)
class BrokerOptions:
    """How a scorer uses its broker; the URL's query may set the broker-specific ones.

    ``visibility_seconds``: how long a delivered, unacknowledged message stays with its
    consumer before another may take it (Redis: XAUTOCLAIM's min idle time; NATS: the
    consumer's ack_wait). ``max_in_flight``: messages delivered and not yet settled
    (NATS: max_ack_pending). ``output_bound``: the output length at which the scorer
    stops reading (Redis: XLEN; NATS: max_msgs of an output stream it creates, which
    then refuses publishes). ``output_maxlen``: Redis only, trim the output stream to
    about this many entries (old predictions are dropped: for a stream read as a log).
    """

    output: str
    dead_letter: str
    group: str | None = None
    consumer: str | None = None
    batch: int = 64
    visibility_seconds: float = 30.0
    max_deliveries: int = 5
    max_in_flight: int | None = None
    output_bound: int | None = None
    output_maxlen: int | None = None

    @property
    def in_flight(self) -> int:
        return max(self.max_in_flight or 2 * self.batch, self.batch)


class Broker(Protocol):
    """Where a scorer reads requests and writes answers. Every method may raise the
    client's own connection errors; the scorer does not retry those."""

    name: str  # the input's name, for logs and dead letters

    async def fetch(self, limit: int, wait: float) -> list[Message]:
        """Up to ``limit`` messages, waiting at most ``wait`` seconds for the first."""
        ...

    async def room(self) -> bool:
        """Whether the output can take another batch (False: the scorer pauses)."""
        ...

    async def publish(
        self, outputs: Sequence[bytes], dead: Sequence[bytes], done: Sequence[Message]
    ) -> None:
        """Store ``outputs`` and ``dead`` durably, then acknowledge ``done``.

        Raises SinkFull (naming what was not stored) instead of acknowledging when the
        output refuses more.
        """
        ...

    async def retry(self, messages: Sequence[Message], delay: float) -> None:
        """Hand ``messages`` back, to be delivered again in about ``delay`` seconds."""
        ...

    async def touch(self, messages: Sequence[Message]) -> None:
        """Say ``messages`` are still being worked on (the visibility clock restarts)."""
        ...

    async def close(self) -> None: ...


def default_consumer() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def query(url: str) -> dict[str, str]:
    """The URL's query as single values (the last one wins)."""
    return {key: values[-1] for key, values in parse_qs(urlsplit(url).query).items()}


def positive_int(options: dict[str, str], key: str, url: str) -> int | None:
    text = options.get(key)
    if text is None:
        return None
    if not text.isdigit() or int(text) <= 0:
        raise InvalidArgumentError(
            f"{key!r} in {url!r} must be a positive whole number, got {text!r}"
        )
    return int(text)


async def connect(url: str, options: BrokerOptions) -> Broker:
    """A ready broker for ``url`` (the stream, group or consumer is created if missing)."""
    scheme = urlsplit(url).scheme
    module = BROKERS.get(scheme)
    if module is None:
        known = ", ".join(f"{s}://" for s in sorted(BROKERS))
        raise InvalidArgumentError(f"no stream broker for {url!r}: use one of {known}")
    broker: Broker = await importlib.import_module(module).connect(url, options)
    return broker
