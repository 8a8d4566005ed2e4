"""Cron expressions and intervals: parsing, errors naming the field, and next firing times."""

from __future__ import annotations

import datetime as dt

import pytest

from forgeml.errors import InvalidArgumentError
from forgeml.pipelines.cron import Cron, Every, latest_due

PARIS = "Europe/Paris"
NEW_YORK = "America/New_York"


def after(expr: str, when: str, tz: str | None = None) -> str:
    return Cron.parse(expr, tz).next_after(dt.datetime.fromisoformat(when)).isoformat()


@pytest.mark.parametrize(
    ("expr", "when", "expected"),
    [
        ("* * * * *", "2024-01-01T00:00:00+00:00", "2024-01-01T00:01:00+00:00"),
        ("* * * * *", "2024-01-01T00:00:30+00:00", "2024-01-01T00:01:00+00:00"),
        ("*/15 * * * *", "2024-01-01T00:14:59+00:00", "2024-01-01T00:15:00+00:00"),
        ("5-20/5 * * * *", "2024-01-01T00:20:00+00:00", "2024-01-01T01:05:00+00:00"),
        ("0 9-17/4 * * *", "2024-01-01T13:00:00+00:00", "2024-01-01T17:00:00+00:00"),
        ("0,30 6 * * *", "2024-01-01T06:00:00+00:00", "2024-01-01T06:30:00+00:00"),
        ("0 0 31 * *", "2024-04-01T00:00:00+00:00", "2024-05-31T00:00:00+00:00"),
        ("0 0 31 * *", "2024-05-31T00:00:00+00:00", "2024-07-31T00:00:00+00:00"),
        ("0 0 30 * *", "2024-01-30T00:00:00+00:00", "2024-03-30T00:00:00+00:00"),
        ("0 0 29 2 *", "2024-03-01T00:00:00+00:00", "2028-02-29T00:00:00+00:00"),
        ("0 0 29 2 *", "2097-01-01T00:00:00+00:00", "2104-02-29T00:00:00+00:00"),
        ("0 0 1 jan *", "2024-06-01T00:00:00+00:00", "2025-01-01T00:00:00+00:00"),
        ("0 12 * * mon-fri", "2024-01-05T12:00:00+00:00", "2024-01-08T12:00:00+00:00"),
        ("0 12 * * 0", "2024-01-01T00:00:00+00:00", "2024-01-07T12:00:00+00:00"),
        ("0 12 * * 7", "2024-01-01T00:00:00+00:00", "2024-01-07T12:00:00+00:00"),
        ("0 12 * * SUN", "2024-01-01T00:00:00+00:00", "2024-01-07T12:00:00+00:00"),
        ("0 0 13 * fri", "2024-01-01T00:00:00+00:00", "2024-01-05T00:00:00+00:00"),
        ("0 0 13 * fri", "2024-01-12T00:00:00+00:00", "2024-01-13T00:00:00+00:00"),
        ("0 0 * jun,dec *", "2024-07-01T00:00:00+00:00", "2024-12-01T00:00:00+00:00"),
        ("@hourly", "2024-01-01T10:59:00+00:00", "2024-01-01T11:00:00+00:00"),
        ("@daily", "2024-01-01T10:00:00+00:00", "2024-01-02T00:00:00+00:00"),
        ("@midnight", "2024-12-31T23:59:00+00:00", "2025-01-01T00:00:00+00:00"),
        ("@weekly", "2024-01-01T00:00:00+00:00", "2024-01-07T00:00:00+00:00"),
        ("@monthly", "2024-01-15T00:00:00+00:00", "2024-02-01T00:00:00+00:00"),
        ("@yearly", "2024-01-15T00:00:00+00:00", "2025-01-01T00:00:00+00:00"),
        ("@annually", "2024-01-15T00:00:00+00:00", "2025-01-01T00:00:00+00:00"),
    ],
)
def test_next_after_in_utc(expr: str, when: str, expected: str) -> None:
    assert after(expr, when) == expected


def test_a_naive_datetime_is_utc() -> None:
    assert Cron.parse("0 * * * *").next_after(dt.datetime(2024, 1, 1, 5, 1)).isoformat() == (
        "2024-01-01T06:00:00+00:00"
    )


def test_wall_clock_of_the_time_zone() -> None:
    assert after("0 9 * * *", "2024-01-01T09:00:00+00:00", PARIS) == "2024-01-02T09:00:00+01:00"
    assert after("0 9 * * *", "2024-07-01T06:00:00+00:00", PARIS) == "2024-07-01T09:00:00+02:00"


def test_spring_forward_gap_fires_when_the_clock_jumps() -> None:
    # Paris skips 02:00-03:00 on 2024-03-31
    assert after("30 2 * * *", "2024-03-30T12:00:00+01:00", PARIS) == "2024-03-31T03:30:00+02:00"
    assert after("30 2 * * *", "2024-03-31T12:00:00+02:00", PARIS) == "2024-04-01T02:30:00+02:00"
    # New York skips 02:00-03:00 on 2024-03-10; hourly jobs lose nothing but the hour
    cron = Cron.parse("0 * * * *", NEW_YORK)
    moment = dt.datetime.fromisoformat("2024-03-10T00:30:00-05:00")
    seen = []
    for _ in range(3):
        moment = cron.next_after(moment)
        seen.append(moment.isoformat())
    assert seen == [
        "2024-03-10T01:00:00-05:00",
        "2024-03-10T03:00:00-04:00",
        "2024-03-10T04:00:00-04:00",
    ]


def test_fall_back_repeated_hour() -> None:
    # Paris repeats 02:00-03:00 on 2024-10-27: a daily job runs once ...
    assert after("30 2 * * *", "2024-10-26T12:00:00+02:00", PARIS) == "2024-10-27T02:30:00+02:00"
    assert after("30 2 * * *", "2024-10-27T02:31:00+02:00", PARIS) == "2024-10-28T02:30:00+01:00"
    # ... while a job on every hour runs in both passes
    cron = Cron.parse("*/30 * * * *", PARIS)
    moment = dt.datetime.fromisoformat("2024-10-27T01:40:00+02:00")
    utc = []
    for _ in range(5):
        moment = cron.next_after(moment)
        utc.append(moment.astimezone(dt.UTC).strftime("%H:%M"))
    assert utc == ["00:00", "00:30", "01:00", "01:30", "02:00"]


@pytest.mark.parametrize(
    ("expr", "field", "value"),
    [
        ("61 * * * *", "minute", "61 is outside 0-59"),
        ("* 24 * * *", "hour", "24 is outside 0-23"),
        ("* * 0 * *", "day-of-month", "0 is outside 1-31"),
        ("* * * 13 *", "month", "13 is outside 1-12"),
        ("* * * foo *", "month", "'foo' is not a number or a name"),
        ("* * * * 8", "day-of-week", "8 is outside 0-7"),
        ("*/0 * * * *", "minute", "step '0'"),
        ("5-1 * * * *", "minute", "range '5-1' runs backwards"),
        ("1,,2 * * * *", "minute", "empty list item"),
    ],
)
def test_errors_name_the_field_and_value(expr: str, field: str, value: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        Cron.parse(expr)
    assert f"{field} field" in str(info.value)
    assert value in str(info.value)


def test_other_errors() -> None:
    with pytest.raises(InvalidArgumentError, match="expected 5 fields"):
        Cron.parse("* * * *")
    with pytest.raises(InvalidArgumentError, match="unknown macro '@often'"):
        Cron.parse("@often")
    with pytest.raises(InvalidArgumentError, match="'Mars/Olympus' is not an IANA"):
        Cron.parse("* * * * *", "Mars/Olympus")
    with pytest.raises(InvalidArgumentError, match="never fires"):
        Cron.parse("0 0 30 2 *").next_after(dt.datetime(2024, 1, 1))


def test_intervals() -> None:
    assert [Every.parse(t).seconds for t in ("30s", "15m", "2h", "1d", "45")] == [
        30,
        900,
        7200,
        86400,
        45,
    ]
    start = dt.datetime(2024, 1, 1, 0, 7, 10, tzinfo=dt.UTC)
    assert Every.parse("15m").next_after(start).isoformat() == "2024-01-01T00:15:00+00:00"
    for bad in ("0s", "15x", "m", "-5m"):
        with pytest.raises(InvalidArgumentError, match="interval"):
            Every.parse(bad)


def test_latest_due_fires_the_newest_missed_slot() -> None:
    due = dt.datetime(2024, 1, 1, tzinfo=dt.UTC).timestamp()
    assert latest_due(Every(60), due, due + 605) == (due + 600, 10)
    hourly = Cron.parse("0 * * * *")
    assert latest_due(hourly, due, due + 3 * 3600 + 10) == (due + 3 * 3600, 3)
    minutely = Cron.parse("* * * * *")
    slot, skipped = latest_due(minutely, due, due + 30 * 86400 + 30, limit=100)
    assert slot == due + 30 * 86400
    assert skipped == 100
