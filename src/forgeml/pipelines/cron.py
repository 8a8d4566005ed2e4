"""When a schedule fires: five-field cron expressions and fixed intervals.

A cron expression is evaluated on the wall clock of an IANA time zone, so "0 9 * * 1-5"
means nine in the morning in Paris whether Paris is on summer time or not. Around a
daylight-saving change two rules apply, the ones cron users expect:

- a wall time that does not exist (the hour skipped in spring) fires when the clock
  jumps, shifted forward by the size of the gap: "30 2 * * *" runs at 03:30 that day
  rather than not at all;
- a wall time that happens twice (the hour repeated in autumn) fires once, at its
  first occurrence, unless the hour field is ``*``: then the job runs every so often
  and keeps doing so through both passes of the repeated hour.

Intervals (``every="15m"``) are aligned to the Unix epoch, not to the moment a
scheduler started: every scheduler, and the same one after a restart, computes the same
slots, which is what lets a slot's timestamp serve as the key that prevents a second run.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from forgeml.errors import InvalidArgumentError

_UTC = dt.UTC
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# name, lowest, highest, names (index + offset = value)
_FIELDS: tuple[tuple[str, int, int, tuple[str, ...], int], ...] = (
    ("minute", 0, 59, (), 0),
    ("hour", 0, 23, (), 0),
    ("day-of-month", 1, 31, (), 0),
    ("month", 1, 12, _MONTHS, 1),
    ("day-of-week", 0, 7, _DAYS, 0),
)
# Far enough to find Feb 29 after a non-leap century (2096 -> 2104).
_MAX_DAYS = 366 * 9
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def zone(name: str | None) -> ZoneInfo:
    """The IANA time zone ``name`` (UTC when None); an unknown name is an error naming it."""
    if name is None or name == "UTC":
        return ZoneInfo("UTC")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidArgumentError(
            f"time zone {name!r} is not an IANA time zone name (like 'Europe/Paris' or 'UTC')"
        ) from None


def _aware(when: dt.datetime) -> dt.datetime:
    """``when`` with a time zone; a naive datetime is taken to be UTC."""
    return when if when.tzinfo is not None else when.replace(tzinfo=_UTC)


@dataclass(frozen=True)
class Cron:
    """A parsed cron expression; ``next_after`` finds the next time it fires."""

    text: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday ... 6 = Saturday
    days_restricted: bool
    weekdays_restricted: bool
    timezone: str = "UTC"

    @classmethod
    def parse(cls, text: str, timezone: str | None = None) -> Cron:
        """Parse ``text`` (five fields or a macro such as ``@daily``) for ``timezone``.

        Raises InvalidArgumentError naming the field and the value that is wrong.
        """
        tz_name = timezone or "UTC"
        zone(tz_name)
        source = " ".join(text.split())
        expanded = _MACROS.get(source.lower(), source)
        if expanded.startswith("@"):
            known = ", ".join(_MACROS)
            raise InvalidArgumentError(f"cron {text!r}: unknown macro {expanded!r} ({known})")
        parts = expanded.split(" ")
        if len(parts) != 5:
            raise InvalidArgumentError(
                f"cron {text!r}: expected 5 fields (minute hour day-of-month month "
                f"day-of-week), got {len(parts) if expanded else 0}"
            )
        sets = [_field(text, part, spec) for part, spec in zip(parts, _FIELDS, strict=True)]
        weekdays = frozenset(0 if d == 7 else d for d in sets[4])
        return cls(
            text=source,
            minutes=tuple(sorted(sets[0])),
            hours=tuple(sorted(sets[1])),
            days=frozenset(sets[2]),
            months=frozenset(sets[3]),
            weekdays=weekdays,
            days_restricted=not parts[2].startswith("*"),
            weekdays_restricted=not parts[4].startswith("*"),
            timezone=tz_name,
        )

    def matches_day(self, day: dt.date) -> bool:
        """Whether the expression fires on ``day`` (at some hour and minute).

        When both day fields are restricted a day matches if either does (the rule
        of every cron since Vixie's: "0 0 13 * 5" is the 13th and every Friday).
        """
        if day.month not in self.months:
            return False
        in_days = day.day in self.days
        in_weekdays = (day.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return in_days or in_weekdays
        return in_days and in_weekdays

    def next_after(self, when: dt.datetime) -> dt.datetime:
        """The first firing strictly after ``when``, as an aware datetime in the zone.

        A naive ``when`` is taken to be UTC.
        """
        tz = zone(self.timezone)
        after = _aware(when).astimezone(_UTC)  # compared in UTC: same-zone compares ignore fold
        day = after.astimezone(tz).date() - dt.timedelta(days=1)  # a gap can push a slot on
        found: dt.datetime | None = None
        for _ in range(_MAX_DAYS + 2):
            if self.matches_day(day):
                candidate = self._first_on(day, after, tz)
                if candidate is not None and (found is None or candidate < found):
                    found = candidate
            if found is not None and day > found.astimezone(tz).date():
                return found.astimezone(tz)
            day += dt.timedelta(days=1)
        if found is not None:
            return found.astimezone(tz)
        raise InvalidArgumentError(
            f"cron {self.text!r} never fires (no such date within {_MAX_DAYS // 366} years)"
        )

    def _first_on(self, day: dt.date, after: dt.datetime, tz: ZoneInfo) -> dt.datetime | None:
        """The earliest instant (UTC) on ``day``'s wall clock that fires after ``after``."""
        start = dt.datetime.combine(day, dt.time(), tz)
        end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tz)
        offset = start.utcoffset()
        if offset == end.utcoffset() and offset is not None:
            # no DST change today: wall order is time order, one subtraction per candidate
            base = dt.datetime.combine(day, dt.time(), _UTC) - offset
            if base + dt.timedelta(days=1) <= after:
                return None
            for hour in self.hours:
                if base + dt.timedelta(hours=hour + 1) <= after:
                    continue
                for minute in self.minutes:
                    instant = base + dt.timedelta(hours=hour, minutes=minute)
                    if instant > after:
                        return instant
            return None
        every_hour = len(self.hours) == 24
        best: dt.datetime | None = None
        for hour in self.hours:
            for minute in self.minutes:
                wall = dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz)
                for instant in _instants(wall, tz, every_hour):
                    if instant > after and (best is None or instant < best):
                        best = instant
        return best


def _instants(wall: dt.datetime, tz: ZoneInfo, both_folds: bool) -> list[dt.datetime]:
    """The real instants (UTC) a wall time stands for: one, a shifted one in a gap, or two."""
    first = wall.replace(fold=0).astimezone(_UTC)
    if first.astimezone(tz).replace(tzinfo=None) != wall.replace(tzinfo=None):
        # skipped by a spring-forward change: fire when the clock jumps past it
        return [first]
    second = wall.replace(fold=1).astimezone(_UTC)
    if second != first and both_folds:  # repeated by a fall-back change
        return [first, second]
    return [first]


def _field(text: str, part: str, spec: tuple[str, int, int, tuple[str, ...], int]) -> set[int]:
    name, low, high, names, offset = spec
    values: set[int] = set()
    for item in part.split(","):
        where = f"cron {text!r}: {name} field {part!r}"
        if not item:
            raise InvalidArgumentError(f"{where}: empty list item")
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise InvalidArgumentError(f"{where}: step {step_text!r} is not a positive number")
            step = int(step_text)
        if base == "*":
            first, last = low, high
            if name == "day-of-week":
                last = 6  # 7 is only another name for Sunday
        elif "-" in base:
            left, _, right = base.partition("-")
            first = _value(left, where, low, high, names, offset)
            last = _value(right, where, low, high, names, offset)
            if first > last:
                raise InvalidArgumentError(f"{where}: range {base!r} runs backwards")
        else:
            first = _value(base, where, low, high, names, offset)
            last = high if slash else first
        values.update(range(first, last + 1, step))
    return values


def _value(token: str, where: str, low: int, high: int, names: tuple[str, ...], offset: int) -> int:
    lowered = token.lower()
    if lowered in names:
        return names.index(lowered) + offset
    if not token.isdigit():
        raise InvalidArgumentError(f"{where}: {token!r} is not a number or a name")
    value = int(token)
    if not low <= value <= high:
        raise InvalidArgumentError(f"{where}: {value} is outside {low}-{high}")
    return value


@dataclass(frozen=True)
class Every:
    """A fixed interval in seconds, with slots aligned to the Unix epoch."""

    seconds: int

    @classmethod
    def parse(cls, text: str) -> Every:
        """``"30s"``, ``"15m"``, ``"2h"``, ``"1d"`` (or a number of seconds)."""
        match = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", text.lower())
        if match is None:
            raise InvalidArgumentError(
                f"interval {text!r}: expected a number and a unit, like 30s, 15m, 2h or 1d"
            )
        seconds = int(match.group(1)) * _UNITS[match.group(2) or "s"]
        if seconds <= 0:
            raise InvalidArgumentError(f"interval {text!r}: must be at least one second")
        return cls(seconds)

    def next_after(self, when: dt.datetime) -> dt.datetime:
        """The first slot strictly after ``when`` (in UTC)."""
        stamp = _aware(when).timestamp()
        slot = (math.floor(stamp / self.seconds) + 1) * self.seconds
        return dt.datetime.fromtimestamp(slot, _UTC)

    @property
    def text(self) -> str:
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if self.seconds % size == 0:
                return f"{self.seconds // size}{unit}"
        return f"{self.seconds}s"


def next_fire(cron: Cron | Every, after: float) -> float:
    """The next slot after the epoch time ``after``, as epoch seconds."""
    return cron.next_after(dt.datetime.fromtimestamp(after, _UTC)).timestamp()


def latest_due(cron: Cron | Every, due: float, now: float, limit: int = 1000) -> tuple[float, int]:
    """The newest slot at or before ``now``, starting from the due slot ``due``.

    Returns it and how many slots before it were missed (at most ``limit``: a scheduler
    down for a month on a minutely schedule does not count them one by one).
    """
    if isinstance(cron, Every):
        latest: float = math.floor(now / cron.seconds) * cron.seconds
        latest = max(latest, due)
        return latest, round((latest - due) / cron.seconds)
    latest, skipped = due, 0
    while skipped < limit:
        following = next_fire(cron, latest)
        if following > now:
            return latest, skipped
        latest, skipped = following, skipped + 1
    # Too many to walk: find the newest slot from a window just before now.
    for window in (3600.0, 86400.0, 32 * 86400.0, 367 * 86400.0):
        probe = next_fire(cron, max(latest, now - window))
        if probe <= now:
            while (following := next_fire(cron, probe)) <= now:
                probe = following
            return probe, skipped
    return latest, skipped


Schedule = Cron | Every
