"""The model server in-process: policies, validation, resilience, logging, swaps."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import forgeml as fm
from forgeml import backend
from forgeml.serving.server import ModelServer, Source
from forgeml.serving.spec import DeploymentSpec
from serving_support import FEATURES, record, register_versions, running, table

PREDICT = "/v1/deployments/{}/predict"


def spec(**fields: Any) -> DeploymentSpec:
    return DeploymentSpec.from_dict({"name": "clf", "model": "models:/clf@champion", **fields})


def test_single_deployment_answers_like_the_model_and_names_its_version(home: Path) -> None:
    versions = register_versions()
    frame, _ = table(20, seed=3)
    expected = fm.load_model("models:/clf/1").predict(frame).tolist()

    async def main() -> None:
        async with running(spec()) as (client, _server):
            reply = await client.post(
                PREDICT.format("clf"),
                json={"inputs": frame.to_dict("records"), "id": "req-1"},
            )
            assert reply.status_code == 200, reply.text
            body = reply.json()
            assert body["outputs"] == expected
            assert (body["model"], body["version"], body["arm"]) == ("clf", 1, "champion")
            assert body["id"] == "req-1" and body["fallback"] is False
            columns = await client.post(
                PREDICT.format("clf"), json={"inputs": frame.to_dict("list")}
            )
            assert columns.json()["outputs"] == expected
            one = await client.post(PREDICT.format("clf"), json={"inputs": record(3)})
            assert one.json()["outputs"] == expected[:1]
            assert reply.headers["x-request-id"] == "req-1"
            assert reply.headers["content-type"] == "application/json"
            metrics = await client.get("/metrics")
            assert metrics.headers["content-type"].startswith("text/plain")

    assert versions[0].version == 1
    asyncio.run(main())


def test_bad_requests_get_4xx_naming_the_problem(home: Path) -> None:
    register_versions(count=1)

    async def main() -> None:
        async with running(spec()) as (client, _server):
            missing = await client.post(PREDICT.format("clf"), json={"inputs": {"f0": 1.0}})
            assert missing.status_code == 422
            assert missing.json() == {"error": "field 'f1' is missing", "field": "f1"}
            wrong = await client.post(
                PREDICT.format("clf"), json={"inputs": {**record(), "f3": "high"}}
            )
            assert wrong.status_code == 422 and wrong.json()["field"] == "f3"
            assert "must be a number" in wrong.json()["error"]
            garbage = await client.post(PREDICT.format("clf"), content=b"{not json")
            assert garbage.status_code == 400 and "not valid JSON" in garbage.json()["error"]
            shape = await client.post(PREDICT.format("clf"), json={"rows": []})
            assert shape.status_code == 422 and '"inputs"' in shape.json()["error"]
            nobody = await client.post(PREDICT.format("nope"), json={"inputs": record()})
            assert nobody.status_code == 404 and "serving: clf" in nobody.json()["error"]
            method = await client.get(PREDICT.format("clf"))
            assert method.status_code == 405
            big = await client.post(PREDICT.format("clf"), content=b" " * (65 << 20))
            assert big.status_code == 413

    asyncio.run(main())


def test_canary_sends_about_its_weight_to_the_challenger(home: Path) -> None:
    register_versions()

    async def main() -> Counter[int]:
        seen: Counter[int] = Counter()
        async with running(spec(policy="canary", challenger="models:/clf/2", weight=30)) as (
            client,
            _server,
        ):
            for _ in range(400):
                reply = await client.post(PREDICT.format("clf"), json={"inputs": record()})
                seen[reply.json()["version"]] += 1
        return seen

    seen = asyncio.run(main())
    assert sum(seen.values()) == 400
    assert 0.2 < seen[2] / 400 < 0.4


def test_ab_is_sticky_by_key_and_reports_outcomes_per_arm(home: Path) -> None:
    register_versions()

    async def main() -> dict[str, Any]:
        async with running(
            spec(policy="ab", challenger="models:/clf/2", weight=50, sticky_key="user")
        ) as (client, _server):
            arms: dict[str, set[str]] = {}
            for i in range(60):
                user = f"user-{i % 20}"
                reply = await client.post(
                    PREDICT.format("clf"), json={"inputs": {**record(), "user": user}}
                )
                arms.setdefault(user, set()).add(reply.json()["arm"])
                outcome = 1.0 if reply.json()["arm"] == "challenger" and i % 2 else 0.0
                await client.post(
                    "/v1/deployments/clf/outcomes", json={"key": user, "value": outcome}
                )
            header = await client.post(
                PREDICT.format("clf"), json={"inputs": record()}, headers={"x-forgeml-key": "k9"}
            )
            assert header.status_code == 200
            assert all(len(seen) == 1 for seen in arms.values())  # sticky
            assert {a for seen in arms.values() for a in seen} == {"champion", "challenger"}
            bad = await client.post("/v1/deployments/clf/outcomes", json={"value": "yes"})
            assert bad.status_code == 422
            return (await client.get("/v1/deployments/clf/ab")).json()

    summary = asyncio.run(main())
    arms = summary["arms"]
    assert arms["champion"]["outcomes"] + arms["challenger"]["outcomes"] == 60
    assert arms["champion"]["mean"] == 0.0 and arms["challenger"]["mean"] > 0
    assert summary["test"]["method"] == "welch_t"
    assert summary["test"]["difference"] == pytest.approx(arms["challenger"]["mean"])
    assert 0 <= summary["test"]["p_value"] < 0.05


def test_shadow_returns_the_champion_and_logs_both_answers(home: Path) -> None:
    register_versions()

    async def main() -> None:
        async with running(spec(policy="shadow", challenger="models:/clf/2")) as (client, server):
            for seed in range(10):
                reply = await client.post(PREDICT.format("clf"), json={"inputs": record(seed)})
                assert reply.json()["version"] == 1 and reply.json()["arm"] == "champion"
            while server._background:
                await asyncio.sleep(0.01)
            shadow = {
                labels["outcome"]: value
                for labels, value in server.metrics.samples("forgeml_serving_shadow_requests_total")
            }
            assert sum(shadow.values()) == 10

    asyncio.run(main())
    logged = fm.serving.predictions("clf").to_pylist()
    assert len(logged) == 20
    by_request: dict[str, dict[bool, Any]] = {}
    for row in logged:
        by_request.setdefault(row["request_id"], {})[row["shadow"]] = row
    assert len(by_request) == 10
    for pair in by_request.values():
        assert pair[False]["version"] == 1 and pair[True]["version"] == 2
        assert pair[False]["inputs"] == pair[True]["inputs"]


def test_prediction_log_holds_every_row_with_inputs_output_and_latency(home: Path) -> None:
    register_versions(count=1)
    frame, _ = table(7, seed=5)
    started = time.time()

    async def main() -> None:
        async with running(spec()) as (client, _server):
            await client.post(
                PREDICT.format("clf"), json={"inputs": frame.to_dict("records"), "id": "many"}
            )
            await client.post(PREDICT.format("clf"), json={"inputs": {"f0": 1}})  # 422, logged

    asyncio.run(main())
    import orjson

    table_ = fm.serving.predictions("clf", since=started)
    rows = table_.to_pylist()
    assert [r["row"] for r in rows if r["request_id"] == "many"] == list(range(7))
    first = next(r for r in rows if r["request_id"] == "many")
    assert orjson.loads(first["inputs"]) == pytest.approx(frame.iloc[0].to_dict())
    assert orjson.loads(first["output"]) in (0, 1)
    assert first["latency_ms"] > 0 and first["status"] == 200 and not first["fallback"]
    assert first["model"] == "clf" and first["version"] == 1
    refused = [r for r in rows if r["status"] == 422]
    assert len(refused) == 1 and refused[0]["output"] is None
    files = backend.deployments().log_files("clf")
    assert sum(f.rows for f in files) == 8 and files[0].models == ["clf/1"]
    assert fm.serving.predictions("clf", since=time.time() + 60).num_rows == 0


def test_logged_inputs_are_what_each_request_sent(home: Path) -> None:
    """Rows scored together in one micro-batch are logged from the batch's matrix:
    each request keeps its own values, exactly; a request with a field the model does
    not take keeps that field in the log too. A null the model cannot take fails that
    request alone, not the others that shared its model call."""
    register_versions(count=1)
    frame, _ = table(40, seed=9)
    sent = frame.to_dict("records")
    sent[3]["f2"] = None
    started = time.time()

    async def main() -> None:
        async with running(spec(max_wait_ms=20)) as (client, _server):
            calls = [
                client.post(PREDICT.format("clf"), json={"inputs": row, "id": f"one-{i}"})
                for i, row in enumerate(sent[:30])
            ]
            calls.append(
                client.post(PREDICT.format("clf"), json={"inputs": sent[30:], "id": "many"})
            )
            extra = {**sent[0], "note": "from the web form"}
            calls.append(client.post(PREDICT.format("clf"), json={"inputs": extra, "id": "extra"}))
            replies = await asyncio.gather(*calls)
            failed = [i for i, reply in enumerate(replies) if reply.status_code != 200]
            assert failed == [3], [replies[i].text for i in failed]
            assert "failed" in replies[3].json()["error"]

    asyncio.run(main())
    import orjson

    logged = {
        (r["request_id"], r["row"]): orjson.loads(r["inputs"])
        for r in fm.serving.predictions("clf", since=started).to_pylist()
    }
    assert len(logged) == 41
    for i, row in enumerate(sent[:30]):
        assert logged[(f"one-{i}", 0)] == row
    for i, row in enumerate(sent[30:]):
        assert logged[("many", i)] == row
    assert logged[("one-3", 0)]["f2"] is None
    statuses = {r["request_id"]: r["status"] for r in fm.serving.predictions("clf").to_pylist()}
    assert statuses["one-3"] == 503 and statuses["one-4"] == 200
    assert logged[("extra", 0)] == {**sent[0], "note": "from the web form"}


def test_the_log_writes_every_kind_of_request_in_order(home: Path) -> None:
    """Batch-matrix rows, JSON rows, tensors, several deployments, failed requests and
    features, buffered together, come back row for row as each request had them."""
    import numpy as np
    import orjson

    from forgeml.serving.inputs import Rows
    from forgeml.serving.prediction_log import LoggedRequest, PredictionLog

    names = ("a", "b")
    matrix = np.array([[1.5, 2.0], [3.0, np.nan], [5.0, 6.0]])

    def block_rows(start: int, count: int) -> Rows:
        columns = {n: matrix[start : start + count, i].tolist() for i, n in enumerate(names)}
        rows = Rows(count, columns=columns)
        rows.block = (names, matrix, start)
        return rows

    requests = [
        ("r1", "clf", block_rows(0, 1), None, [1]),
        ("r2", "clf", Rows(2, columns={"a": [7.0, 8.0], "c": ["x", "y"]}), None, [0, 1]),
        ("r3", "clf", block_rows(1, 2), {"f": [10, 11]}, [[0.1, 0.9], [0.8, 0.2]]),
        ("r4", "other", Rows(1, tensor=np.array([[1, 2, 3]])), None, None),
        ("r5", "clf", Rows(1, columns={"a": ["oops"]}), {"f": [12]}, None),
    ]
    log = PredictionLog(flush_seconds=3600)
    for request_id, deployment, rows, features, outputs in requests:
        log.append(
            LoggedRequest(
                request_id, 100.0, deployment, "champion", "clf", 1, rows, features,
                outputs, 1.0, False, False, 200 if outputs is not None else 422,
            )
        )  # fmt: skip
    log.close()
    clf = fm.serving.predictions("clf").to_pylist()
    got = [
        (r["request_id"], r["row"], orjson.loads(r["inputs"]), r["output"], r["features"])
        for r in clf
    ]
    assert got == [
        ("r1", 0, {"a": 1.5, "b": 2.0}, "1", None),
        ("r2", 0, {"a": 7.0, "c": "x"}, "0", None),
        ("r2", 1, {"a": 8.0, "c": "y"}, "1", None),
        ("r3", 0, {"a": 3.0, "b": None}, "[0.1,0.9]", '{"f":10}'),
        ("r3", 1, {"a": 5.0, "b": 6.0}, "[0.8,0.2]", '{"f":11}'),
        ("r5", 0, {"a": "oops"}, None, '{"f":12}'),
    ]
    other = fm.serving.predictions("other").to_pylist()
    assert [(r["inputs"], r["output"], r["status"]) for r in other] == [("[1,2,3]", None, 422)]
    assert log.written_rows == 7 and log.buffered_rows == 0 and log.dropped_rows == 0


def _logged(request_id: str, rows: int, deployment: str = "clf") -> Any:
    from forgeml.serving.inputs import Rows
    from forgeml.serving.prediction_log import LoggedRequest

    columns = {"a": [float(i) for i in range(rows)]}
    return LoggedRequest(
        request_id, time.time(), deployment, "champion", "clf", 1, Rows(rows, columns=columns),
        None, [0] * rows, 1.0, False, False, 200,
    )  # fmt: skip


def test_a_full_log_buffer_drops_and_counts_never_blocks(home: Path) -> None:
    from forgeml.serving.prediction_log import PredictionLog

    dropped: list[int] = []
    log = PredictionLog(max_rows=3, flush_seconds=3600, on_dropped=dropped.append)
    assert log.append(_logged("a", 2))
    assert not log.append(_logged("b", 2))  # 4 rows would pass the bound of 3
    assert log.append(_logged("c", 1))
    log.close()
    assert dropped == [2] and log.dropped_rows == 2 and log.written_rows == 3
    ids = [r["request_id"] for r in fm.serving.predictions("clf").to_pylist()]
    assert ids == ["a", "a", "c"]


def test_the_log_counts_what_the_store_refused_and_indexes_late_when_the_database_was_down(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from forgeml.serving.prediction_log import PredictionLog

    dropped: list[int] = []
    log = PredictionLog(flush_seconds=3600, on_dropped=dropped.append)
    store = backend.artifact_store()
    real_put = store.put_bytes

    def full_disk(data: bytes) -> Any:
        raise OSError("No space left on device")

    monkeypatch.setattr(store, "put_bytes", full_disk)
    log.append(_logged("lost", 2))
    log.flush()
    assert dropped == [2] and log.dropped_rows == 2 and log.written_rows == 0

    monkeypatch.setattr(store, "put_bytes", real_put)
    repository = backend.deployments()
    real_add = repository.add_log_file

    def database_down(*args: Any) -> None:
        raise ConnectionError("database is down")

    monkeypatch.setattr(repository, "add_log_file", database_down)
    log.append(_logged("kept", 1))
    log.flush()  # written to the store, waiting to be indexed
    assert log.written_rows == 1 and fm.serving.predictions("clf").num_rows == 0

    monkeypatch.setattr(repository, "add_log_file", real_add)
    log.append(_logged("later", 1))
    log.close()
    ids = [r["request_id"] for r in fm.serving.predictions("clf").to_pylist()]
    assert sorted(ids) == ["kept", "later"] and dropped == [2]


def _break(server: ModelServer, role: str, *, sleep: float = 0.0, error: bool = True) -> None:
    handle = server.deployments["clf"].handles[role]
    real = handle.batcher.call

    def failing(payloads: Sequence[Any]) -> Sequence[Any]:
        if sleep:
            time.sleep(sleep)
        if error:
            raise RuntimeError("model exploded")
        return real(payloads)

    handle.batcher.call = failing


def test_breaker_opens_and_the_fallback_model_answers_marked_as_such(home: Path) -> None:
    register_versions()

    async def main() -> None:
        deployment = spec(fallback="models:/clf/2", breaker={"failures": 3, "open_seconds": 0.3})
        async with running(deployment) as (client, server):
            _break(server, "champion")
            replies = [
                (await client.post(PREDICT.format("clf"), json={"inputs": record()})).json()
                for _ in range(5)
            ]
            assert all(r["fallback"] and r["version"] == 2 for r in replies)
            assert "model clf/1 failed: model exploded" in replies[0]["fallback_reason"]
            assert replies[3]["fallback_reason"].startswith("circuit open")
            live = server.deployments["clf"]
            assert live.handles["champion"].breaker.state == "open"
            metrics = (await client.get("/metrics")).text
            assert 'forgeml_serving_breaker_state{arm="champion",deployment="clf"} 2.0' in metrics
            assert 'forgeml_serving_fallbacks_total{deployment="clf",reason="model"} 5.0' in metrics
            # the model recovers: after open_seconds the probes close the circuit again
            live.handles["champion"].batcher.call = live.handles["champion"].model.predict
            await asyncio.sleep(0.35)
            for _ in range(3):
                reply = await client.post(PREDICT.format("clf"), json={"inputs": record()})
                assert reply.json()["version"] == 1 and not reply.json()["fallback"]
            assert live.handles["champion"].breaker.state == "closed"
            states = [
                labels["state"]
                for labels, value in server.metrics.samples(
                    "forgeml_serving_breaker_transitions_total"
                )
                if value
            ]
            assert sorted(states) == ["closed", "half_open", "open"]

    asyncio.run(main())


def test_timeouts_fall_back_to_the_default_answer_or_say_504(home: Path) -> None:
    register_versions(count=1)

    async def main() -> None:
        async with running(spec(timeout_ms=50, default_answer=-1, breaker={"failures": 100})) as (
            client,
            server,
        ):
            _break(server, "champion", sleep=0.2, error=False)
            reply = await client.post(PREDICT.format("clf"), json={"inputs": record()})
            assert reply.status_code == 200
            body = reply.json()
            assert body["outputs"] == [-1] and body["fallback"] and body["arm"] == "default"
            assert body["fallback_reason"] == "timeout after 50 ms"
        async with running(spec(timeout_ms=50, breaker={"failures": 1})) as (client, server):
            _break(server, "champion", sleep=0.2, error=False)
            first = await client.post(PREDICT.format("clf"), json={"inputs": record()})
            assert first.status_code == 504 and "timeout after 50 ms" in first.json()["error"]
            second = await client.post(PREDICT.format("clf"), json={"inputs": record()})
            assert second.status_code == 503 and "circuit open" in second.json()["error"]
            assert second.headers["retry-after"] == "10"

    asyncio.run(main())


def test_a_full_queue_sheds_with_503_and_retry_after(home: Path) -> None:
    register_versions(count=1)

    async def main() -> None:
        async with running(spec(max_queue=2, max_batch_size=1)) as (client, server):
            _break(server, "champion", sleep=0.3, error=False)
            replies = await asyncio.gather(
                *[client.post(PREDICT.format("clf"), json={"inputs": record()}) for _ in range(8)]
            )
            codes = Counter(r.status_code for r in replies)
            assert codes[200] >= 2 and codes[503] >= 1 and codes[200] + codes[503] == 8
            shed = next(r for r in replies if r.status_code == 503)
            assert shed.headers["retry-after"] == "1" and "overloaded" in shed.json()["error"]

    asyncio.run(main())


def test_a_burst_that_queues_past_the_timeout_is_shed_without_opening_the_breaker(
    home: Path,
) -> None:
    register_versions(count=1)

    async def main() -> None:
        deployment = spec(timeout_ms=150, max_batch_size=1, breaker={"failures": 2})
        async with running(deployment) as (client, server):
            _break(server, "champion", sleep=0.04, error=False)  # a healthy but busy model
            for _ in range(3):  # calls of a known cost
                assert (
                    await client.post(PREDICT.format("clf"), json={"inputs": record()})
                ).is_success
            replies = await asyncio.gather(
                *[client.post(PREDICT.format("clf"), json={"inputs": record()}) for _ in range(40)]
            )
            codes = Counter(r.status_code for r in replies)
            assert codes[200] >= 2 and codes[503] >= 20, codes
            assert set(codes) <= {200, 503, 504}, codes
            shed = next(r for r in replies if r.status_code == 503)
            assert "the 150 ms a request may take" in shed.json()["error"]
            assert server.deployments["clf"].handles["champion"].breaker.state == "closed"
            reply = await client.post(PREDICT.format("clf"), json={"inputs": record()})
            assert reply.status_code == 200 and not reply.json()["fallback"]

    asyncio.run(main())


def test_the_log_keeps_the_routed_arm_when_a_fallback_answers(home: Path) -> None:
    register_versions()

    async def main() -> None:
        deployment = spec(
            policy="canary", challenger="models:/clf/2", weight=100, default_answer=0,
        )  # fmt: skip
        async with running(deployment) as (client, server):
            _break(server, "challenger")
            reply = (await client.post(PREDICT.format("clf"), json={"inputs": record()})).json()
            assert reply["fallback"] and reply["arm"] == "default"
            assert server.prediction_log is not None
            await asyncio.to_thread(server.prediction_log.flush)

    asyncio.run(main())
    logged = fm.serving.predictions("clf").to_pylist()
    assert [(r["arm"], r["fallback"], r["model"]) for r in logged] == [("challenger", True, None)]


def test_v2_protocol_json_metadata_and_errors(home: Path) -> None:
    register_versions(count=1)
    frame, _ = table(3, seed=9)
    expected = fm.load_model("models:/clf/1").predict(frame).tolist()

    async def main() -> None:
        async with running(spec()) as (client, _server):
            assert (await client.get("/v2/health/ready")).status_code == 200
            meta = (await client.get("/v2/models/clf")).json()
            assert meta["versions"] == ["1"]
            assert [i["name"] for i in meta["inputs"]] == FEATURES
            request = {
                "id": "v2-1",
                "inputs": [
                    {"name": name, "datatype": "FP64", "shape": [3], "data": frame[name].tolist()}
                    for name in FEATURES
                ],
            }
            reply = await client.post("/v2/models/clf/infer", json=request)
            assert reply.status_code == 200, reply.text
            body = reply.json()
            assert body["id"] == "v2-1" and body["model_version"] == "1"
            assert body["outputs"][0]["data"] == expected
            assert body["outputs"][0]["shape"] == [3]
            versioned = await client.post("/v2/models/clf/versions/1/infer", json=request)
            assert versioned.status_code == 200
            wrong_version = await client.post("/v2/models/clf/versions/7/infer", json=request)
            assert wrong_version.status_code == 404
            short = {**request, "inputs": request["inputs"][:-1]}
            missing = await client.post("/v2/models/clf/infer", json=short)
            assert missing.status_code == 422 and missing.json()["error"] == "field 'f4' is missing"
            bad_shape = {
                "inputs": [{"name": "f0", "datatype": "FP64", "shape": [2], "data": [1.0]}]
            }
            shaped = await client.post("/v2/models/clf/infer", json=bad_shape)
            assert shaped.status_code == 422 and "shape says 2 values" in shaped.json()["error"]

    asyncio.run(main())


def test_stored_deployment_changes_and_alias_moves_swap_at_runtime(home: Path) -> None:
    register_versions(count=3)
    fm.serving.deploy("clf", "models:/clf@champion")

    async def main() -> None:
        async with running(stored=True) as (client, server):

            async def version() -> int:
                reply = await client.post(PREDICT.format("clf"), json={"inputs": record()})
                assert reply.status_code == 200
                return int(reply.json()["version"])

            assert await version() == 1
            fm.set_alias("clf", "champion", 2)
            await server.refresh()
            assert await version() == 2
            fm.serving.update("clf", policy="canary", challenger="models:/clf/3", weight=100)
            await server.refresh()
            assert await version() == 3
            described = (await client.get("/v1/deployments/clf")).json()
            assert described["revision"] == 2
            assert described["models"]["challenger"]["version"] == 3
            fm.serving.remove_deployment("clf")
            await server.refresh()
            gone = await client.post(PREDICT.format("clf"), json={"inputs": record()})
            assert gone.status_code == 404

    asyncio.run(main())
    changes = [entry["change"] for entry in fm.serving.history("clf")]
    assert changes == ["saved", "saved", "removed"]


def test_swap_under_concurrent_load_fails_no_request(home: Path) -> None:
    register_versions(count=3)
    fm.serving.deploy("clf", "models:/clf@champion")

    async def main() -> Counter[Any]:
        results: Counter[Any] = Counter()
        stop = asyncio.Event()
        async with running(stored=True) as (client, server):

            async def hammer() -> None:
                while not stop.is_set():
                    reply = await client.post(PREDICT.format("clf"), json={"inputs": record()})
                    results[reply.status_code] += 1
                    if reply.status_code == 200:
                        results[("version", reply.json()["version"])] += 1

            workers = [asyncio.create_task(hammer()) for _ in range(16)]
            for step in range(6):
                await asyncio.sleep(0.15)
                if step % 2 == 0:
                    fm.set_alias("clf", "champion", 2 if step % 4 == 0 else 1)
                else:
                    fm.serving.update(
                        "clf", policy="canary", challenger="models:/clf/3", weight=step * 15
                    )
                await server.refresh()
            await asyncio.sleep(0.15)
            stop.set()
            await asyncio.gather(*workers)
        return results

    results = asyncio.run(main())
    statuses = {k: v for k, v in results.items() if isinstance(k, int)}
    assert set(statuses) == {200}, statuses
    assert statuses[200] > 100
    assert {k[1] for k in results if isinstance(k, tuple)} == {1, 2, 3}


def test_server_starts_from_its_snapshot_when_the_database_is_down(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    register_versions(count=1)
    fm.serving.deploy("clf", "models:/clf@champion")

    async def first() -> None:
        async with running(stored=True) as (client, _server):
            assert (await client.post(PREDICT.format("clf"), json={"inputs": record()})).is_success

    asyncio.run(first())
    monkeypatch.setenv("FORGEML_DB_URL", "postgresql://nobody@127.0.0.1:9/nothing")
    backend.reset()

    async def second() -> None:
        server = ModelServer(Source(stored=True), refresh_seconds=0.05, log_predictions=False)
        await server.start()
        try:
            import httpx

            from forgeml.serving.app import ServingApp

            transport = httpx.ASGITransport(app=ServingApp(server, access_logs=False))
            async with httpx.AsyncClient(transport=transport, base_url="http://s") as client:
                reply = await client.post(PREDICT.format("clf"), json={"inputs": record()})
                assert reply.status_code == 200 and reply.json()["version"] == 1
                await asyncio.sleep(0.2)  # refreshes fail; serving goes on
                ready = (await client.get("/readyz")).json()
                assert ready["ready"] and ready["control_plane"] == "unreachable"
                again = await client.post(PREDICT.format("clf"), json={"inputs": record()})
                assert again.status_code == 200
        finally:
            await server.stop()

    asyncio.run(second())


def test_arrow_requests_score_many_rows(home: Path) -> None:
    import pyarrow as pa

    register_versions(count=1)
    frame, _ = table(50, seed=11)
    expected = fm.load_model("models:/clf/1").predict(frame).tolist()
    sink = pa.BufferOutputStream()
    arrow = pa.Table.from_pandas(frame, preserve_index=False)
    with pa.ipc.new_stream(sink, arrow.schema) as writer:
        writer.write_table(arrow)

    async def main() -> None:
        async with running(spec()) as (client, _server):
            reply = await client.post(
                PREDICT.format("clf"),
                content=sink.getvalue().to_pybytes(),
                headers={"content-type": "application/vnd.apache.arrow.stream"},
            )
            assert reply.status_code == 200, reply.text
            assert reply.json()["outputs"] == expected

    asyncio.run(main())


def test_features_from_the_online_store_join_the_request_fields(home: Path, tmp_path: Path) -> None:
    import datetime as dt

    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    history = pd.DataFrame(
        {
            "user_id": [1, 2, 1],
            "ts": pd.to_datetime(["2024-01-01", "2024-01-01", "2024-01-02"]).astype(
                "datetime64[us]"
            ),
            "score": [0.1, 0.9, 0.3],
        }
    )
    source = tmp_path / "stats.parquet"
    history.to_parquet(source)
    user = fm.Entity("user", join_keys=["user_id"])
    view = fm.FeatureView("stats", entities=[user], source=str(source), timestamp_field="ts",
                          features=["score"])  # fmt: skip
    fm.features.apply([user, view])
    fm.features.materialize("stats", end=dt.datetime(2024, 2, 1))
    train = pd.DataFrame({"amount": [1.0, 5.0, 2.0, 8.0], "score": [0.1, 0.9, 0.2, 0.8]})
    model = LogisticRegression().fit(train, [0, 1, 0, 1])
    fm.log_model(model, "risk", example=train[:2], run_id=None)
    expected = model.predict_proba(pd.DataFrame({"amount": [3.0, 3.0], "score": [0.3, 0.9]}))

    async def main() -> None:
        deployment = DeploymentSpec.from_dict(
            {"name": "risk", "model": "models:/risk/1", "features": ["stats:score"],
             "method": "predict_proba"}
        )  # fmt: skip
        async with running(deployment) as (client, _server):
            reply = await client.post(
                PREDICT.format("risk"),
                json={"inputs": [{"user_id": 1, "amount": 3.0}, {"user_id": 2, "amount": 3.0}]},
            )
            assert reply.status_code == 200, reply.text
            outputs = reply.json()["outputs"]
            assert len(outputs) == 2
            assert [p for row in outputs for p in row] == pytest.approx(expected.ravel().tolist())
            unknown_key = await client.post(
                PREDICT.format("risk"), json={"inputs": [{"amount": 3.0}]}
            )
            assert unknown_key.status_code == 422
            assert "keyed by 'user_id'" in unknown_key.json()["error"]

    asyncio.run(main())
    logged = fm.serving.predictions("risk").to_pylist()
    import orjson

    assert orjson.loads(logged[0]["features"]) == {"score": 0.3}
