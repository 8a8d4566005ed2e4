"""Point-in-time training frames, checked against a brute-force reference.

For every entity row (in input order, duplicates kept) and every feature view, the
expected features are those of the source row with the same key and the latest time
at or before the event time; of several such rows at that same time, the one that
comes last in the source file. They are null when there is no such row, or when it
is older than the view's TTL (a row exactly TTL old is still valid).
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import forgeml as fm
from forgeml.errors import DataSourceError, InvalidArgumentError, NotFoundError
from forgeml.features.model_check import FeatureViewUnavailableError
from forgeml.lineage_graph import lineage

BASE = dt.datetime(2024, 3, 1)
STEP = dt.timedelta(minutes=30)  # source rows lie on this grid; entity rows on half of it
_files = itertools.count()


# -- generated data ----------------------------------------------------------------------


@dataclass(frozen=True)
class SourceRow:
    key: int | None
    step: int | None  # time = BASE + step * STEP
    a: Any  # first feature (float, or text in view B)
    b: Any  # second feature (int in view A, float in view B)


@dataclass(frozen=True)
class EntityRow:
    key: int | None
    half_steps: int | None  # time = BASE + half_steps * STEP / 2


@dataclass(frozen=True)
class Scenario:
    key_kind: str  # "int" or "str"
    kind: str  # "pandas", "arrow" or "polars"
    source_tz: str | None
    entity_tz: str | None
    ttl_steps: int  # view A's TTL in grid steps; view B has none
    rows_a: list[SourceRow]
    rows_b: list[SourceRow]
    entities: list[EntityRow]
    request: str  # how the features are asked for
    explicit_timestamp: bool


def _rarely_none(values: st.SearchStrategy[Any], one_in: int = 8) -> st.SearchStrategy[Any]:
    return st.one_of(*[values] * (one_in - 1), st.none())


def _source_rows(a: st.SearchStrategy[Any], b: st.SearchStrategy[Any]) -> Any:
    """0-40 rows on few keys and few times, so ties and exact TTL edges are common."""
    row = st.builds(
        SourceRow,
        key=_rarely_none(st.sampled_from([0, 1, 2, 0, 1, 2, 3])),
        step=_rarely_none(st.integers(0, 6)),
        a=a,
        b=b,
    )
    return st.integers(0, 40).flatmap(lambda n: st.lists(row, min_size=n, max_size=n))


_floats = _rarely_none(st.sampled_from([0.5, -1.25, 2.0, 3.75, 100.0]))
_ints = _rarely_none(st.integers(-5, 50))
_texts = _rarely_none(st.sampled_from(["x", "y", "zz", ""]))


def _with_ties(draw: st.DrawFn, rows: list[SourceRow], a: Any, b: Any) -> list[SourceRow]:
    """More rows at (key, time) pairs already used, with new values, shuffled in."""
    timed = [r for r in rows if r.key is not None and r.step is not None]
    if not timed:
        return rows
    again = draw(st.lists(st.sampled_from(timed), max_size=8))
    extra = [SourceRow(r.key, r.step, draw(a), draw(b)) for r in again]
    return list(draw(st.permutations(rows + extra)))


def _ttl_edges(rows: list[SourceRow], ttl_steps: int) -> list[tuple[int, int]]:
    """(key, half steps) at which a key's latest row in ``rows`` is exactly ``ttl_steps`` old."""
    steps: dict[int, set[int]] = {}
    for row in rows:
        if row.key is not None and row.step is not None:
            steps.setdefault(row.key, set()).add(row.step)
    return [
        (key, 2 * (step + ttl_steps))
        for key, known in sorted(steps.items())
        for step in sorted(known)
        if not any(step < other <= step + ttl_steps for other in known)
    ]


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    key_kind = draw(st.sampled_from(["int", "str"]))
    ttl_steps = draw(st.integers(1, 3))
    rows_a = _with_ties(draw, draw(_source_rows(_floats, _ints)), _floats, _ints)
    rows_b = _with_ties(draw, draw(_source_rows(_texts, _floats)), _texts, _floats)
    entity_key = st.sampled_from([0, 1, 2, 0, 1, 2, 3, 4, 5])  # 4, 5: never in the sources
    if key_kind == "str":  # (a null int key would turn a pandas column into floats)
        entity_key = _rarely_none(entity_key)
    entity = st.builds(
        EntityRow, key=entity_key, half_steps=_rarely_none(st.integers(0, 16), one_in=12)
    )
    size = draw(st.integers(0, 12))
    entities = draw(st.lists(entity, min_size=size, max_size=size))
    timed = [r for r in rows_a + rows_b if r.key is not None and r.step is not None]
    if timed:  # events at a row's time, just after it, and exactly one TTL (of A) later
        offsets = st.sampled_from([0, 1, 2 * ttl_steps, 2 * ttl_steps + 1])
        for row in draw(st.lists(st.sampled_from(timed), max_size=8)):
            assert row.step is not None
            entities.append(EntityRow(row.key, 2 * row.step + draw(offsets)))
    edges = _ttl_edges(rows_a, ttl_steps)
    if edges:  # events exactly one TTL after the latest row of their key in A, or just past it
        for key, half_steps in draw(st.lists(st.sampled_from(edges), max_size=6)):
            entities.append(EntityRow(key, half_steps + draw(st.sampled_from([0, 0, 1]))))
    if entities:  # exact duplicate entity rows, anywhere
        entities = list(
            draw(st.permutations(entities + draw(st.lists(st.sampled_from(entities), max_size=4))))
        )
    return Scenario(
        key_kind=key_kind,
        kind=draw(st.sampled_from(["pandas", "arrow", "polars"])),
        source_tz=draw(st.sampled_from([None, "UTC", "Asia/Tokyo"])),
        entity_tz=draw(st.sampled_from([None, "UTC", "America/New_York"])),
        ttl_steps=ttl_steps,
        rows_a=rows_a,
        rows_b=rows_b,
        entities=entities,
        request=draw(st.sampled_from(["strings", "objects", "stars", "mixed"])),
        explicit_timestamp=draw(st.booleans()),
    )


def _key(value: int | None, key_kind: str) -> Any:
    if value is None:
        return None
    return value if key_kind == "int" else f"k{value}"


def _time(step: int | None) -> dt.datetime | None:
    return None if step is None else BASE + step * STEP


def _half(half_steps: int | None) -> dt.datetime | None:
    return None if half_steps is None else BASE + half_steps * STEP / 2


def _key_type(key_kind: str) -> pa.DataType:
    return pa.int64() if key_kind == "int" else pa.string()


def _write_source(
    directory: Path, rows: Sequence[SourceRow], scenario: Scenario, view: str
) -> Path:
    """A new file each time, so no two examples share a path (and a cached table)."""
    ts_type = pa.timestamp("us", tz=scenario.source_tz)
    keys = pa.array([_key(r.key, scenario.key_kind) for r in rows], _key_type(scenario.key_kind))
    times = pa.array([_time(r.step) for r in rows], ts_type)
    if view == "a":
        table = pa.table(
            {
                "cust": keys,
                "ts": times,
                "fa": pa.array([r.a for r in rows], pa.float64()),
                "ia": pa.array([r.b for r in rows], pa.int64()),
                "seen": times,  # the row's own time, as a feature
            }
        )
    else:
        table = pa.table(
            {
                "sb": pa.array([r.a for r in rows], pa.string()),
                "updated": times,
                "fb": pa.array([r.b for r in rows], pa.float64()),
                "cust": keys,
            }
        )
    path = directory / f"{view}-{next(_files)}.parquet"
    pq.write_table(table, path)
    return path


def _entity_frame(scenario: Scenario) -> Any:
    table = pa.table(
        {
            "cust": pa.array(
                [_key(e.key, scenario.key_kind) for e in scenario.entities],
                _key_type(scenario.key_kind),
            ),
            "event_time": pa.array(
                [_half(e.half_steps) for e in scenario.entities],
                pa.timestamp("us", tz=scenario.entity_tz),
            ),
            "row_id": pa.array(range(len(scenario.entities)), pa.int64()),
        }
    )
    if scenario.kind == "arrow":
        return table
    if scenario.kind == "polars":
        return pl.from_arrow(table)
    return table.to_pandas()


def _latest(
    rows: Sequence[SourceRow], key: int | None, event: dt.datetime | None, ttl: dt.timedelta | None
) -> SourceRow | None:
    """The brute-force point-in-time lookup."""
    if key is None or event is None:
        return None
    best: SourceRow | None = None
    for row in rows:  # in file order: a later row at the same time replaces an earlier one
        time = _time(row.step)
        if row.key != key or time is None or time > event:
            continue
        if best is None or time >= _time(best.step):  # type: ignore[operator]
            best = row
    if best is None:
        return None
    if ttl is not None and event - _time(best.step) > ttl:  # type: ignore[operator]
        return None
    return best


# -- reading frames back -------------------------------------------------------------------


def _column(frame: Any, name: str) -> list[Any]:
    if isinstance(frame, pa.Table):
        values = frame.column(name).to_pylist()
    elif isinstance(frame, pl.DataFrame):
        values = frame[name].to_list()
    else:
        values = [None if _is_missing(v) else v for v in frame[name].tolist()]
    return [_plain(v) for v in values]


def _is_missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _plain(value: Any) -> Any:
    """Python values, times as naive UTC, so frames of every kind compare alike."""
    if value is None:
        return None
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    if hasattr(value, "item") and not isinstance(value, dt.datetime):
        value = value.item()
    return value


def _columns_of(frame: Any) -> list[str]:
    return list(frame.column_names) if isinstance(frame, pa.Table) else list(frame.columns)


def _same(actual: Any, expected: Any) -> bool:
    if actual is None or expected is None:
        return actual is None and expected is None
    if isinstance(expected, float) or isinstance(actual, float):
        return math.isclose(float(actual), float(expected))
    return bool(actual == expected)


# -- the property --------------------------------------------------------------------------

_KINDS = {"pandas": pd.DataFrame, "arrow": pa.Table, "polars": pl.DataFrame}


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=scenarios())
def test_training_frame_matches_brute_force(home: Path, scenario: Scenario) -> None:
    directory = home.parent / "sources"
    directory.mkdir(exist_ok=True)
    ttl = scenario.ttl_steps * STEP
    customer = fm.Entity("customer", join_keys=["cust"])
    view_a = fm.FeatureView(
        "va",
        entities=[customer],
        source=_write_source(directory, scenario.rows_a, scenario, "a"),
        timestamp_field="ts",
        features=["fa", "ia", "seen"],
        ttl=ttl,
    )
    view_b = fm.FeatureView(
        "vb",
        entities=[customer],
        source=_write_source(directory, scenario.rows_b, scenario, "b"),
        timestamp_field="updated",
        features=["sb", "fb"],
    )
    applied = fm.features.apply([customer, view_a, view_b])
    requests: dict[str, list[Any]] = {
        "strings": ["va:fa", "va:ia", "va:seen", "vb:sb", "vb:fb"],
        "objects": [view_a, view_b],
        "stars": ["va:*", "vb:*"],
        "mixed": [view_a, "vb:sb", "vb:fb"],
    }
    frame = fm.features.training_frame(
        _entity_frame(scenario),
        requests[scenario.request],
        timestamp_field="event_time" if scenario.explicit_timestamp else None,
    )

    assert isinstance(frame, _KINDS[scenario.kind])
    assert _columns_of(frame) == ["cust", "event_time", "row_id", "fa", "ia", "seen", "sb", "fb"]
    assert _column(frame, "row_id") == list(range(len(scenario.entities)))
    assert _column(frame, "cust") == [_key(e.key, scenario.key_kind) for e in scenario.entities]
    assert _column(frame, "event_time") == [_half(e.half_steps) for e in scenario.entities]
    got = {name: _column(frame, name) for name in ("fa", "ia", "seen", "sb", "fb")}
    for index, entity in enumerate(scenario.entities):
        event = _half(entity.half_steps)
        row_a = _latest(scenario.rows_a, entity.key, event, ttl)
        row_b = _latest(scenario.rows_b, entity.key, event, None)
        expected = {
            "fa": row_a.a if row_a else None,
            "ia": row_a.b if row_a else None,
            "seen": _time(row_a.step) if row_a else None,
            "sb": row_b.a if row_b else None,
            "fb": row_b.b if row_b else None,
        }
        actual = {name: got[name][index] for name in expected}
        assert all(_same(actual[n], expected[n]) for n in expected), (
            index,
            entity,
            actual,
            expected,
        )
        seen = actual["seen"]
        if seen is not None:  # never from after the event, never older than the TTL
            assert event is not None and event - ttl <= seen <= event
    lineage_meta = frame.attrs["forgeml"] if isinstance(frame, pd.DataFrame) else None
    if lineage_meta is not None:
        assert lineage_meta["feature_views"] == [v.ref for v in applied]


# -- transforms and on-demand features -----------------------------------------------------


def _source(path: Path, data: dict[str, Any]) -> Path:
    pd.DataFrame(data).to_parquet(path)
    return path


def _trips(directory: Path) -> Path:
    return _source(
        directory / "trips.parquet",
        {
            "driver": [1, 1, 2, 2, 3],
            "at": pd.to_datetime(
                [
                    "2024-03-01 00:00",
                    "2024-03-01 02:00",
                    "2024-03-01 01:00",
                    "2024-03-01 03:00",
                    "2024-03-01 00:00",
                ]
            ),
            "km": [10.0, 30.0, 5.0, 8.0, 40.0],
            "minutes": [20.0, 40.0, 10.0, 16.0, 50.0],
        },
    )


def _entity_rows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "driver": [1, 2, 1, 3, 2, 9],
            "event_time": pd.to_datetime(
                [
                    "2024-03-01 01:00",
                    "2024-03-01 01:30",
                    "2024-03-01 02:00",
                    "2024-03-01 05:00",
                    "2024-03-01 00:30",
                    "2024-03-01 04:00",
                ]
            ),
        }
    )


def speed_pandas(frame: pd.DataFrame) -> pd.DataFrame:
    frame["speed"] = frame["km"] / frame["minutes"] * 60
    return frame[["driver", "at", "speed"]]


def speed_arrow(table: pa.Table) -> pa.Table:
    import pyarrow.compute as pc

    speed = pc.multiply(pc.divide(table.column("km"), table.column("minutes")), 60)
    return table.select(["driver", "at"]).append_column("speed", speed)


def speed_polars(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select("driver", "at", (pl.col("km") / pl.col("minutes") * 60).alias("speed"))


@pytest.mark.parametrize(
    ("function", "fmt"),
    [(speed_pandas, "pandas"), (speed_arrow, "arrow"), (speed_polars, "polars")],
)
def test_transform_gives_transformed_values(home: Path, function: Any, fmt: str) -> None:
    driver = fm.Entity("driver")
    view = fm.FeatureView(
        "driving",
        entities=[driver],
        source=_trips(home.parent),
        timestamp_field="at",
        transform=function,
        transform_format=fmt,
    )
    (version,) = fm.features.apply([driver, view])
    assert version.features == ["speed"]  # inferred from the transform's output
    frame = fm.features.training_frame(_entity_rows(), ["driving:speed"])
    expected = [30.0, 30.0, 45.0, 48.0, None, None]  # 10/20, 5/10, 30/40, 40/50, too early, absent
    assert _column(frame, "speed") == expected


def fare_features(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "fare_per_km": frame["fare"] / frame["km"],
            "long_trip": frame["km"].fillna(0) + frame["extra_km"] > 20,
        }
    )


def test_on_demand_view_matches_its_function_applied_by_hand(home: Path) -> None:
    driver = fm.Entity("driver")
    trips = fm.FeatureView(
        "trips",
        entities=[driver],
        source=_trips(home.parent),
        timestamp_field="at",
        features=["km", "minutes"],
    )
    fares = fm.OnDemandFeatureView(
        "fares",
        features=["fare_per_km", "long_trip"],
        transform=fare_features,
        sources=["trips:km"],
        request_fields={"fare": "double", "extra_km": "double"},
    )
    fm.features.apply([driver, trips, fares])
    entities = _entity_rows()
    entities["fare"] = [20.0, 7.5, 45.0, 12.0, 3.0, 1.0]
    entities["extra_km"] = [0.0, 20.0, 1.0, 0.0, 0.0, 30.0]
    frame = fm.features.training_frame(entities, ["fares:fare_per_km", "fares:long_trip"])
    # the source feature the function read is not a column of the result
    assert list(frame.columns) == [*entities.columns, "fare_per_km", "long_trip"]

    by_hand = entities.copy()
    by_hand["km"] = fm.features.training_frame(entities, ["trips:km"])["km"]
    expected = fare_features(by_hand)
    assert _column(frame, "fare_per_km") == [
        None if _is_missing(v) else v for v in expected["fare_per_km"].tolist()
    ]
    assert _column(frame, "long_trip") == expected["long_trip"].tolist()
    both = fm.features.training_frame(entities, ["trips:km", "fares:*"])
    assert list(both.columns) == [*entities.columns, "km", "fare_per_km", "long_trip"]
    assert _column(both, "fare_per_km") == _column(frame, "fare_per_km")


# -- errors ------------------------------------------------------------------------------------


@pytest.fixture
def trips_view(home: Path) -> fm.FeatureView:
    driver = fm.Entity("driver")
    view = fm.FeatureView(
        "trips",
        entities=[driver],
        source=_trips(home.parent),
        timestamp_field="at",
        features=["km", "minutes"],
    )
    fm.features.apply([driver, view])
    return view


def test_missing_join_key_column_is_named(trips_view: fm.FeatureView) -> None:
    entities = _entity_rows().rename(columns={"driver": "driver_id"})
    with pytest.raises(InvalidArgumentError, match="'driver'"):
        fm.features.training_frame(entities, ["trips:km"])


def test_entity_timestamp_that_is_not_a_timestamp_is_named(trips_view: fm.FeatureView) -> None:
    entities = _entity_rows()
    entities["event_time"] = entities["event_time"].astype(str)
    with pytest.raises(InvalidArgumentError, match="event_time"):
        fm.features.training_frame(entities, ["trips:km"], timestamp_field="event_time")
    with pytest.raises(InvalidArgumentError, match="timestamp_field"):
        fm.features.training_frame(entities, ["trips:km"])  # no timestamp column to guess


def test_source_timestamp_that_is_not_a_timestamp_is_named(home: Path) -> None:
    path = _source(
        home.parent / "text_times.parquet",
        {
            "driver": [1, 2],
            "at_text": ["2024-03-01 00:00", "2024-03-01 01:00"],
            "km": [1.0, 2.0],
        },
    )
    driver = fm.Entity("driver")
    view = fm.FeatureView(
        "texty", entities=[driver], source=path, timestamp_field="at_text", features=["km"]
    )
    fm.features.apply([driver, view])
    with pytest.raises(DataSourceError, match="'at_text'"):
        fm.features.training_frame(_entity_rows(), ["texty:km"])


def test_feature_name_clashing_with_an_entity_column_is_named(trips_view: fm.FeatureView) -> None:
    entities = _entity_rows()
    entities["km"] = 1.0
    with pytest.raises(InvalidArgumentError, match="'km'"):
        fm.features.training_frame(entities, ["trips:km"])
    frame = fm.features.training_frame(entities, ["trips:km"], full_names=True)
    assert "trips__km" in frame.columns


def test_key_type_mismatch_is_named(trips_view: fm.FeatureView) -> None:
    entities = _entity_rows()
    entities["driver"] = entities["driver"].astype(str)
    with pytest.raises(InvalidArgumentError, match="'driver'"):
        fm.features.training_frame(entities, ["trips:km"])


def test_unknown_feature_is_named(trips_view: fm.FeatureView) -> None:
    with pytest.raises(NotFoundError, match="'speed'"):
        fm.features.training_frame(_entity_rows(), ["trips:speed"])


def test_rewritten_source_file_is_picked_up(trips_view: fm.FeatureView, home: Path) -> None:
    before = fm.features.training_frame(_entity_rows(), ["trips:km"])
    assert _column(before, "km")[0] == 10.0
    path = home.parent / "trips.parquet"
    stat = path.stat()
    frame = pd.read_parquet(path)
    frame["km"] = frame["km"] * 2
    frame.to_parquet(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # clearly later
    after = fm.features.training_frame(_entity_rows(), ["trips:km"])
    assert _column(after, "km")[0] == 20.0


# -- lineage and model checks -------------------------------------------------------------------


def test_lineage_from_training_frame_to_model_and_serving_check(home: Path) -> None:
    from sklearn.dummy import DummyRegressor

    driver = fm.Entity("driver")
    trips = fm.FeatureView(
        "trips",
        entities=[driver],
        source=_trips(home.parent),
        timestamp_field="at",
        features=["km", "minutes"],
        ttl=dt.timedelta(hours=2),
    )
    (v1,) = fm.features.apply([driver, trips])
    with fm.start_run(experiment="drivers") as run:
        frame = fm.features.training_frame(_entity_rows(), ["trips:km", "trips:minutes"])
        model = DummyRegressor().fit(frame[["km"]].fillna(0), [1.0] * len(frame))
        fm.log_model(model, name="eta")
    upstream = lineage(run, "up").upstream("feature_view_version")
    assert upstream == [("feature_view_version", "trips/1")]
    assert fm.features.model_feature_views("models:/eta/1") == [("trips", 1)]

    with pytest.raises(FeatureViewUnavailableError, match=r"trips v1 \(not materialized\)"):
        fm.features.check_model_features("models:/eta/1")
    # another definition of the view (a different TTL) is a new version; serve that one
    changed = fm.FeatureView(
        "trips",
        entities=[driver],
        source=_trips(home.parent),
        timestamp_field="at",
        features=["km", "minutes"],
        ttl=dt.timedelta(hours=3),
    )
    (v2,) = fm.features.apply([changed])
    assert (v1.version, v2.version) == (1, 2)
    fm.features.materialize([changed])
    with pytest.raises(FeatureViewUnavailableError, match="online store holds v2"):
        fm.features.check_model_features("models:/eta/1")
    fm.features.materialize(["trips/1"])
    assert fm.features.check_model_features("models:/eta/1") == [("trips", 1)]


def test_dataset_source_is_recorded_as_used_by_the_run(home: Path) -> None:
    rows = pd.read_parquet(_trips(home.parent))
    dataset = fm.Dataset.ingest(rows, name="trip-log")
    driver = fm.Entity("driver")
    view = fm.FeatureView(
        "trip_stats",
        entities=[driver],
        source="datasets:/trip-log",
        timestamp_field="at",
        features=["km"],
    )
    fm.features.apply([driver, view])
    with fm.start_run(experiment="drivers") as run:
        frame = fm.features.training_frame(_entity_rows(), ["trip_stats:km"])
    assert _column(frame, "km") == [10.0, 5.0, 30.0, 40.0, None, None]
    assert frame.attrs["forgeml"]["datasets"] == [f"trip-log/{dataset.version}"]
    graph = lineage(run, "up")
    assert ("dataset_version", f"trip-log/{dataset.version}") in graph.upstream("dataset_version")
    assert ("feature_view_version", "trip_stats/1") in graph.upstream("feature_view_version")
