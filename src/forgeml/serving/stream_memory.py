"""The embedded broker: named in-process queues, for scoring with no service at all.

``memory://requests`` reads the queue ``requests`` of the process-wide
``MemoryStreams.default()``; put requests there from any thread and take the answers
from the output queue. It keeps the other brokers' promises within one process:
a message stays pending until acknowledged, comes back after the visibility timeout or
a retry delay, and counts its deliveries. A queue is a queue: taking an answer removes
it, which is how room is made under ``output_bound``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlsplit

import orjson

from forgeml.errors import InvalidArgumentError
from forgeml.serving.stream_broker import BrokerOptions
from forgeml.serving.stream_codec import Message

POLL_S = 0.005


@dataclass
class _Entry:
    id: str
    data: bytes
    deliveries: int = 0


@dataclass
class _Queue:
    ready: deque[_Entry] = field(default_factory=deque)
    pending: dict[str, tuple[_Entry, float]] = field(default_factory=dict)
    next_id: int = 0


class MemoryStreams:
    """Thread-safe named queues with at-least-once delivery to one consumer group."""

    _default: ClassVar[MemoryStreams | None] = None
    _default_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[str, _Queue] = {}

    @classmethod
    def default(cls) -> MemoryStreams:
        """The process-wide queues that ``memory://`` URLs name."""
        with cls._default_lock:
            if cls._default is None:
                cls._default = cls()
            return cls._default

    def put(self, name: str, payload: bytes | str | dict[str, Any]) -> str:
        """Append a message (a dict is sent as JSON); returns its id."""
        if isinstance(payload, dict):
            data = orjson.dumps(payload)
        elif isinstance(payload, str):
            data = payload.encode()
        else:
            data = payload
        with self._lock:
            queue = self._queues.setdefault(name, _Queue())
            queue.next_id += 1
            entry = _Entry(f"{name}-{queue.next_id}", data)
            queue.ready.append(entry)
            return entry.id

    def take(self, name: str, limit: int | None = None) -> list[bytes]:
        """Remove and return up to ``limit`` ready messages (all by default)."""
        with self._lock:
            queue = self._queues.get(name)
            if queue is None:
                return []
            count = len(queue.ready) if limit is None else min(limit, len(queue.ready))
            return [queue.ready.popleft().data for _ in range(count)]

    def length(self, name: str) -> int:
        """Messages waiting in ``name`` (ready ones, not those pending with a consumer)."""
        with self._lock:
            queue = self._queues.get(name)
            return 0 if queue is None else len(queue.ready)

    def pending(self, name: str) -> int:
        with self._lock:
            queue = self._queues.get(name)
            return 0 if queue is None else len(queue.pending)

    def delete(self, name: str) -> None:
        with self._lock:
            self._queues.pop(name, None)

    # -- the consumer side ------------------------------------------------------------
    def _deliver(self, name: str, limit: int, visibility: float) -> list[Message]:
        now = time.monotonic()
        with self._lock:
            queue = self._queues.setdefault(name, _Queue())
            due = [e for e, deadline in queue.pending.values() if deadline <= now]
            for entry in due:  # not settled in time: back to the front, in order
                del queue.pending[entry.id]
            queue.ready.extendleft(reversed(due))
            messages: list[Message] = []
            while queue.ready and len(messages) < limit:
                entry = queue.ready.popleft()
                entry.deliveries += 1
                queue.pending[entry.id] = (entry, now + visibility)
                messages.append(Message(entry.id, entry.data, entry.deliveries))
            return messages

    def _settle(self, name: str, ids: Sequence[str], delay: float | None) -> None:
        """Acknowledge ``ids`` (delay None) or make them due again after ``delay``."""
        now = time.monotonic()
        with self._lock:
            queue = self._queues.setdefault(name, _Queue())
            for message_id in ids:
                held = queue.pending.get(message_id)
                if held is None:
                    continue
                if delay is None:
                    del queue.pending[message_id]
                else:
                    queue.pending[message_id] = (held[0], now + delay)


class MemoryBroker:
    """One consumer of a ``MemoryStreams`` queue, publishing to two others."""

    def __init__(self, streams: MemoryStreams, name: str, options: BrokerOptions) -> None:
        self.streams = streams
        self.name = name
        self.options = options

    async def fetch(self, limit: int, wait: float) -> list[Message]:
        deadline = time.monotonic() + wait
        visibility = self.options.visibility_seconds
        limit = min(limit, self.options.in_flight - self.streams.pending(self.name))
        while True:
            messages = self.streams._deliver(self.name, max(limit, 0), visibility)
            if messages or time.monotonic() >= deadline:
                return messages
            await asyncio.sleep(POLL_S)

    async def room(self) -> bool:
        bound = self.options.output_bound
        return bound is None or self.streams.length(self.options.output) < bound

    async def publish(
        self, outputs: Sequence[bytes], dead: Sequence[bytes], done: Sequence[Message]
    ) -> None:
        for payload in outputs:
            self.streams.put(self.options.output, payload)
        for payload in dead:
            self.streams.put(self.options.dead_letter, payload)
        self.streams._settle(self.name, [m.id for m in done], None)

    async def retry(self, messages: Sequence[Message], delay: float) -> None:
        self.streams._settle(self.name, [m.id for m in messages], delay)

    async def touch(self, messages: Sequence[Message]) -> None:
        visibility = self.options.visibility_seconds
        self.streams._settle(self.name, [m.id for m in messages], visibility)

    async def close(self) -> None:
        return None


async def connect(url: str, options: BrokerOptions) -> MemoryBroker:
    """``memory://NAME``: the queue NAME of the process-wide streams."""
    parts = urlsplit(url)
    name = (parts.netloc + parts.path).strip("/")
    if not name:
        raise InvalidArgumentError(f"{url!r} names no queue: use memory://NAME")
    return MemoryBroker(MemoryStreams.default(), name, options)
