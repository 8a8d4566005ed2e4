"""Stream scoring against real brokers: Redis Streams, NATS JetStream and the in-process queue.

Every test gets streams/subjects of its own (a uuid in the name), removed afterwards.
The models are real, registered with ``fm.log_model``; the model failure is real too:
GradientBoostingClassifier refuses NaN, and a null in a float column passes the input
checks (as it does over HTTP) and reaches the model.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pandas as pd
import pytest

import forgeml as fm
from conftest import NATS_URL, REDIS_URL, require_nats, require_redis
from forgeml.serving.runtime import LoadedModel
from forgeml.serving.stream import StreamScorer
from forgeml.serving.stream_broker import BrokerOptions, connect
from forgeml.serving.stream_memory import MemoryStreams
from forgeml.serving.stream_nats import stream_name
from forgeml_cli import FORGEML
from serving_support import FEATURES, record, register_versions

BROKERS = ["memory", "redis", "nats"]
REAL_BROKERS = ["redis", "nats"]


# -- one test-side view of each broker ------------------------------------------------------
class Bus:
    """Sends requests and reads answers the way a producer and a downstream reader would."""

    url: str

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:10]
        self.tag = tag
        self.output = f"out-{tag}"
        self.dead = f"out-{tag}.dead"

    def send(self, payloads: list[Any]) -> None:
        raise NotImplementedError

    def outputs(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def dead_letters(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def drain(self, limit: int) -> list[dict[str, Any]]:
        """Consume up to ``limit`` answers, making room in a bounded output."""
        raise NotImplementedError

    def output_length(self) -> int:
        raise NotImplementedError

    def unsettled(self) -> int:
        """Requests delivered and not acknowledged."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


def _body(payload: Any) -> bytes:
    return payload if isinstance(payload, bytes) else orjson.dumps(payload)


class MemoryBus(Bus):
    def __init__(self) -> None:
        super().__init__()
        self.streams = MemoryStreams.default()
        self.name = f"req-{self.tag}"
        self.url = f"memory://{self.name}"
        self.taken: dict[str, list[dict[str, Any]]] = {self.output: [], self.dead: []}

    def send(self, payloads: list[Any]) -> None:
        for payload in payloads:
            self.streams.put(self.name, _body(payload))

    def _read(self, name: str) -> list[dict[str, Any]]:
        self.taken[name] += [orjson.loads(b) for b in self.streams.take(name)]
        return self.taken[name]

    def outputs(self) -> list[dict[str, Any]]:
        return self._read(self.output)

    def dead_letters(self) -> list[dict[str, Any]]:
        return self._read(self.dead)

    def drain(self, limit: int) -> list[dict[str, Any]]:
        return [orjson.loads(b) for b in self.streams.take(self.output, limit)]

    def output_length(self) -> int:
        return self.streams.length(self.output)

    def unsettled(self) -> int:
        return self.streams.pending(self.name)

    def close(self) -> None:
        for name in (self.name, self.output, self.dead):
            self.streams.delete(name)


class RedisBus(Bus):
    def __init__(self) -> None:
        import redis

        super().__init__()
        self.r = redis.Redis.from_url(REDIS_URL)
        self.name = f"req-{self.tag}"
        self.url = f"{REDIS_URL}?stream={self.name}"
        self.drained = "0-0"

    def send(self, payloads: list[Any]) -> None:
        with self.r.pipeline(transaction=False) as pipe:
            for payload in payloads:
                pipe.xadd(self.name, {"data": _body(payload)})
            pipe.execute()

    def _read(self, name: str) -> list[dict[str, Any]]:
        return [orjson.loads(fields[b"data"]) for _id, fields in self.r.xrange(name)]

    def outputs(self) -> list[dict[str, Any]]:
        return self._read(self.output)

    def dead_letters(self) -> list[dict[str, Any]]:
        return self._read(self.dead)

    def drain(self, limit: int) -> list[dict[str, Any]]:
        entries = self.r.xrange(self.output, count=limit)
        if entries:
            self.r.xdel(self.output, *[i for i, _ in entries])
        return [orjson.loads(fields[b"data"]) for _id, fields in entries]

    def output_length(self) -> int:
        return int(self.r.xlen(self.output))

    def unsettled(self) -> int:
        return int(self.r.xpending(self.name, "forgeml")["pending"])

    def close(self) -> None:
        self.r.delete(self.name, self.output, self.dead)
        self.r.close()


class NatsBus(Bus):
    def __init__(self) -> None:
        import nats

        super().__init__()
        self.subject = f"req.{self.tag}"
        self.output = f"out.{self.tag}"
        self.dead = f"out.{self.tag}.dead"
        self.url = f"{NATS_URL}?subject={self.subject}"
        self.loop = asyncio.new_event_loop()
        self.nc = self.run(nats.connect(NATS_URL))
        self.js = self.nc.jetstream()
        self.run(self.js.add_stream(name=stream_name(self.subject), subjects=[self.subject]))
        self.reader: Any = None

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def bound_output(self, bound: int) -> None:
        """An output stream that refuses publishes past ``bound`` unconsumed answers."""
        from nats.js.api import DiscardPolicy, RetentionPolicy, StreamConfig

        config = StreamConfig(
            name=stream_name(self.output),
            subjects=[self.output],
            max_msgs=bound,
            discard=DiscardPolicy.NEW,
            retention=RetentionPolicy.WORK_QUEUE,
        )
        self.run(self.js.add_stream(config))

    def send(self, payloads: list[Any]) -> None:
        async def publish() -> None:
            futures = [await self.js.publish_async(self.subject, _body(p)) for p in payloads]
            await asyncio.gather(*futures)

        self.run(publish())

    def _read(self, subject: str) -> list[dict[str, Any]]:
        from nats.js.api import AckPolicy, ConsumerConfig
        from nats.js.errors import NotFoundError

        async def read() -> list[dict[str, Any]]:
            try:
                info = await self.js.stream_info(stream_name(subject))
            except NotFoundError:
                return []
            found: list[dict[str, Any]] = []
            if not info.state.messages:
                return found
            config = ConsumerConfig(ack_policy=AckPolicy.NONE)
            sub = await self.js.pull_subscribe(subject, stream=info.config.name, config=config)
            try:
                while len(found) < info.state.messages:
                    found += [orjson.loads(m.data) for m in await sub.fetch(1000, timeout=2)]
            finally:
                await sub.unsubscribe()
            return found

        result: list[dict[str, Any]] = self.run(read())
        return result

    def outputs(self) -> list[dict[str, Any]]:
        return self._read(self.output)

    def dead_letters(self) -> list[dict[str, Any]]:
        return self._read(self.dead)

    def drain(self, limit: int) -> list[dict[str, Any]]:
        async def take() -> list[dict[str, Any]]:
            if self.reader is None:
                self.reader = await self.js.pull_subscribe(
                    self.output, durable="downstream", stream=stream_name(self.output)
                )
            try:
                msgs = await self.reader.fetch(limit, timeout=0.2)
            except TimeoutError:
                return []
            for msg in msgs:
                await msg.ack_sync()
            return [orjson.loads(m.data) for m in msgs]

        result: list[dict[str, Any]] = self.run(take())
        return result

    def output_length(self) -> int:
        info = self.run(self.js.stream_info(stream_name(self.output)))
        return int(info.state.messages)

    def unsettled(self) -> int:
        info = self.run(self.js.consumer_info(stream_name(self.subject), "forgeml"))
        return int(info.num_ack_pending)

    def close(self) -> None:
        from nats.js.errors import NotFoundError

        async def clean() -> None:
            if self.reader is not None:
                await self.reader.unsubscribe()
            for subject in (self.subject, self.output, self.dead):
                try:
                    await self.js.delete_stream(stream_name(subject))
                except NotFoundError:
                    pass
            await self.nc.close()

        try:
            self.run(clean())
        finally:
            self.loop.close()


@pytest.fixture(params=BROKERS)
def bus(request: pytest.FixtureRequest, home: Path) -> Iterator[Bus]:
    yield from _bus(request.param)


@pytest.fixture(params=REAL_BROKERS)
def real_bus(request: pytest.FixtureRequest, home: Path) -> Iterator[Bus]:
    yield from _bus(request.param)


def _bus(kind: str) -> Iterator[Bus]:
    if kind == "redis":
        require_redis()
    if kind == "nats":
        require_nats()
    made: Bus = {"memory": MemoryBus, "redis": RedisBus, "nats": NatsBus}[kind]()
    try:
        yield made
    finally:
        made.close()


# -- helpers --------------------------------------------------------------------------------
def expected(uri: str, records: list[dict[str, float]]) -> list[int]:
    model = fm.load_model(uri)
    return [int(v) for v in model.predict(pd.DataFrame(records, columns=FEATURES))]


def requests(count: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"id": f"r{i}", "inputs": record(i)} for i in range(start, start + count)]


def poison() -> dict[str, Any]:
    """Passes the input checks (null reads as NaN) and makes the model raise."""
    return {"id": "poison", "inputs": {**record(99), "f0": None}}


def options(bus: Bus, **changes: Any) -> BrokerOptions:
    return BrokerOptions(output=bus.output, dead_letter=bus.dead, **changes)


def wait_for(condition: Callable[[], bool], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


class Background:
    """A scorer running in a thread, as a service would run it."""

    def __init__(self, scorer: StreamScorer) -> None:
        self.scorer = scorer
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            asyncio.run(self.scorer.run())
        except BaseException as exc:
            self.error = exc

    def join(self, seconds: float = 30.0) -> None:
        self.thread.join(seconds)
        if self.thread.is_alive():
            self.scorer.stop()
            self.thread.join(10)
            pytest.fail("the scorer did not finish")
        if self.error is not None:
            raise self.error


@pytest.fixture
def background() -> Iterator[Callable[[StreamScorer], Background]]:
    """Starts scorers in threads; any still running when the test ends is stopped."""
    started: list[Background] = []

    def start(scorer: StreamScorer) -> Background:
        started.append(Background(scorer))
        return started[-1]

    yield start
    for running in started:
        running.scorer.stop()
        running.thread.join(15)


# -- the tests ------------------------------------------------------------------------------
def test_scores_every_message_as_the_model_does(bus: Bus) -> None:
    register_versions("clf", 1)
    sent = requests(30)
    sent.append(record(200))  # a bare record: its id is the broker's
    sent.append({"id": 7, "inputs": [record(201), record(202)]})  # two rows, an int id
    bus.send(sent)
    stats = fm.serving.score_stream(
        "models:/clf@champion", bus.url, bus.output, bus.dead, batch=8, max_messages=len(sent)
    )
    assert (stats.scored, stats.rows, stats.dead_lettered, stats.paused) == (32, 33, 0, 0)
    answers = bus.outputs()
    assert len(answers) == 32
    assert {a["model"] for a in answers} == {"clf"} and {a["version"] for a in answers} == {1}
    by_id = {a["id"]: a for a in answers}
    records = [r["inputs"] for r in sent[:30]]
    assert [by_id[f"r{i}"]["outputs"] for i in range(30)] == [
        [v] for v in expected("models:/clf/1", records)
    ]
    assert by_id["7"]["outputs"] == expected("models:/clf/1", [record(201), record(202)])
    named = {f"r{i}" for i in range(30)} | {"7"}
    bare = [a for a in answers if a["id"] not in named]
    assert len(bare) == 1 and bare[0]["outputs"] == expected("models:/clf/1", [record(200)])
    assert all(a["latency_ms"] > 0 and a["scored_at"] > 0 for a in answers)
    assert bus.unsettled() == 0
    logged = fm.serving.predictions("stream-clf")
    assert logged.num_rows == 33 and set(logged["arm"].to_pylist()) == {"stream"}


def test_invalid_messages_go_to_the_dead_letter_naming_the_field(bus: Bus) -> None:
    register_versions("clf", 1)
    bad = [
        b"{not json",
        {"id": "typed", "inputs": {**record(1), "f2": "high"}},
        {"id": "short", "inputs": {k: v for k, v in record(2).items() if k != "f3"}},
        {"id": ["a"], "inputs": record(3)},
        b"[1, 2]",
    ]
    bus.send([*requests(5), *bad])
    if isinstance(bus, RedisBus):
        bus.r.xadd(bus.name, {"other": b"{}"})
    total = 5 + len(bad) + isinstance(bus, RedisBus)
    stats = fm.serving.score_stream(
        "models:/clf@champion", bus.url, bus.output, bus.dead, max_messages=total
    )
    assert (stats.scored, stats.dead_lettered) == (5, total - 5)
    letters = bus.dead_letters()
    fields = [letter["field"] for letter in letters]
    assert fields[:5] == ["body", "f2", "f3", "id", "inputs"]
    assert "'f2' must be a number" in letters[1]["error"]
    assert "'f3' is missing" in letters[2]["error"]
    assert letters[0]["payload"] == "{not json" and letters[0]["reason"] == "invalid"
    assert orjson.loads(letters[1]["payload"])["id"] == "typed"
    if isinstance(bus, RedisBus):
        assert fields[5] == "data" and "no 'data' field" in letters[5]["error"]
    assert len(bus.outputs()) == 5 and bus.unsettled() == 0


def test_a_failing_model_is_retried_then_dead_lettered(bus: Bus) -> None:
    register_versions("clf", 1)
    bus.send([*requests(6), poison(), *requests(3, 6)])
    stats = fm.serving.score_stream(
        "models:/clf@champion",
        bus.url,
        bus.output,
        bus.dead,
        max_deliveries=3,
        retry_delay=0.2,
        visibility_seconds=1.0,
        max_messages=10,
    )
    # The batch failed as a whole; scored one by one, only the poison failed.
    assert (stats.scored, stats.retried, stats.redelivered, stats.dead_lettered) == (9, 2, 2, 1)
    assert sorted(a["id"] for a in bus.outputs()) == sorted(f"r{i}" for i in range(9))
    [letter] = bus.dead_letters()
    assert (letter["reason"], letter["deliveries"]) == ("model", 3)
    assert "failed 3 times" in letter["error"] and "NaN" in letter["error"]
    assert orjson.loads(letter["payload"])["id"] == "poison"
    assert bus.unsettled() == 0


def test_messages_of_a_consumer_that_died_are_scored_by_another(bus: Bus) -> None:
    register_versions("clf", 1)
    bus.send(requests(20))

    async def read_and_die() -> int:
        crashed = await connect(bus.url, options(bus, consumer="crashed", visibility_seconds=1))
        held = await crashed.fetch(6, 1.0)
        await crashed.close()  # no acknowledgement: as if the process had died
        return len(held)

    assert asyncio.run(read_and_die()) == 6
    assert bus.unsettled() == 6
    stats = fm.serving.score_stream(
        "models:/clf@champion",
        bus.url,
        bus.output,
        bus.dead,
        consumer="survivor",
        visibility_seconds=1.0,
        max_messages=20,
    )
    assert (stats.scored, stats.redelivered) == (20, 6)
    assert sorted(a["id"] for a in bus.outputs()) == sorted(f"r{i}" for i in range(20))
    assert bus.unsettled() == 0


def test_a_full_output_pauses_reading_and_nothing_is_lost(
    bus: Bus, background: Callable[[StreamScorer], Background]
) -> None:
    register_versions("clf", 1)
    bound, batch, total = 10, 4, 60
    if isinstance(bus, NatsBus):
        bus.bound_output(bound)
    bus.send(requests(total))
    scorer = StreamScorer(
        "models:/clf@champion",
        bus.url,
        options(bus, batch=batch, output_bound=bound),
        max_messages=total,
        refresh_seconds=0,
        log_predictions=False,
    )
    running = background(scorer)
    received: list[dict[str, Any]] = []
    longest = 0
    deadline = time.monotonic() + 40
    while len(received) < total and time.monotonic() < deadline:
        time.sleep(0.1)  # a downstream reader slower than the scorer
        longest = max(longest, bus.output_length())
        received += bus.drain(5)
    running.join()
    assert sorted(a["id"] for a in received) == sorted(f"r{i}" for i in range(total))
    assert scorer.stats.paused >= 1 and scorer.stats.paused_seconds > 0
    assert longest <= bound + batch
    assert bus.unsettled() == 0


@pytest.mark.parametrize("bus", ["memory", "redis"], indirect=True)
def test_the_scorer_follows_the_alias_between_batches(
    bus: Bus, background: Callable[[StreamScorer], Background]
) -> None:
    register_versions("clf", 2)
    scorer = StreamScorer(
        "models:/clf@champion",
        bus.url,
        options(bus, batch=8),
        refresh_seconds=0.2,
        max_messages=20,
    )
    running = background(scorer)
    bus.send(requests(10))
    wait_for(lambda: len(bus.outputs()) == 10)
    fm.set_alias("clf", "champion", 2)
    wait_for(lambda: scorer.stats.swaps == 1)
    bus.send(requests(10, 10))
    running.join()
    answers = {a["id"]: a for a in bus.outputs()}
    assert {answers[f"r{i}"]["version"] for i in range(10)} == {1}
    assert {answers[f"r{i}"]["version"] for i in range(10, 20)} == {2}
    later = [record(i) for i in range(10, 20)]
    assert [answers[f"r{i}"]["outputs"][0] for i in range(10, 20)] == expected(
        "models:/clf/2", later
    )
    assert scorer.stats.model == "clf/2"


def test_stop_finishes_the_batch_in_hand(bus: Bus, monkeypatch: pytest.MonkeyPatch) -> None:
    register_versions("clf", 1)
    bus.send(requests(50))
    scorer = StreamScorer(
        "models:/clf@champion", bus.url, options(bus, batch=8), log_predictions=False
    )
    predict = LoadedModel.predict

    def stop_while_scoring(self: LoadedModel, parts: Any) -> list[list[Any]]:
        if len(parts) > 1:  # not the warm-up row
            scorer.stop()
            time.sleep(0.2)
        return predict(self, parts)

    monkeypatch.setattr(LoadedModel, "predict", stop_while_scoring)
    stats = asyncio.run(asyncio.wait_for(scorer.run(), 20))
    assert stats.scored == 8 and len(bus.outputs()) == 8
    assert bus.unsettled() == 0
    monkeypatch.setattr(LoadedModel, "predict", predict)
    rest = fm.serving.score_stream(
        "models:/clf@champion", bus.url, bus.output, bus.dead, max_messages=42
    )
    assert rest.scored == 42
    assert sorted(a["id"] for a in bus.outputs()) == sorted(f"r{i}" for i in range(50))


# -- the command, as a process ---------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(bus: Bus, *extra: str) -> subprocess.Popen[str]:
    command = [
        FORGEML, "score-stream", "--model", "models:/clf@champion", "--source", bus.url,
        "--output", bus.output, "--dead-letter", bus.dead, "--batch", "8", "--visibility", "1",
        "--no-prediction-log", *extra,
    ]  # fmt: skip
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ)
    )


def test_cli_scores_and_stops_on_sigterm_after_its_batch(real_bus: Bus) -> None:
    register_versions("clf", 1)
    total = 3000
    real_bus.send(requests(total))
    port = _free_port()
    process = _start(real_bus, "--metrics-port", str(port), "--json")
    try:
        wait_for(lambda: len(real_bus.outputs()) > 0 or process.poll() is not None, 60)
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert 'forgeml_stream_scored_total{scorer="stream-clf"}' in metrics
    stats = orjson.loads(out)
    answers = real_bus.outputs()
    assert 0 < stats["scored"] == len(answers) < total  # stopped early, every batch settled
    assert real_bus.unsettled() == 0
    assert [a["outputs"][0] for a in answers] == expected(
        "models:/clf/1", [record(int(a["id"][1:])) for a in answers]
    )


# NATS redelivery to another consumer is proven in-process above; one process start is enough.
@pytest.mark.parametrize("real_bus", ["redis"], indirect=True)
def test_a_killed_consumer_loses_nothing(real_bus: Bus) -> None:
    register_versions("clf", 1)
    total = 3000
    real_bus.send(requests(total))
    process = _start(real_bus)
    try:
        wait_for(lambda: len(real_bus.outputs()) > 0 or process.poll() is not None, 60)
    finally:
        process.kill()  # SIGKILL: no chance to settle anything
        process.communicate()
    assert process.returncode == -signal.SIGKILL
    fm.serving.score_stream(
        "models:/clf@champion",
        real_bus.url,
        real_bus.output,
        real_bus.dead,
        consumer="survivor",
        visibility_seconds=1.0,
        idle_exit=2.0,
        log_predictions=False,
    )
    ids = [a["id"] for a in real_bus.outputs()]
    assert set(ids) == {f"r{i}" for i in range(total)}  # some maybe twice: at least once
    assert real_bus.unsettled() == 0
