"""Stream scoring benchmark: messages/s end to end through Redis Streams and NATS JetStream.

    .venv/bin/python benchmarks/streaming.py            # the full benchmark (about 3 min)
    .venv/bin/python benchmarks/streaming.py --quick    # a smoke test; writes no results

The model of ``benchmarks/serving.py``: scikit-learn's
GradientBoostingClassifier(n_estimators=100) on a seeded synthetic table of 30 float
features, registered in a scratch forgeml home. One scorer (``StreamScorer``, batch 64,
prediction log on, as ``forgeml score-stream`` runs by default, then off) consumes while
this process produces: each run sends ``--messages`` one-record JSON requests as fast as the
broker takes them (pipelined XADD; JetStream publish_async) and the clock stops when the
last answer is in the output stream. Before the clock starts the scorer has scored a
warm-up batch, so model loading is not counted. Every answer is checked against the
model's own prediction. The in-process queue (``memory://``) and the model alone
(``predict`` on 64-row frames in a loop) are measured too, as the ceiling the brokers
are compared with. Redis and NATS must run locally (127.0.0.1:6379, 127.0.0.1:4222).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "benchmarks" / "results"
REDIS_URL = "redis://127.0.0.1:6379/0"
NATS_URL = "nats://127.0.0.1:4222"

MODEL_NAME = "bench"
BATCH = 64
WARMUP_MESSAGES = 256
BROKERS = ("redis", "nats", "memory")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def prepare() -> tuple[list[bytes], list[int], Any]:
    """Train and register the model; the request bodies and the answers they must get."""
    import orjson
    from sklearn.ensemble import GradientBoostingClassifier

    import forgeml as fm
    from serving import SEED, training_table

    train, train_labels, held = training_table()
    model = GradientBoostingClassifier(n_estimators=100, random_state=SEED)
    model.fit(train, train_labels)
    fm.log_model(model, MODEL_NAME, example=train.iloc[:5], run_id=None)
    fm.set_alias(MODEL_NAME, "champion", 1)
    bodies = [orjson.dumps(row) for row in held.to_dict(orient="records")]
    return bodies, [int(v) for v in model.predict(held)], (model, held)


class Broker:
    """The producer's and the downstream reader's side of one broker."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        tag = uuid.uuid4().hex[:10]
        self.output = f"bench-out-{tag}" if kind != "nats" else f"bench.out.{tag}"
        self.loop = asyncio.new_event_loop()
        if kind == "redis":
            import redis

            self.name = f"bench-req-{tag}"
            self.url = f"{REDIS_URL}?stream={self.name}"
            self.r = redis.Redis.from_url(REDIS_URL)
        elif kind == "nats":
            import nats

            self.name = f"bench.req.{tag}"
            self.url = f"{NATS_URL}?subject={self.name}"
            self.nc = self.loop.run_until_complete(nats.connect(NATS_URL))
            self.js = self.nc.jetstream()
            self.loop.run_until_complete(
                self.js.add_stream(name=_stream(self.name), subjects=[self.name])
            )
        else:
            from forgeml.serving.stream_memory import MemoryStreams

            self.name = f"bench-req-{tag}"
            self.url = f"memory://{self.name}"
            self.streams = MemoryStreams.default()

    def send(self, bodies: list[bytes]) -> None:
        if self.kind == "redis":
            for start in range(0, len(bodies), 1000):
                with self.r.pipeline(transaction=False) as pipe:
                    for body in bodies[start : start + 1000]:
                        pipe.xadd(self.name, {"data": body})
                    pipe.execute()
        elif self.kind == "nats":

            async def publish() -> None:
                for body in bodies:
                    await self.js.publish_async(self.name, body)
                await self.js.publish_async_completed()

            self.loop.run_until_complete(publish())
        else:
            for body in bodies:
                self.streams.put(self.name, body)

    def answered(self) -> int:
        if self.kind == "redis":
            return int(self.r.xlen(self.output))
        if self.kind == "nats":
            from nats.js.errors import NotFoundError

            try:
                info = self.loop.run_until_complete(self.js.stream_info(_stream(self.output)))
            except NotFoundError:  # the scorer has not created it yet
                return 0
            return int(info.state.messages)
        return self.streams.length(self.output)

    def answers(self) -> list[dict[str, Any]]:
        import orjson

        if self.kind == "redis":
            return [orjson.loads(f[b"data"]) for _, f in self.r.xrange(self.output)]
        if self.kind == "nats":
            return self.loop.run_until_complete(self._nats_answers())
        return [orjson.loads(b) for b in self.streams.take(self.output)]

    async def _nats_answers(self) -> list[dict[str, Any]]:
        import orjson
        from nats.js.api import AckPolicy, ConsumerConfig

        total = (await self.js.stream_info(_stream(self.output))).state.messages
        sub = await self.js.pull_subscribe(
            self.output,
            stream=_stream(self.output),
            config=ConsumerConfig(ack_policy=AckPolicy.NONE),
        )
        found: list[dict[str, Any]] = []
        while len(found) < total:
            found += [orjson.loads(m.data) for m in await sub.fetch(1000, timeout=5)]
        await sub.unsubscribe()
        return found

    def close(self) -> None:
        if self.kind == "redis":
            self.r.delete(self.name, self.output, self.output + ".dead")
            self.r.close()
        elif self.kind == "nats":

            async def clean() -> None:
                for subject in (self.name, self.output, self.output + ".dead"):
                    await self.js.delete_stream(_stream(subject))
                await self.nc.close()

            self.loop.run_until_complete(clean())
        else:
            for name in (self.name, self.output, self.output + ".dead"):
                self.streams.delete(name)
        self.loop.close()


def _stream(subject: str) -> str:
    from forgeml.serving.stream_nats import stream_name

    return stream_name(subject)


def wait_until(condition: Any, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out waiting for the answers")
        time.sleep(0.005)


def measure(
    kind: str, log_predictions: bool, bodies: list[bytes], expected: list[int], messages: int
) -> dict[str, Any]:
    """One scorer, warmed up; ``messages`` sent and answered; messages/s end to end."""
    from forgeml.serving.stream import StreamScorer
    from forgeml.serving.stream_broker import BrokerOptions

    broker = Broker(kind)
    scorer = StreamScorer(
        f"models:/{MODEL_NAME}@champion",
        broker.url,
        BrokerOptions(output=broker.output, dead_letter=broker.output + ".dead", batch=BATCH),
        refresh_seconds=0,
        log_predictions=log_predictions,
    )
    thread = threading.Thread(target=lambda: asyncio.run(scorer.run()), daemon=True)
    thread.start()
    try:
        broker.send(bodies[:WARMUP_MESSAGES])
        wait_until(lambda: broker.answered() >= WARMUP_MESSAGES, 120)
        sent = [bodies[i % len(bodies)] for i in range(messages)]
        started = time.perf_counter()
        broker.send(sent)
        produced = time.perf_counter() - started
        wait_until(lambda: broker.answered() >= WARMUP_MESSAGES + messages, 300)
        seconds = time.perf_counter() - started
        scorer.stop()
        thread.join(30)
        answers = broker.answers()[WARMUP_MESSAGES:]
        wrong = sum(a["outputs"] != [expected[i % len(expected)]] for i, a in enumerate(answers))
        return {
            "messages": messages,
            "seconds": seconds,
            "messages_per_s": messages / seconds,
            "producer_seconds": produced,
            "batches": scorer.stats.batches,
            "wrong_answers": wrong + (messages - len(answers)),
        }
    finally:
        scorer.stop()
        thread.join(30)
        broker.close()


def model_alone(model: Any, held: Any, seconds: float) -> float:
    """Rows/s of ``predict`` on 64-row frames: what no transport can beat."""
    frames = [held.iloc[i : i + BATCH] for i in range(0, len(held) - BATCH, BATCH)]
    rows, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for frame in frames:
            model.predict(frame)
            rows += len(frame)
    return rows / (time.perf_counter() - started)


def report(document: dict[str, Any]) -> str:
    lines = [
        "# Stream scoring benchmark results",
        "",
        f"{document['date']}, {document['machine']['cpu_count']} CPUs, Python "
        f"{document['machine']['python']}, commit {document['commit'][:10]}; "
        f"{document['messages']:,} messages per run, median of {document['runs']} runs"
        + (" (--quick)." if document["quick"] else "."),
        "",
        "GradientBoostingClassifier(n_estimators=100), 30 float features; one scorer, "
        f"batch {BATCH}, prediction log on unless said; one JSON record per message; the "
        "clock runs from the first message sent to the last answer stored.",
        "",
        "| Broker | Messages/s end to end (median) | All runs | Wrong or missing answers |",
        "|---|---|---|---|",
    ]
    for kind, entry in document["results"].items():
        rates = [r["messages_per_s"] for r in entry["runs"]]
        wrong = sum(r["wrong_answers"] for r in entry["runs"])
        every = ", ".join(f"{r:,.0f}" for r in rates)
        lines.append(f"| {kind} | {statistics.median(rates):,.0f} | {every} | {wrong} |")
    lines.append(
        f"| model alone (predict on {BATCH}-row frames) | {document['model_alone_rows_per_s']:,.0f}"
        " rows/s | | |"
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="short runs; writes no results")
    parser.add_argument("--messages", type=int, help="messages per run (default 20000)")
    parser.add_argument("--runs", type=int, help="runs per broker (default 3)")
    args = parser.parse_args(argv)
    messages = args.messages or (2_000 if args.quick else 20_000)
    runs = args.runs or (1 if args.quick else 3)
    workdir = Path(tempfile.mkdtemp(prefix="forgeml-stream-bench-"))
    for key in [k for k in os.environ if k.startswith("FORGEML_")]:
        del os.environ[key]
    os.environ.update({"FORGEML_HOME": str(workdir / "forgeml"), "XDG_CONFIG_HOME": str(workdir)})
    started = time.perf_counter()
    log("training and registering the model")
    bodies, expected, (model, held) = prepare()
    results: dict[str, Any] = {}
    for kind in BROKERS:
        for logged in (True, False):
            label = kind if logged else f"{kind}, no prediction log"
            results[label] = {"runs": []}
            for run in range(runs):
                figures = measure(kind, logged, bodies, expected, messages)
                log(f"  {label} run {run + 1}: {figures['messages_per_s']:,.0f} messages/s")
                results[label]["runs"].append(figures)
    alone = model_alone(model, held, 3.0 if args.quick else 10.0)
    log(f"  model alone: {alone:,.0f} rows/s")
    import subprocess

    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()
    document = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": {
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "commit": commit or "unknown",
        "messages": messages,
        "runs": runs,
        "batch": BATCH,
        "results": results,
        "model_alone_rows_per_s": alone,
        "total_seconds": time.perf_counter() - started,
    }
    text = report(document)
    print(text)
    failed = any(r["wrong_answers"] for e in results.values() for r in e["runs"])
    if args.quick or args.messages or args.runs:
        print("(--quick or custom sizes: results/ not written)")
    elif not failed:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        (RESULTS_DIR / "streaming.json").write_text(json.dumps(document, indent=2) + "\n")
        (RESULTS_DIR / "streaming.md").write_text(text)
        log("wrote benchmarks/results/streaming.json and streaming.md")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
