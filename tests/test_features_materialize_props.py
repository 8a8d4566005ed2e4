"""Materialization, checked against a brute-force reference on SQLite and on Redis.

After a full run to ``end`` (and an optional later run, incremental or full), every
entity reads back the features of its newest source row at or before the last end; of
several rows at that same time, the one that comes last in the source (files in name
order, rows in file order). Entities without such a row read as null. NaN and
infinities read as null, as JSON has no spelling for them.

The generated views cover both ways entries are encoded: in DuckDB for common key and
feature types, and in Python for the others (a date key, a list feature).
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import forgeml as fm

BASE = dt.datetime(2024, 3, 1)
STEP = dt.timedelta(minutes=30)
_files = itertools.count()

KEY_VALUES: dict[str, list[Any]] = {
    "int": [3, -7, 0, 12_345_678_901, 42],
    "str": ["a", "b b", "ü", "it's", "9"],
    "pair": [(1, "x"), (1, "y"), (2, "x"), (-5, ""), (7, "q r")],
    "date": [dt.date(2024, 1, d) for d in (1, 2, 3, 10, 31)],
}
KEY_COLUMNS = {"int": ["k"], "str": ["k"], "pair": ["k1", "k2"], "date": ["k"]}
KEY_TYPES = {"int": pa.int64(), "str": pa.string(), "date": pa.date32()}


@dataclass(frozen=True)
class Row:
    key: int | None  # index into KEY_VALUES, None for a null key
    step: int | None  # time = BASE + step * STEP, None for a null time
    score: float | None
    label: str | None
    count: int | None
    seen_us: int  # microseconds after BASE: a naive timestamp feature
    day: int  # days after 2024-01-01: a date feature


@dataclass(frozen=True)
class Scenario:
    key_kind: str
    source_tz: str | None
    nested: bool  # add a list feature, which Python encodes
    files: int  # rows split over this many files
    rows: list[Row]
    first_end: int
    second_end: int | None
    second_full: bool


floats = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.sampled_from([math.nan, math.inf, -math.inf, 0.1, -0.0, 1e300, 5e-324]),
)
rows = st.builds(
    Row,
    key=st.one_of(st.none(), st.integers(0, 4)) | st.integers(0, 4),
    step=st.one_of(st.none(), st.integers(0, 8)) | st.integers(0, 8),
    score=floats,
    label=st.one_of(st.none(), st.text(max_size=5)),
    count=st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)),
    seen_us=st.integers(0, 10**12),
    day=st.integers(0, 400),
)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    first_end = draw(st.integers(0, 8))
    second = draw(st.one_of(st.none(), st.integers(first_end, 9)))
    return Scenario(
        key_kind=draw(st.sampled_from(sorted(KEY_VALUES))),
        source_tz=draw(st.sampled_from([None, "UTC", "Asia/Tokyo"])),
        nested=draw(st.booleans()),
        files=draw(st.integers(1, 2)),
        rows=draw(st.lists(rows, min_size=1, max_size=40)),
        first_end=first_end,
        second_end=second,
        second_full=draw(st.booleans()),
    )


def _time(step: int) -> dt.datetime:
    return BASE + step * STEP


def _write_source(directory: Path, scenario: Scenario) -> Path:
    folder = directory / f"source-{next(_files)}"
    folder.mkdir()
    columns = KEY_COLUMNS[scenario.key_kind]
    per_file = math.ceil(len(scenario.rows) / scenario.files)
    for index in range(scenario.files):
        part = scenario.rows[index * per_file : (index + 1) * per_file]
        data: dict[str, Any] = {}
        keys = [None if r.key is None else KEY_VALUES[scenario.key_kind][r.key] for r in part]
        if scenario.key_kind == "pair":
            data["k1"] = pa.array([None if k is None else k[0] for k in keys], pa.int64())
            data["k2"] = pa.array([None if k is None else k[1] for k in keys], pa.string())
        else:
            data[columns[0]] = pa.array(keys, KEY_TYPES[scenario.key_kind])
        times = [None if r.step is None else _time(r.step).replace(tzinfo=dt.UTC) for r in part]
        data["ts"] = pa.array(times, pa.timestamp("us", tz="UTC"))
        if scenario.source_tz is None:
            data["ts"] = data["ts"].cast(pa.timestamp("us"))
        elif scenario.source_tz != "UTC":
            data["ts"] = data["ts"].cast(pa.timestamp("us", tz=scenario.source_tz))
        data["score"] = pa.array([r.score for r in part], pa.float64())
        data["label"] = pa.array([r.label for r in part], pa.string())
        data["count"] = pa.array([r.count for r in part], pa.int64())
        data["seen"] = pa.array(
            [BASE + dt.timedelta(microseconds=r.seen_us) for r in part], pa.timestamp("us")
        )
        data["day"] = pa.array(
            [dt.date(2024, 1, 1) + dt.timedelta(days=r.day) for r in part], pa.date32()
        )
        if scenario.nested:
            data["tags"] = pa.array([[r.day, r.seen_us % 7] for r in part], pa.list_(pa.int64()))
        pq.write_table(pa.table(data), folder / f"part-{index}.parquet")
    return folder


def _features(scenario: Scenario) -> list[str]:
    return ["score", "label", "count", "seen", "day"] + (["tags"] if scenario.nested else [])


def _expected(scenario: Scenario, end: int, key: int) -> dict[str, Any] | None:
    """The newest row of ``key`` at or before ``end``; the last in source order on ties."""
    best: Row | None = None
    for row in scenario.rows:  # source order: files in name order, then rows
        if row.key != key or row.step is None or row.step > end:
            continue
        if best is None or best.step is None or row.step >= best.step:
            best = row
    if best is None:
        return None
    score = best.score if best.score is not None and math.isfinite(best.score) else None
    values = {
        "score": score,
        "label": best.label,
        "count": best.count,
        "seen": BASE + dt.timedelta(microseconds=best.seen_us),
        "day": dt.date(2024, 1, 1) + dt.timedelta(days=best.day),
    }
    if scenario.nested:
        values["tags"] = [best.day, best.seen_us % 7]
    return values


def _counts(scenario: Scenario, start: int | None, end: int) -> tuple[int, int]:
    """(rows read, entities written) for a run over (start, end]."""
    taken = [
        r
        for r in scenario.rows
        if r.key is not None
        and r.step is not None
        and r.step <= end
        and (start is None or r.step > start)
    ]
    return len(taken), len({r.key for r in taken})


def _same(actual: Any, expected: Any) -> bool:
    if isinstance(expected, float) and isinstance(actual, float):
        return actual == expected and math.copysign(1, actual) == math.copysign(1, expected)
    return bool(type(actual) is type(expected) and actual == expected)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=scenarios())
def test_online_values_match_brute_force(
    online_backend: str, home: Path, scenario: Scenario
) -> None:
    directory = home.parent / "sources"
    directory.mkdir(exist_ok=True)
    columns = KEY_COLUMNS[scenario.key_kind]
    entity = fm.Entity(f"e_{scenario.key_kind}", join_keys=columns)
    features = _features(scenario)
    view = fm.FeatureView(
        "mv",
        entities=[entity],
        source=_write_source(directory, scenario),
        timestamp_field="ts",
        features=features,
    )
    fm.features.apply([entity, view])

    (first,) = fm.features.materialize("mv", end=_time(scenario.first_end))
    assert first.full
    assert (first.rows_read, first.entities_written) == _counts(scenario, None, scenario.first_end)
    end = scenario.first_end
    if scenario.second_end is not None:
        (second,) = fm.features.materialize(
            "mv", end=_time(scenario.second_end), full=scenario.second_full
        )
        start = None if scenario.second_full else scenario.first_end
        if start == scenario.second_end:
            assert (second.rows_read, second.entities_written) == (0, 0)
        else:
            expected_counts = _counts(scenario, start, scenario.second_end)
            assert (second.rows_read, second.entities_written) == expected_counts
        end = scenario.second_end

    values = KEY_VALUES[scenario.key_kind]
    if scenario.key_kind == "pair":
        asked: dict[str, list[Any]] = {
            "k1": [v[0] for v in values] + [99],
            "k2": [v[1] for v in values] + ["none"],
        }
    elif scenario.key_kind == "date":
        asked = {"k": [*values, dt.date(1999, 1, 1)]}
    elif scenario.key_kind == "str":
        asked = {"k": [*values, "never"]}
    else:
        asked = {"k": [*values, 99]}
    found = fm.features.online(asked, [f"mv:{f}" for f in features])
    for index in range(len(values) + 1):
        expected = _expected(scenario, end, index) if index < len(values) else None
        for feature in features:
            actual = found[feature][index]
            wanted = None if expected is None else expected[feature]
            assert _same(actual, wanted), (
                f"entity {index} ({online_backend}), {feature}: {actual!r} != {wanted!r}"
            )


def test_ties_in_a_fresh_store_go_to_the_last_source_row(online_backend: str, home: Path) -> None:
    """Materialization settles ties itself, before any check of the source has run."""
    source = home.parent / "ties.parquet"
    same = [BASE, BASE, BASE + STEP, BASE + STEP, BASE + STEP]
    pq.write_table(
        pa.table(
            {
                "k": [1, 1, 2, 2, 2],
                "ts": pa.array(same, pa.timestamp("us")),
                "score": [1.0, 2.0, 3.0, 4.0, 5.0],
            }
        ),
        source,
    )
    entity = fm.Entity("e", join_keys=["k"])
    view = fm.FeatureView("tied", entities=[entity], source=source, timestamp_field="ts")
    fm.features.apply([entity, view])
    fm.features.materialize("tied", end=BASE + 2 * STEP)
    assert fm.features.online({"k": [1, 2]}, "tied:score")["score"] == [2.0, 5.0]
    frame = fm.features.training_frame(
        pa.table({"k": [1, 2], "at": pa.array([BASE + 2 * STEP] * 2, pa.timestamp("us"))}),
        ["tied:score"],
    )
    assert frame.column("score").to_pylist() == [2.0, 5.0]


@pytest.mark.parametrize("source_tz", [None, "America/New_York"])
def test_incremental_run_reads_only_the_new_row_groups(
    online_backend: str, home: Path, source_tz: str | None
) -> None:
    """The time filter reaches the Parquet reader: a run over the last day reads one row group."""
    source = home.parent / "groups.parquet"
    times = [BASE + dt.timedelta(hours=h) for h in range(48)]
    kind = pa.timestamp("us") if source_tz is None else pa.timestamp("us", tz=source_tz)
    stamps = pa.array([t.replace(tzinfo=dt.UTC) for t in times], pa.timestamp("us", tz="UTC"))
    table = pa.table({"k": [h % 3 for h in range(48)], "ts": stamps.cast(kind), "v": range(48)})
    pq.write_table(table, source, row_group_size=24)
    entity = fm.Entity("e", join_keys=["k"])
    view = fm.FeatureView("grouped", entities=[entity], source=source, timestamp_field="ts")
    fm.features.apply([entity, view])
    fm.features.materialize("grouped", end=BASE + dt.timedelta(hours=23))
    (second,) = fm.features.materialize("grouped", end=BASE + dt.timedelta(hours=47))
    assert (second.full, second.rows_read, second.entities_written) == (False, 24, 3)
    assert fm.features.online({"k": [0, 1, 2]}, "grouped:v")["v"] == [45, 46, 47]

    from forgeml.features.offline import _connection, offline_table
    from forgeml.features.registry import as_version

    built = offline_table(as_version("grouped"), check_ties=False)
    latest = built.latest_sql(BASE + dt.timedelta(hours=23), BASE + dt.timedelta(hours=47))
    connection = _connection()
    try:
        plan = connection.sql(f"EXPLAIN ANALYZE {latest}").fetchall()[0][1]
    finally:
        connection.close()
    scans = re.findall(r"Row Groups Scanned: (\d+) / (\d+)", plan)
    assert scans and all(scan == ("1", "2") for scan in scans), plan
