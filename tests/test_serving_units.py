"""The serving building blocks on their own: specs, request checking, breakers, batching."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pytest

from forgeml.errors import InvalidArgumentError
from forgeml.serving.batching import MicroBatcher, Overloaded
from forgeml.serving.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from forgeml.serving.deployment import sticky_bucket
from forgeml.serving.inputs import InputSchema, RequestError, rows_from_arrow, rows_from_json
from forgeml.serving.spec import BreakerSpec, DeploymentSpec

SCHEMA = {
    "type": "columns",
    "columns": [
        {"name": "distance", "type": "float64", "nullable": False},
        {"name": "hour", "type": "int64", "nullable": False},
        {"name": "carrier", "type": "category", "nullable": False},
        {"name": "temp", "type": "float64", "nullable": True},
    ],
}


# -- specs ------------------------------------------------------------------------------


def test_spec_round_trips_through_json_and_keeps_default_answer() -> None:
    spec = DeploymentSpec.from_dict(
        {
            "name": "delay",
            "model": "models:/delay@champion",
            "policy": "canary",
            "challenger": "models:/delay/4",
            "weight": 10,
            "default_answer": 0,
            "breaker": {"failures": 3},
            "features": ["weather:temp"],
        }
    )
    again = DeploymentSpec.from_dict(spec.to_dict())
    assert again == spec
    assert again.has_default_answer and again.default_answer == 0
    assert again.breaker.failures == 3
    assert spec.model_uris == {
        "champion": "models:/delay@champion",
        "challenger": "models:/delay/4",
    }
    plain = DeploymentSpec(name="x", model="models:/x")
    assert "default_answer" not in plain.to_dict()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"policy": "canary"}, "needs a challenger"),
        ({"policy": "blue-green"}, "policy must be one of"),
        (
            {"weight": 120, "policy": "canary", "challenger": "models:/m/2"},
            "weight is a percentage",
        ),
        ({"model": "m"}, "model: 'm' is not a model URI"),
        ({"timeout_ms": 0}, "timeout_ms must be a positive number"),
        ({"max_batch_size": 1.5}, "max_batch_size must be a positive whole number"),
        ({"wieght": 10}, "unknown field(s) wieght"),
        ({"breaker": {"failures": 0}}, "breaker.failures"),
        ({"breaker": {"fails": 2}}, "unknown breaker field(s) fails"),
        ({"features": "weather:temp"}, "features must be a list"),
        ({"method": "transform"}, "method must be one of"),
    ],
)
def test_bad_specs_are_refused_naming_the_field(fields: dict[str, object], message: str) -> None:
    data = {"name": "delay", "model": "models:/m/1", **fields}
    with pytest.raises(InvalidArgumentError, match=message.replace("(", r"\(").replace(")", r"\)")):
        DeploymentSpec.from_dict(data)


# -- request rows -----------------------------------------------------------------------


def test_records_columns_and_one_record_read_the_same() -> None:
    record = {"distance": 500.0, "hour": 7, "carrier": "UA", "temp": None}
    from_records = rows_from_json([record, {**record, "hour": 8}])
    from_columns = rows_from_json({k: [v, 8 if k == "hour" else v] for k, v in record.items()})
    assert from_records.columns == from_columns.columns
    assert from_records.count == 2
    one = rows_from_json(record)
    assert one.count == 1 and one.columns == {k: [v] for k, v in record.items()}


@pytest.mark.parametrize(
    ("inputs", "field", "message"),
    [
        ([{"distance": 1.0, "hour": 7, "temp": 1.0}], "carrier", "field 'carrier' is missing"),
        (
            [{"distance": "far", "hour": 7, "carrier": "UA", "temp": 1.0}],
            "distance",
            "row 0: field 'distance' must be a number (float64), got 'far'",
        ),
        (
            [
                {"distance": 1.0, "hour": 7, "carrier": "UA", "temp": 1.0},
                {"distance": 1.0, "hour": 7.5, "carrier": "UA", "temp": 1.0},
            ],
            "hour",
            "row 1: field 'hour' must be a whole number (int64), got 7.5",
        ),
        (
            [{"distance": None, "hour": None, "carrier": "UA", "temp": 1.0}],
            "hour",
            "row 0: field 'hour' must not be null",
        ),
        (
            [{"distance": 1.0, "hour": True, "carrier": "UA", "temp": 1.0}],
            "hour",
            "must be a whole number",
        ),
        (
            [{"distance": 1.0, "hour": 7, "carrier": 3, "temp": 1.0}],
            "carrier",
            "must be a string",
        ),
    ],
)
def test_mistyped_or_missing_fields_are_named(inputs: object, field: str, message: str) -> None:
    schema = InputSchema(SCHEMA)
    with pytest.raises(RequestError) as caught:
        schema.check(rows_from_json(inputs))
    assert caught.value.field == field
    assert message in str(caught.value)
    assert caught.value.status == 422


def test_ragged_records_and_columns_are_refused() -> None:
    with pytest.raises(RequestError, match="row 1: field 'hour' is missing"):
        rows_from_json([{"distance": 1, "hour": 2}, {"distance": 1}])
    with pytest.raises(RequestError, match="different lengths"):
        rows_from_json({"a": [1, 2], "b": [1]})
    with pytest.raises(RequestError, match="no rows"):
        rows_from_json([])


def test_a_batch_becomes_one_frame_with_the_signature_types() -> None:
    schema = InputSchema(SCHEMA)
    first = [{"distance": 1, "hour": 7, "carrier": "UA", "temp": None}]
    second = {"distance": [2.5], "hour": [8.0], "carrier": ["B6"], "temp": [3.0]}
    parts = [schema.check(rows_from_json(first)), schema.check(rows_from_json(second))]
    frame = schema.model_input(parts)
    assert list(frame.columns) == ["distance", "hour", "carrier", "temp"]
    assert frame["distance"].tolist() == [1.0, 2.5]
    assert str(frame["hour"].dtype) == "int64" and frame["hour"].tolist() == [7, 8]
    assert str(frame["carrier"].dtype) == "category"
    assert np.isnan(frame["temp"][0]) and frame["temp"][1] == 3.0


def test_times_are_read_from_iso_strings_and_epoch_seconds_alike() -> None:
    import pyarrow as pa

    from forgeml.serving.batch_convert import model_input

    schema = InputSchema({"type": "columns", "columns": [{"name": "at", "type": "datetime"}]})
    parts = [schema.check(rows_from_json({"at": [1_700_000_000, "2023-11-14T22:13:20Z"]}))]
    frame = schema.model_input(parts)
    assert [str(t) for t in frame["at"]] == ["2023-11-14 22:13:20+00:00"] * 2
    for column in (pa.array([1_700_000_000]), pa.array(["2023-11-14T22:13:20Z"])):
        batch = model_input(pa.table({"at": column}), schema)
        assert str(batch["at"].iloc[0]) == "2023-11-14 22:13:20+00:00"


def test_all_numeric_signatures_take_the_matrix_path_with_the_right_dtypes() -> None:
    schema = InputSchema(
        {
            "type": "columns",
            "columns": [
                {"name": "a", "type": "float32", "nullable": False},
                {"name": "b", "type": "int32", "nullable": False},
            ],
        }
    )
    assert schema.all_float
    frame = schema.model_input([schema.check(rows_from_json({"a": [1.5, 2], "b": [3, 4]}))])
    assert [str(t) for t in frame.dtypes] == ["float32", "int32"]
    assert frame["b"].tolist() == [3, 4]


def test_tensor_models_check_the_shape_and_dtype() -> None:
    schema = InputSchema({"type": "tensor", "dtype": "float32", "shape": [-1, 3]})
    rows = schema.check(rows_from_json([[1, 2, 3], [4, 5, 6]]))
    assert rows.tensor is not None and rows.tensor.dtype == np.float32
    with pytest.raises(RequestError, match=r"shape \[1, 2\]; the model expects \[n, 3\]"):
        schema.check(rows_from_json([[1, 2]]))
    with pytest.raises(RequestError, match="not named fields"):
        schema.check(rows_from_json({"a": 1}))
    with pytest.raises(RequestError, match="rectangular"):
        rows_from_json([[1, 2], [3]])


def test_arrow_bodies_are_read_and_garbage_is_a_400() -> None:
    table = pa.table({"distance": [1.0, 2.0], "hour": [1, 2], "carrier": ["UA", "AA"]})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    rows = rows_from_arrow(sink.getvalue().to_pybytes())
    assert rows.count == 2 and rows.columns is not None
    assert rows.columns["carrier"] == ["UA", "AA"]
    with pytest.raises(RequestError) as caught:
        rows_from_arrow(b"not arrow")
    assert caught.value.status == 400


# -- breaker ----------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_failures_probes_and_closes() -> None:
    clock = Clock()
    changes: list[tuple[str, str]] = []
    breaker = CircuitBreaker(
        BreakerSpec(failures=3, open_seconds=5, probes=2),
        on_change=lambda old, new, why: changes.append((old, new)),
        clock=clock,
    )
    breaker.failure("boom")
    breaker.success(0.001)  # a success resets the run of failures
    for _ in range(3):
        assert breaker.allow()
        breaker.failure("boom")
    assert breaker.state == OPEN and "3 failures in a row" in breaker.reason
    assert not breaker.allow()
    clock.now = 5.1
    assert breaker.allow() and breaker.state == HALF_OPEN
    assert breaker.allow()
    assert not breaker.allow()  # only two probes at a time
    breaker.success(0.001)
    breaker.success(0.001)
    assert breaker.state == CLOSED
    assert changes == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED)]


def test_breaker_reopens_when_a_probe_fails_and_opens_on_latency_slo() -> None:
    clock = Clock()
    breaker = CircuitBreaker(BreakerSpec(failures=1, open_seconds=1), clock=clock)
    breaker.failure("x")
    clock.now = 2
    assert breaker.allow()
    breaker.failure("still broken")
    assert breaker.state == OPEN and "probe failed" in breaker.reason

    slow = CircuitBreaker(BreakerSpec(latency_slo_ms=10, slo_window=4, slo_ratio=0.5), clock=clock)
    for seconds in (0.001, 0.020, 0.001):
        slow.success(seconds)
    assert slow.state == CLOSED  # the window is not full yet
    slow.success(0.030)  # 2 of the last 4 over 10 ms
    assert slow.state == OPEN and "took longer than 10 ms" in slow.reason


# -- micro-batching ----------------------------------------------------------------------


def test_requests_queued_behind_a_running_call_share_the_next_one() -> None:
    sizes: list[int] = []
    gate = threading.Event()

    def call(payloads: Sequence[int]) -> list[int]:
        sizes.append(len(payloads))
        gate.wait(5)
        return [p * 2 for p in payloads]

    async def main() -> list[int]:
        batcher: MicroBatcher[int] = MicroBatcher(call, name="t", max_batch_size=8)
        first = asyncio.create_task(batcher.submit(0, 1))
        await asyncio.sleep(0.05)  # the first call is running and blocked
        rest = [asyncio.create_task(batcher.submit(i, 1)) for i in range(1, 11)]
        await asyncio.sleep(0.05)
        gate.set()
        answers = await asyncio.gather(first, *rest)
        await batcher.close()
        return list(answers)

    assert asyncio.run(main()) == [i * 2 for i in range(11)]
    assert sizes == [1, 8, 2]  # alone, then full batches of what queued up


def test_queue_bound_sheds_and_abandoned_requests_are_not_computed() -> None:
    computed: list[int] = []
    gate = threading.Event()

    def call(payloads: Sequence[int]) -> list[int]:
        gate.wait(5)
        computed.extend(payloads)
        return list(payloads)

    async def main() -> None:
        batcher: MicroBatcher[int] = MicroBatcher(
            call, name="t", max_batch_size=4, max_queue_rows=3
        )
        running = asyncio.create_task(batcher.submit(0, 1))
        await asyncio.sleep(0.05)
        queued = [asyncio.create_task(batcher.submit(i, 1)) for i in (1, 2, 3)]
        await asyncio.sleep(0.01)
        with pytest.raises(Overloaded, match="3 rows queued"):
            await batcher.submit(4, 1)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.01):
                await queued[0]
        gate.set()
        assert await running == 0
        assert await asyncio.gather(*queued[1:]) == [2, 3]
        await batcher.close()

    asyncio.run(main())
    assert computed == [0, 2, 3]


def test_requests_are_refused_once_the_oldest_queued_one_has_waited_the_deadline() -> None:
    gate = threading.Event()

    def call(payloads: Sequence[int]) -> list[int]:
        gate.wait(5)
        return list(payloads)

    async def main() -> None:
        batcher: MicroBatcher[int] = MicroBatcher(call, name="t", max_batch_size=4)
        running = asyncio.create_task(batcher.submit(0, 1))
        await asyncio.sleep(0.02)  # the first call is running and blocked
        queued = asyncio.create_task(batcher.submit(1, 100))
        await asyncio.sleep(0.01)
        assert batcher.call_seconds is None  # no call has finished: no pace known
        batcher.admit(1, deadline_s=1.0)  # the head has waited ~10 ms of 1,000 allowed
        await asyncio.sleep(0.12)
        with pytest.raises(Overloaded, match=r"has waited 1\d\d ms, more than the 100 ms"):
            batcher.admit(0, deadline_s=0.1)
        batcher.admit(0, deadline_s=1.0)  # a longer deadline still has room
        gate.set()
        assert await asyncio.gather(running, queued) == [0, 1]
        batcher.admit(10_000, deadline_s=0.001)  # an empty queue refuses nothing
        assert batcher.call_seconds is not None and batcher.call_seconds > 0.02
        await batcher.close()

    asyncio.run(main())


def test_requests_are_refused_when_the_calls_ahead_would_outlast_the_deadline() -> None:
    def call(payloads: Sequence[int]) -> list[int]:
        time.sleep(0.02)
        return list(payloads)

    async def main() -> None:
        batcher: MicroBatcher[int] = MicroBatcher(call, name="t", max_batch_size=10)
        await batcher.submit(0, 1)  # a call of ~20 ms: the pace is known
        blocked = [asyncio.create_task(batcher.submit(i, 10)) for i in range(6)]
        await asyncio.sleep(0)  # one call running, five of 10 rows queued behind it
        batcher.admit(10, deadline_s=1.0)  # ~7 calls, ~140 ms: room
        with pytest.raises(Overloaded, match=r"7 model calls of about 2\d ms are ahead"):
            batcher.admit(10, deadline_s=0.1)
        await asyncio.gather(*blocked)
        await batcher.close()

    asyncio.run(main())


def test_max_wait_gathers_a_batch_before_calling() -> None:
    sizes: list[int] = []

    def call(payloads: Sequence[int]) -> list[int]:
        sizes.append(len(payloads))
        return list(payloads)

    async def main() -> None:
        batcher: MicroBatcher[int] = MicroBatcher(call, name="t", max_batch_size=4, max_wait_s=0.2)
        started = time.perf_counter()
        tasks = [asyncio.create_task(batcher.submit(i, 1)) for i in range(4)]
        assert await asyncio.gather(*tasks) == [0, 1, 2, 3]
        assert time.perf_counter() - started < 0.2  # a full batch does not wait out the timer
        await batcher.close()

    asyncio.run(main())
    assert sizes == [4]


def test_close_answers_everything_already_queued() -> None:
    def call(payloads: Sequence[int]) -> list[int]:
        time.sleep(0.02)
        return list(payloads)

    async def main() -> None:
        batcher: MicroBatcher[int] = MicroBatcher(call, name="t", max_batch_size=2)
        tasks = [asyncio.create_task(batcher.submit(i, 1)) for i in range(5)]
        await asyncio.sleep(0)
        await batcher.close()
        assert [t.result() for t in tasks] == [0, 1, 2, 3, 4]
        with pytest.raises(Overloaded, match="shutting down"):
            await batcher.submit(9, 1)

    asyncio.run(main())


def test_sticky_buckets_are_stable_and_spread_evenly() -> None:
    assert sticky_bucket("exp", "user-1") == sticky_bucket("exp", "user-1")
    buckets = [sticky_bucket("exp", f"user-{i}") for i in range(20_000)]
    below = sum(b < 25 for b in buckets) / len(buckets)
    assert 0.23 < below < 0.27
    assert all(0 <= b < 100 for b in buckets)


def test_prediction_log_rows_encode_the_same_by_duckdb_or_row_by_row() -> None:
    import orjson

    from forgeml.serving.log_encoding import json_rows

    typed = [
        {"a": [0.5, float("nan")], "b": ["x", 'q"uote']},
        {"a": [2, None], "b": ["é", None]},
    ]
    mixed = [{"a": [0.5, "text"], "b": [1, 2]}]  # Arrow cannot type "a": row by row
    assert [orjson.loads(t) for t in json_rows(typed, [2, 2]).to_pylist()] == [
        {"a": 0.5, "b": "x"},
        {"a": None, "b": 'q"uote'},  # NaN is null in JSON
        {"a": 2.0, "b": "é"},
        {"a": None, "b": None},
    ]
    assert json_rows(mixed, [2]).to_pylist() == ['{"a":0.5,"b":1}', '{"a":"text","b":2}']
    outputs = [{"": [[0.1, 0.9]]}, None, {"": [[1.0, 0.0]]}]
    assert json_rows(outputs, [1, 1, 1], bare=True).to_pylist() == ["[0.1,0.9]", None, "[1.0,0.0]"]
    assert json_rows([None, None], [1, 2]).to_pylist() == [None, None, None]


def test_logged_rows_are_taken_from_the_batch_matrices_in_request_order() -> None:
    import numpy as np

    from forgeml.serving.log_encoding import rows_of_blocks

    names = ("a", "b")
    first = np.arange(10.0).reshape(5, 2)
    second = 100 + np.arange(6.0).reshape(3, 2)
    blocks = [(names, second, 1), (names, first, 0), (names, first, 3), (names, second, 0)]
    matrix = rows_of_blocks(blocks, [2, 3, 1, 1])
    expected = np.vstack([second[1:3], first[0:3], first[3:4], second[0:1]])
    assert np.array_equal(matrix, expected.T) and matrix.flags.c_contiguous
    ones = rows_of_blocks([(names, first, 4), (names, second, 2)], [1, 1])
    assert np.array_equal(ones, np.vstack([first[4], second[2]]).T)


def test_a_request_the_model_fails_on_fails_alone_not_its_batch() -> None:
    calls: list[list[int]] = []

    def call(payloads: Sequence[int]) -> list[int]:
        calls.append(list(payloads))
        if any(p < 0 for p in payloads):
            raise ValueError("negative input")
        return [p * 10 for p in payloads]

    batcher: MicroBatcher[int] = MicroBatcher(call, name="t", max_batch_size=8)
    payloads = [1, 2, -3, 4, 5, 6, 7, 8]
    outcomes = batcher._answer(payloads)
    assert [o if isinstance(o, int) else "failed" for o in outcomes] == [
        10, 20, "failed", 40, 50, 60, 70, 80,
    ]  # fmt: skip
    assert len(calls) == 1 + 2 + 2 + 2  # the batch, then two calls per halving

    calls.clear()
    everything = batcher._answer([-1, -2, -3, -4, -5, -6])
    assert all(not isinstance(o, int) for o in everything)
    assert len(calls) == 3  # a model failing on both halves is not split further

    async def main() -> None:
        tasks = [asyncio.create_task(batcher.submit(p, 1)) for p in (5, -1, 6)]
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert results[0] == 50 and results[2] == 60
        assert isinstance(results[1], ValueError)
        await batcher.close()

    asyncio.run(main())
