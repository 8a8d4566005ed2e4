"""Redis Streams as a scoring broker: a consumer group, claimed on a consumer's death.

    redis://127.0.0.1:6379/0?stream=requests&group=scorers&consumer=a&field=data

Each request is an entry whose ``field`` (default ``data``) holds the JSON. Scorers
share the group ``group`` (default ``forgeml``), created at the stream's start with
MKSTREAM, so requests sent before the first scorer ran are scored too. XREADGROUP
gives each entry to one scorer; entries a scorer holds longer than the visibility
timeout (it died, or it is stuck) are taken over by a live one with XAUTOCLAIM, whose
delivery counter bounds the retries.

Outputs and the acknowledgement go in one Lua script: every XADD, then XACK, then the
output's length. Redis runs it at once, so the entries are acknowledged if and only if
their answers were stored; it is one round trip, like a pipeline.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from forgeml.errors import InvalidArgumentError
from forgeml.serving.stream_broker import BrokerOptions, default_consumer, query
from forgeml.serving.stream_codec import Message

PUBLISH_SCRIPT = """
local group, field, maxlen = ARGV[1], ARGV[2], ARGV[3]
local n_out, n_dead = tonumber(ARGV[4]), tonumber(ARGV[5])
local i = 6
for _ = 1, n_out do
  if maxlen ~= '' then
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', maxlen, '*', field, ARGV[i])
  else
    redis.call('XADD', KEYS[2], '*', field, ARGV[i])
  end
  i = i + 1
end
for _ = 1, n_dead do
  redis.call('XADD', KEYS[3], '*', field, ARGV[i])
  i = i + 1
end
local acked = 0  -- XACK 1000 ids at a time: Lua's unpack has a limit
while i <= #ARGV do
  local last = math.min(i + 1000 - 1, #ARGV)
  acked = acked + redis.call('XACK', KEYS[1], group, unpack(ARGV, i, last))
  i = last + 1
end
return {acked, redis.call('XLEN', KEYS[2])}
"""


class RedisBroker:
    def __init__(self, client: Any, stream: str, options: BrokerOptions, settings: dict[str, str]):
        self.client = client
        self.name = stream
        self.options = options
        self.group = options.group or settings.get("group") or "forgeml"
        self.consumer = options.consumer or settings.get("consumer") or default_consumer()
        self.field = settings.get("field", "data")
        self.visibility_ms = max(1, int(options.visibility_seconds * 1000))
        self.claim_interval = min(options.visibility_seconds / 2, 1.0)
        self._next_claim = 0.0
        self._cursor: bytes | str = "0-0"
        self._output_length = 0
        self._retrying: dict[str, float] = {}  # ids handed back, still ours: their deadline
        self._publish = client.register_script(PUBLISH_SCRIPT)

    async def setup(self) -> None:
        import redis

        try:
            await self.client.xgroup_create(self.name, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        if self.options.output_bound is not None:
            self._output_length = int(await self.client.xlen(self.options.output))

    async def fetch(self, limit: int, wait: float) -> list[Message]:
        now = time.monotonic()
        messages = await self._claim(limit) if now >= self._next_claim else []
        for message in messages:
            self._retrying.pop(message.id, None)
        for key in [k for k, deadline in self._retrying.items() if deadline < now]:
            del self._retrying[key]  # claimed by another consumer meanwhile
        # New entries only while fewer than max_in_flight are held (retries included).
        wanted = min(limit - len(messages), self.options.in_flight - len(self._retrying))
        if wanted > 0:
            # Block only when nothing is in hand, and not past the next claim.
            until_claim = max(0.0, self._next_claim - time.monotonic())
            block = None if messages else max(1, int(min(wait, until_claim) * 1000))
            reply = await self.client.xreadgroup(
                self.group, self.consumer, {self.name: ">"}, count=wanted, block=block
            )
            for _stream, entries in reply or []:
                messages.extend(self._message(i, f, 1) for i, f in entries if f is not None)
        return messages

    async def _claim(self, limit: int) -> list[Message]:
        """Entries idle past the visibility timeout, from any consumer, now ours."""
        cursor, entries, *_ = await self.client.xautoclaim(
            self.name, self.group, self.consumer, self.visibility_ms, self._cursor, count=limit
        )
        self._cursor = cursor
        finished = cursor in (b"0-0", "0-0")
        self._next_claim = time.monotonic() + (self.claim_interval if finished else 0.0)
        entries = [(i, f) for i, f in entries if f is not None]
        if not entries:
            return []
        pending = await self.client.xpending_range(
            self.name, self.group, entries[0][0], entries[-1][0], len(entries) * 2, self.consumer
        )
        counts = {_text(p["message_id"]): int(p["times_delivered"]) for p in pending}
        return [self._message(i, f, counts.get(_text(i), 2)) for i, f in entries]

    def _message(self, entry_id: bytes | str, fields: dict[Any, Any], deliveries: int) -> Message:
        text = _text(entry_id)
        data = fields.get(self.field.encode(), fields.get(self.field))
        if data is None:  # not a scoring request: the codec refuses it, naming the field
            return Message(text, b"", deliveries, missing=self.field)
        return Message(text, data if isinstance(data, bytes) else str(data).encode(), deliveries)

    async def room(self) -> bool:
        bound = self.options.output_bound
        if bound is None or self._output_length < bound:
            return True
        self._output_length = int(await self.client.xlen(self.options.output))
        return self._output_length < bound

    async def publish(
        self, outputs: Sequence[bytes], dead: Sequence[bytes], done: Sequence[Message]
    ) -> None:
        maxlen = "" if self.options.output_maxlen is None else str(self.options.output_maxlen)
        args = [self.group, self.field, maxlen, len(outputs), len(dead), *outputs, *dead]
        args.extend(m.id for m in done)
        keys = [self.name, self.options.output, self.options.dead_letter]
        _acked, length = await self._publish(keys=keys, args=args)
        self._output_length = int(length)

    async def retry(self, messages: Sequence[Message], delay: float) -> None:
        """Age the entries so XAUTOCLAIM takes them again after ``delay``, not sooner."""
        idle = max(0, self.visibility_ms - int(delay * 1000))
        await self._reclaim(messages, idle)
        deadline = time.monotonic() + delay + 2 * self.options.visibility_seconds
        self._retrying.update((m.id, deadline) for m in messages)
        self._next_claim = min(self._next_claim, time.monotonic() + delay)
        self._cursor = "0-0"

    async def touch(self, messages: Sequence[Message]) -> None:
        await self._reclaim(messages, 0)

    async def _reclaim(self, messages: Sequence[Message], idle_ms: int) -> None:
        if messages:
            ids = [m.id for m in messages]
            await self.client.xclaim(
                self.name, self.group, self.consumer, 0, ids, idle=idle_ms, justid=True
            )

    async def close(self) -> None:
        await self.client.aclose()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def connect(url: str, options: BrokerOptions) -> RedisBroker:
    """``redis://host:port/db?stream=NAME[&group=G][&consumer=C][&field=data]``."""
    import redis.asyncio

    settings = query(url)
    stream = settings.get("stream")
    if not stream:
        raise InvalidArgumentError(f"{url!r} names no stream: add ?stream=NAME")
    base = url.split("?", 1)[0]
    client = redis.asyncio.Redis.from_url(base, socket_connect_timeout=5)
    broker = RedisBroker(client, stream, options, settings)
    try:
        await broker.setup()
    except BaseException:
        await client.aclose()
        raise
    return broker
