"""Online features: materialization, lookups, the cache and skew checks, on SQLite and Redis.

Every test runs twice through the ``online_backend`` fixture: once on the embedded
SQLite store and once on a real Redis server (with a key prefix of its own).
"""

from __future__ import annotations

import datetime as dt
import math
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pytest

import forgeml as fm
from forgeml.errors import InvalidArgumentError, NotFoundError
from forgeml.features.lookup import FeatureClient
from forgeml.features.online_store import open_store

T0 = dt.datetime(2024, 3, 1, 10, 0)
Row = tuple[int, dt.datetime, float | None, str | None]  # user_id, ts, score, tier


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def epoch(value: dt.datetime) -> float:
    return value.replace(tzinfo=dt.UTC).timestamp()


def write_rows(path: Path, rows: list[Row]) -> Path:
    frame = pd.DataFrame(rows, columns=["user_id", "ts", "score", "tier"])
    frame["ts"] = frame["ts"].astype("datetime64[us]")
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path)
    return path


USER = fm.Entity("user", join_keys=["user_id"])


def stats_view(
    source: Any, *, ttl: dt.timedelta | None = None, features: list[str] | None = None
) -> fm.FeatureView:
    view = fm.FeatureView(
        "stats",
        entities=[USER],
        source=source,
        timestamp_field="ts",
        features=features or ["score", "tier"],
        ttl=ttl,
    )
    fm.features.apply([USER, view])
    return view


def wait_for(check: Callable[[], bool], seconds: float) -> bool:
    """Polls ``check`` until it holds (changes reach Redis subscribers on another thread)."""
    deadline = time.monotonic() + seconds
    while True:
        if check():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


# -- materialization -----------------------------------------------------------------------


def test_full_materialization_writes_latest_value_at_or_before_end(
    online_backend: str, home: Path
) -> None:
    source = write_rows(
        home.parent / "stats.parquet",
        [
            (1, at(0), 1.0, "bronze"),
            (1, at(60), 2.0, "silver"),
            (1, at(180), 9.0, "gold"),  # after end: not yet
            (2, at(120), 6.0, None),  # exactly at end: included
            (2, at(0), 5.0, "bronze"),
            (3, at(180), 7.0, "gold"),  # only after end: no entry
        ],
    )
    stats_view(source)
    calls: list[tuple[str, int, int]] = []
    (result,) = fm.features.materialize(
        ["stats"], end=at(120), progress=lambda *args: calls.append(args)
    )
    assert result.view == "stats" and result.version == 1
    assert result.full is True and result.start is None and result.end == at(120)
    assert (result.rows_read, result.entities_written) == (4, 2)
    assert calls[0] == ("stats", 0, 2) and calls[-1] == ("stats", 2, 2)

    found = fm.features.online({"user_id": [1, 2, 3]}, ["stats:score", "stats:tier"])
    assert found == {
        "user_id": [1, 2, 3],
        "score": [2.0, 6.0, None],
        "tier": ["silver", None, None],
    }


@pytest.mark.parametrize("source_kind", ["directory", "dataset"])
def test_incremental_materialization_writes_only_new_rows(
    online_backend: str, home: Path, source_kind: str
) -> None:
    first: list[Row] = [
        (1, at(0), 1.0, "a"),
        (2, at(0), 2.0, "a"),
        (2, at(90), 2.5, "b"),  # after the first end: read by the second run
        (3, at(30), 3.0, "a"),
    ]
    later: list[Row] = [
        (1, at(120), 1.5, "b"),
        (4, at(150), 4.0, "a"),
        (1, at(300), 99.0, "z"),  # after the second end
    ]
    directory = home.parent / "stats"
    if source_kind == "directory":
        write_rows(directory / "part-0.parquet", first)
        source: Any = directory
    else:
        fm.Dataset.ingest(write_rows(directory / "first.parquet", first), name="stats-log")
        source = "datasets:/stats-log"
    stats_view(source)

    (one,) = fm.features.materialize("stats", end=at(60))
    assert (one.full, one.rows_read, one.entities_written) == (True, 3, 3)
    assert fm.features.online({"user_id": [1, 2, 3, 4]}, "stats:score")["score"] == [
        1.0,
        2.0,
        3.0,
        None,
    ]

    if source_kind == "directory":
        write_rows(directory / "part-1.parquet", later)
    else:
        fm.Dataset.ingest(write_rows(directory / "all.parquet", first + later), name="stats-log")
    (two,) = fm.features.materialize("stats", end=at(240))
    assert two.version == 1  # the definition did not change: the same version, new rows
    assert two.full is False
    assert two.start == at(60) and two.end == at(240)
    assert two.rows_read == 3  # 2@90, 1@120, 4@150: only rows after the previous end
    assert two.entities_written == 3
    found = fm.features.online({"user_id": [1, 2, 3, 4]}, ["stats:score", "stats:tier"])
    assert found["score"] == [1.5, 2.5, 3.0, 4.0]  # user 3 untouched keeps its value
    assert found["tier"] == ["b", "b", "a", "a"]

    (again,) = fm.features.materialize("stats", end=at(240))  # nothing new
    assert (again.full, again.rows_read, again.entities_written) == (False, 0, 0)
    (forced,) = fm.features.materialize("stats", end=at(240), full=True)
    assert (forced.full, forced.rows_read, forced.entities_written) == (True, 6, 4)
    assert fm.features.online({"user_id": [1, 2, 3, 4]}, "stats:score")["score"] == [
        1.5,
        2.5,
        3.0,
        4.0,
    ]


def test_incremental_run_after_a_full_run_to_an_earlier_end(
    online_backend: str, home: Path
) -> None:
    """Going back to an earlier end and then forward again must not skip the rows between."""
    source = write_rows(
        home.parent / "stats.parquet",
        [
            (1, at(0), 1.0, "a"),
            (1, at(120), 2.0, "b"),
            (2, at(0), 5.0, "a"),
            (2, at(200), 6.0, "b"),
        ],
    )
    stats_view(source)
    fm.features.materialize("stats", end=at(180))
    (back,) = fm.features.materialize("stats", end=at(60), full=True)
    assert back.full is True
    assert fm.features.online({"user_id": [1, 2]}, "stats:score")["score"] == [1.0, 5.0]
    fm.features.materialize("stats", end=at(240))
    # at 240 the latest rows are 1@120 and 2@200
    assert fm.features.online({"user_id": [1, 2]}, "stats:score")["score"] == [2.0, 6.0]


# -- lookups ---------------------------------------------------------------------------------


@pytest.fixture
def materialized(online_backend: str, home: Path) -> fm.FeatureView:
    source = write_rows(
        home.parent / "stats.parquet",
        [
            (1, at(0), 1.0, "bronze"),
            (1, at(60), 1.5, "silver"),
            (2, at(30), 2.0, "gold"),
            (3, at(-600), 3.0, None),
        ],
    )
    view = stats_view(source, ttl=dt.timedelta(hours=1))
    fm.features.materialize("stats", end=at(60))
    return view


def test_lookup_one_and_many_entities(materialized: fm.FeatureView) -> None:
    features = ["stats:score", "stats:tier"]
    one = fm.features.online({"user_id": [2]}, features, as_of=at(60))
    assert one == {"user_id": [2], "score": [2.0], "tier": ["gold"]}
    many = fm.features.online({"user_id": [1, 2, 42, 1, 2]}, features, as_of=at(60))
    assert many == {
        "user_id": [1, 2, 42, 1, 2],
        "score": [1.5, 2.0, None, 1.5, 2.0],  # 42 is unknown; duplicates answered each time
        "tier": ["silver", "gold", None, "silver", "gold"],
    }
    as_rows = fm.features.online(
        [{"user_id": 1}, {"user_id": 42}, {"user_id": 2}], features, as_of=at(60)
    )
    assert as_rows == {
        "user_id": [1, 42, 2],
        "score": [1.5, None, 2.0],
        "tier": ["silver", None, "gold"],
    }
    star = fm.features.online({"user_id": [1]}, "stats:*", as_of=at(60))
    assert star == {"user_id": [1], "score": [1.5], "tier": ["silver"]}
    full = fm.features.online({"user_id": [1]}, "stats:score", as_of=at(60), full_names=True)
    assert full == {"user_id": [1], "stats__score": [1.5]}
    assert fm.features.online({"user_id": []}, features, as_of=at(60)) == {
        "user_id": [],
        "score": [],
        "tier": [],
    }


def test_single_entity_given_as_a_scalar(materialized: fm.FeatureView) -> None:
    """``{"origin": "JFK"}`` is one entity; ``{"user_id": 2}`` must be one too, or a clear error."""
    scalar: Any = 2
    try:
        found = fm.features.online({"user_id": scalar}, "stats:score", as_of=at(60))
    except InvalidArgumentError as exc:
        assert "user_id" in str(exc)
    else:
        assert found == {"user_id": [2], "score": [2.0]}


def test_ttl_is_judged_at_as_of(materialized: fm.FeatureView) -> None:
    def scores(as_of: Any) -> list[Any]:
        return fm.features.online({"user_id": [1, 2, 3]}, "stats:score", as_of=as_of)["score"]

    # user 1 was last seen at 60, user 2 at 30; user 3 long before (already stale at the end)
    assert scores(at(60)) == [1.5, 2.0, None]
    assert scores(at(90)) == [1.5, 2.0, None]  # user 2 exactly one TTL old: still valid
    assert scores(at(90) + dt.timedelta(seconds=1)) == [1.5, None, None]
    assert scores(at(120)) == [1.5, None, None]
    assert scores(at(121)) == [None, None, None]
    assert scores(epoch(at(90))) == [1.5, 2.0, None]  # epoch seconds
    paris = dt.timezone(dt.timedelta(hours=1))
    assert scores(at(150).replace(tzinfo=dt.UTC).astimezone(paris)) == [None, None, None]
    assert scores(at(90).replace(tzinfo=dt.UTC).astimezone(paris)) == [1.5, 2.0, None]
    assert scores(None) == [None, None, None]  # now: all of them are long stale


def test_composite_string_and_integer_keys(online_backend: str, home: Path) -> None:
    store_entity = fm.Entity("store", join_keys=["region", "store_id"])
    source = home.parent / "sales.parquet"
    pd.DataFrame(
        {
            "region": ["north", "north", "south", "north"],
            "store_id": [1, 2, 1, 1],
            "day": pd.to_datetime(["2024-03-01", "2024-03-01", "2024-03-01", "2024-03-02"]),
            "sales": [10, 20, 30, 11],
        }
    ).to_parquet(source)
    view = fm.FeatureView(
        "sales", entities=[store_entity], source=source, timestamp_field="day", features=["sales"]
    )
    fm.features.apply([store_entity, view])
    fm.features.materialize("sales", end=dt.datetime(2024, 3, 3))
    found = fm.features.online(
        {"region": ["north", "south", "north", "south"], "store_id": [1, 1, 2, 2]}, "sales:sales"
    )
    assert found["sales"] == [11, 30, 20, None]


# -- on-demand features -----------------------------------------------------------------------


def per_amount(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "score_per_amount": frame["score"] / frame["amount"],
            "big": frame["amount"] > 10,
        }
    )


def test_on_demand_features_online_equal_offline(materialized: fm.FeatureView) -> None:
    view = fm.OnDemandFeatureView(
        "ratios",
        features=["score_per_amount", "big"],
        transform=per_amount,
        sources=["stats:score"],
        request_fields={"amount": "double"},
    )
    fm.features.apply([view])
    users, amounts = [1, 2, 42, 1], [3.0, 40.0, 5.0, 0.5]
    online = fm.features.online(
        {"user_id": users},
        ["ratios:score_per_amount", "ratios:big"],
        request={"amount": amounts},
        as_of=at(60),
    )
    assert list(online) == ["user_id", "amount", "score_per_amount", "big"]
    entity_rows = pd.DataFrame(
        {"user_id": users, "amount": amounts, "event_time": [at(60)] * len(users)}
    )
    offline = fm.features.training_frame(entity_rows, ["ratios:score_per_amount", "ratios:big"])
    offline_values = [None if pd.isna(v) else v for v in offline["score_per_amount"].tolist()]
    assert online["score_per_amount"] == offline_values
    assert online["score_per_amount"] == [0.5, 0.05, None, 3.0]
    assert online["big"] == offline["big"].tolist() == [False, True, False, False]
    with pytest.raises(InvalidArgumentError, match="'amount'"):
        fm.features.online({"user_id": users}, ["ratios:big"], as_of=at(60))


# -- the cache ---------------------------------------------------------------------------------

_MATERIALIZE = textwrap.dedent(
    """
    import datetime as dt
    import sys

    import forgeml as fm

    (result,) = fm.features.materialize("stats", end=dt.datetime.fromisoformat(sys.argv[1]))
    print(result.full, result.entities_written)
    """
)


def materialize_elsewhere(end: dt.datetime) -> str:
    """Materializes in another process, with the same settings as this one."""
    done = subprocess.run(
        [sys.executable, "-c", _MATERIALIZE, end.isoformat()],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_cache_sees_a_materialization_in_another_process(online_backend: str, home: Path) -> None:
    directory = home.parent / "stats"
    write_rows(directory / "part-0.parquet", [(1, at(0), 1.0, "a"), (2, at(0), 2.0, "a")])
    stats_view(directory)
    fm.features.materialize("stats", end=at(60))

    client = FeatureClient()
    assert client.get({"user_id": [1, 2]}, "stats:score")["score"] == [1.0, 2.0]
    assert client.get({"user_id": [1, 2]}, "stats:score")["score"] == [1.0, 2.0]
    cache = client.stats()["cache"]
    assert (cache["hits"], cache["misses"], cache["size"]) == (2, 2, 2)
    assert client.stats()["lookups"] == 2

    write_rows(directory / "part-1.parquet", [(1, at(90), 10.0, "b")])
    assert materialize_elsewhere(at(120)) == "False 1"  # incremental: only user 1 rewritten

    def sees_new_value() -> bool:
        return client.get({"user_id": [1]}, "stats:score")["score"] == [10.0]

    if online_backend == "sqlite":
        assert sees_new_value()  # the change log is read before the lookup
    else:
        assert wait_for(sees_new_value, 2.0)  # pub/sub delivers on a thread of its own
    cache = client.stats()["cache"]
    assert cache["invalidations"] >= 1
    before = (cache["hits"], cache["misses"])
    assert client.get({"user_id": [2]}, "stats:score")["score"] == [2.0]
    cache = client.stats()["cache"]
    assert (cache["hits"], cache["misses"]) == (before[0] + 1, before[1])  # still cached


def test_new_view_version_replaces_the_old_one_online(online_backend: str, home: Path) -> None:
    old = write_rows(
        home.parent / "v1.parquet",
        [(1, at(0), 1.0, "a"), (2, at(0), 2.0, "a"), (3, at(0), 3.0, "a")],
    )
    stats_view(old, features=["score"])
    client = FeatureClient()  # a long-lived, cached client
    fm.features.materialize("stats", end=at(60))
    assert client.get({"user_id": [1, 2, 3]}, "stats:score")["score"] == [1.0, 2.0, 3.0]

    new = write_rows(
        home.parent / "v2.parquet", [(1, at(0), 10.0, "gold"), (2, at(30), 20.0, "silver")]
    )
    stats_view(new)  # another source and another feature: version 2
    (result,) = fm.features.materialize("stats", end=at(60))
    assert (result.version, result.full) == (2, True)
    expected = {"user_id": [1, 2, 3], "score": [10.0, 20.0, None], "tier": ["gold", "silver", None]}
    features = ["stats:score", "stats:tier"]
    assert fm.features.online({"user_id": [1, 2, 3]}, features) == expected
    assert client.get({"user_id": [1, 2, 3]}, features) == expected


# -- skew ----------------------------------------------------------------------------------------


def test_skew_check_finds_tampered_values(materialized: fm.FeatureView) -> None:
    report = fm.features.check_skew("stats", entities={"user_id": [1, 2, 3, 42]})
    assert report.ok and report.checked == 4 and report.mismatched_entities == 0
    sampled = fm.features.check_skew("stats")  # keys drawn from the online store
    assert sampled.ok and sampled.checked == 3

    store = open_store()
    (_version, ts, payload) = store.read("stats", ["2"])[0]  # type: ignore[misc]
    assert orjson.loads(payload) == [1, 2.0, "gold"]
    store.write("stats", ["2"], [ts], [orjson.dumps([1, 2.5, "gold"])])

    tampered = fm.features.check_skew("stats", entities={"user_id": [1, 2, 3]})
    assert not tampered.ok
    assert tampered.mismatched_entities == 1
    assert tampered.mismatches_by_feature == {"score": 1}
    (example,) = tampered.examples
    assert example["entity"] == {"user_id": 2} and example["feature"] == "score"
    assert math.isclose(example["online"], 2.5) and math.isclose(example["offline"], 2.0)
    assert "score: 1 mismatches" in str(tampered)


def test_skew_check_is_clean_for_time_and_date_features(online_backend: str, home: Path) -> None:
    source = home.parent / "visits.parquet"
    times = pd.to_datetime(["2024-03-01 10:00", "2024-03-01 11:00"])
    pd.DataFrame(
        {
            "user_id": [1, 2],
            "ts": times,
            "last_visit": times.tz_localize("UTC").tz_convert("Asia/Tokyo"),
            "last_visit_naive": times,
            "signup_day": [dt.date(2023, 1, 5), dt.date(2023, 2, 6)],
        }
    ).to_parquet(source)
    view = fm.FeatureView(
        "visits",
        entities=[USER],
        source=source,
        timestamp_field="ts",
        features=["last_visit", "last_visit_naive", "signup_day"],
    )
    fm.features.apply([USER, view])
    fm.features.materialize("visits", end=at(120))
    report = fm.features.check_skew("visits", entities={"user_id": [1, 2]})
    assert report.mismatches_by_feature == {}
    assert report.ok


# -- errors --------------------------------------------------------------------------------------


def test_lookup_of_a_view_never_materialized(materialized: fm.FeatureView, home: Path) -> None:
    source = write_rows(home.parent / "other.parquet", [(1, at(0), 1.0, "a")])
    never = fm.FeatureView(
        "never", entities=[USER], source=source, timestamp_field="ts", features=["score"]
    )
    fm.features.apply([never])
    with pytest.raises(NotFoundError, match=r"'never'.*forgeml features materialize never"):
        fm.features.online({"user_id": [1]}, ["never:score"])


def test_lookup_without_the_key_column(materialized: fm.FeatureView) -> None:
    with pytest.raises(InvalidArgumentError, match="'user_id'"):
        fm.features.online({"user": [1]}, ["stats:score"])
    with pytest.raises(NotFoundError, match="'speed'"):
        fm.features.online({"user_id": [1]}, ["stats:speed"])


def test_lookups_during_a_version_switch_never_go_null(online_backend: str, home: Path) -> None:
    """While a new version is being written, every entity keeps the old or the new value."""
    users = list(range(10_001))  # more than one write chunk, so there is a halfway point
    times = pd.Series([at(0)] * len(users)).astype("datetime64[us]")
    for name, factor in (("v1", 1.0), ("v2", 10.0)):
        frame = pd.DataFrame({"user_id": users, "ts": times, "score": [u * factor for u in users]})
        frame.to_parquet(home.parent / f"{name}.parquet")
    stats_view(home.parent / "v1.parquet", features=["score"])
    fm.features.materialize("stats", end=at(60))
    stats_view(home.parent / "v2.parquet", features=["score"])

    halfway: list[list[Any]] = []

    def look_up_midway(view: str, written: int, total: int) -> None:
        if 0 < written < total:
            client = FeatureClient(cache=False)
            halfway.append(client.get({"user_id": users}, "stats:score")["score"])

    fm.features.materialize("stats", end=at(60), progress=look_up_midway)
    assert halfway, "the materialization had no halfway point"
    for scores in halfway:
        wrong = [(u, s) for u, s in zip(users, scores, strict=True) if s not in (u, u * 10.0)]
        assert not wrong, f"{len(wrong)} entities served no valid value, e.g. {wrong[:3]}"
    assert fm.features.online({"user_id": [7]}, "stats:score") == {"user_id": [7], "score": [70.0]}
