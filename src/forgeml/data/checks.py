"""Declarative data checks, each compiled to SQL that DuckDB runs over the whole table.

Every check is a small dataclass with one contract: ``aggregates`` (SQL aggregates
that go into the suite's single scan), ``evaluate`` (the verdict from their values,
running an extra query only where a check needs one) and ``failing`` (a predicate
that selects failing rows, for samples). Severity ``error`` fails a suite and stops a
pipeline; ``warn`` is recorded.

The same checks are written in YAML with ``type:`` set to the names in ``CHECKS``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar

from forgeml.data import drift as drift_stats
from forgeml.data.profiling import histogram_counts, histogram_sql, quote
from forgeml.data.sources import first_row
from forgeml.errors import InvalidArgumentError

if TYPE_CHECKING:
    import duckdb

SEVERITIES = ("error", "warn")
TYPE_FAMILIES = ("integer", "float", "numeric", "string", "boolean", "datetime", "date", "temporal")
_OTHER = "\x00other"


@dataclass
class Context:
    """What checks see: the data (as the DuckDB view ``data``), its columns, a reference."""

    connection: duckdb.DuckDBPyConnection
    kinds: dict[str, str]
    types: dict[str, str]
    row_count: int = 0
    reference: dict[str, Any] | None = None
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    # Columns shown to hold no value twice and no null: rows that differ there differ.
    key_columns: set[str] = field(default_factory=set)

    def scalar(self, sql: str) -> Any:
        row = first_row(self.connection, sql)
        return None if row is None else row[0]


@dataclass(frozen=True)
class Outcome:
    passed: bool
    observed: Any
    failing_count: int | None = None
    message: str = ""


@dataclass(kw_only=True)
class Check:
    """Base of all checks; ``name`` defaults to the type and column."""

    kind: ClassVar[str] = ""
    late: ClassVar[bool] = False  # evaluated after the others, which it may learn from
    severity: str = "error"
    name: str | None = None

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise InvalidArgumentError(
                f"{self.kind}: severity must be 'error' or 'warn', got {self.severity!r}"
            )

    @property
    def title(self) -> str:
        column = getattr(self, "column", None)
        return self.name or (f"{self.kind}({column})" if column else self.kind)

    def needs(self) -> list[str]:
        """Columns that must exist for the check to run."""
        column = getattr(self, "column", None)
        return [column] if column else []

    def aggregates(self, ctx: Context) -> list[str]:
        return []

    def evaluate(self, ctx: Context, values: list[Any]) -> Outcome:
        raise NotImplementedError

    def failing(self, ctx: Context) -> str | None:
        """A SQL predicate true for failing rows, or None when rows cannot fail alone."""
        return None

    def expected(self) -> str:
        return ""

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.kind}
        for item in fields(self):
            value = getattr(self, item.name)
            default = item.default if item.default is not MISSING else None
            if value != default or item.name == "column":
                data[item.name] = list(value) if isinstance(value, tuple) else value
        return data


# -- schema ------------------------------------------------------------------------------


@dataclass
class ColumnsPresent(Check):
    kind: ClassVar[str] = "columns_present"
    columns: list[str]

    def needs(self) -> list[str]:
        return []

    def evaluate(self, ctx: Context, values: list[Any]) -> Outcome:
        missing = [c for c in self.columns if c not in ctx.kinds]
        return Outcome(
            not missing,
            {"missing": missing},
            len(missing),
            f"missing: {', '.join(missing)}" if missing else "",
        )

    def expected(self) -> str:
        return f"columns {', '.join(self.columns)}"


@dataclass
class ColumnType(Check):
    kind: ClassVar[str] = "column_type"
    column: str
    dtype: str

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.dtype not in TYPE_FAMILIES:
            raise InvalidArgumentError(
                f"column_type({self.column}): dtype must be one of {', '.join(TYPE_FAMILIES)}, "
                f"got {self.dtype!r}"
            )

    def evaluate(self, ctx: Context, values: list[Any]) -> Outcome:
        kind, duckdb_type = ctx.kinds[self.column], ctx.types[self.column].upper()
        accepted = {
            "integer": kind == "integer",
            "float": kind == "float",
            "numeric": kind in ("integer", "float"),
            "string": kind == "string",
            "boolean": kind == "boolean",
            "datetime": duckdb_type.startswith("TIMESTAMP"),
            "date": duckdb_type == "DATE",
            "temporal": kind == "temporal",
        }[self.dtype]
        return Outcome(accepted, duckdb_type.split("(")[0])

    def expected(self) -> str:
        return self.dtype


# -- values ------------------------------------------------------------------------------


@dataclass
class NotNull(Check):
    """At most ``max_fraction`` of the values may be missing (0 by default)."""

    kind: ClassVar[str] = "not_null"
    column: str
    max_fraction: float = 0.0

    def aggregates(self, ctx: Context) -> list[str]:
        return [f"count({quote(self.column)})"]  # non-null values: cheaper than a filter

    def evaluate(self, ctx: Context, values: list[Any]) -> Outcome:
        nulls = ctx.row_count - int(values[0] or 0)
        fraction = nulls / ctx.row_count if ctx.row_count else 0.0
        return Outcome(
            fraction <= self.max_fraction, {"nulls": nulls, "fraction": round(fraction, 6)}, nulls
        )

    def failing(self, ctx: Context) -> str:
        return f"{quote(self.column)} IS NULL"

    def expected(self) -> str:
        return "no nulls" if self.max_fraction == 0 else f"null fraction <= {self.max_fraction}"


@dataclass
class InRange(Check):
    kind: ClassVar[str] = "in_range"
    column: str
    min: float | str | None = None
    max: float | str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.min is None and self.max is None:
            raise InvalidArgumentError(f"in_range({self.column}): give min, max or both")

    def _outside(self, ctx: Context) -> str:
        column = quote(self.column)
        if ctx.kinds.get(self.column) == "temporal":
            bounds = [
                f"{column} < TIMESTAMP '{self.min}'" if self.min is not None else "",
                f"{column} > TIMESTAMP '{self.max}'" if self.max is not None else "",
            ]
        else:
            bounds = [
                f"{column} < {self.min!r}" if self.min is not None else "",
                f"{column} > {self.max!r}" if self.max is not None else "",
                f"isnan({column})" if ctx.kinds.get(self.column) == "float" else "",
            ]
        return "(" + " OR ".join(b for b in bounds if b) + ")"

    def _value(self, ctx: Context) -> str:
        """The column as a number: epoch seconds for times (bounds are ISO dates then)."""
        column = quote(self.column)
        if ctx.kinds.get(self.column) == "temporal":
            return f"epoch(CAST({column} AS TIMESTAMPTZ))"
        return column

    def aggregates(self, ctx: Context) -> list[str]:
        # min and max settle the common case (everything inside) without a count per row.
        value = self._value(ctx)
        return [f"min({value})", f"max({value})"]

    def evaluate(self, ctx: Context, values: list[Any]) -> Outcome:
        low, high = values
        temporal = ctx.kinds.get(self.column) == "temporal"
        lower = _epoch(self.min) if temporal and self.min is not None else self.min
        upper = _epoch(self.max) if temporal and self.max is not None else self.max
        inside = low is None or (
            low == low
            and high == high  # NaN sorts above every number: never "inside"
            and (lower is None or float(low) >= float(lower))
            and (upper is None or float(high) <= float(upper))
        )
        outside = (
            0
            if inside
            else int(ctx.scalar(f"SELECT count(*) FROM data WHERE {self._outside(ctx)}") or 0)
        )
        shown = (_iso(low), _iso(high)) if temporal else (_plain(low), _plain(high))
        return Outcome(
            outside == 0, {"outside": outside, "min": shown[0], "max": shown[1]}, outside
        )

    def failing(self, ctx: Context) -> str:
        return self._outside(ctx)

    def expected(self) -> str:
        low = "-inf" if self.min is None else self.min
        high = "inf" if self.max is None else self.max
        return f"within [{low}, {high}]"


@dataclass
class InSet(Check):
    """Allowed categories: any other value fails (nulls are the business of not_null)."""

    kind: ClassVar[str] = "in_set"
    column: str
    values: list[Any]

    def _outside(self, ctx: Context | None = None) -> str:
        allowed = ", ".join(_sql_text(v) for v in self.values)
        column = quote(self.column)
        if ctx is None or ctx.kinds.get(self.column) != "string":
            column = f"CAST({column} AS VARCHAR)"
        return f"({column} IS NOT NULL AND {column} NOT IN ({allowed}))"

    def aggregates(self, ctx: Context) -> list[str]:
        return [f"count(*) FILTER (WHERE {self._outside(ctx)})"]

    def evaluate(self, ctx: Context, values: list[Any]) -> Outcome:
        outside = int(values[0] or 0)
        unexpected: list[Any] = []
        if outside:
            unexpected = [
                row[0]
                for row in ctx.connection.sql(
                    f"SELECT DISTINCT CAST({quote(self.column)} AS VARCHAR) AS v FROM data "
                    f"WHERE {self._outside(ctx)} ORDER BY v LIMIT 10"
                ).fetchall()
            ]
        message = f"unexpected values: {', '.join(map(str, unexpected))}" if unexpected else ""
        return Outcome(
            outside == 0, {"outside": outside, "unexpected": unexpected}, outside, message
        )

    def failing(self, ctx: Context) -> str:
        return self._outside(ctx)

    def expected(self) -> str:
        shown = ", ".join(map(str, self.values[:8]))
        return f"one of {shown}{', ...' if len(self.values) > 8 else ''}"


@dataclass
class Unique(Check):
    kind: ClassVar[str] = "unique"
    column: str

    def aggregates(self, ctx: Context) -> list[str]:
        column = quote(self.column)
        return [f"count({column})", f"count(DISTINCT {column})"]

    def evaluate(self, ctx: Context, values: list[Any]) -> Outcome:
        present, distinct = int(values[0] or 0), int(values[1] or 0)
        duplicates = present - distinct
        if duplicates == 0 and present == ctx.row_count:
            ctx.key_columns.add(self.column)
        return Outcome(duplicates == 0, {"duplicates": duplicates}, duplicates)

    def failing(self, ctx: Context) -> str:
        column = quote(self.column)
        return f"{column} IN (SELECT {column} FROM data GROUP BY {column} HAVING count(*) > 1)"

    def expected(self) -> str:
        return "every value once"


@dataclass
class NoDuplicateRows(Check):
    """No row twice. When a unique check in the same suite showed a key column, that
    settles it for free. Otherwise rows are compared by a 64-bit hash; only rows whose
    hashes collide are compared in full, so the answer is exact and the common case (no
    duplicates) costs one hash per row."""

    kind: ClassVar[str] = "no_duplicate_rows"
    late: ClassVar[bool] = True  # evaluated after the unique checks

    @staticmethod
    def _hash(ctx: Context) -> str:
        return f"hash({', '.join(quote(c) for c in ctx.kinds)})"

    def evaluate(self, ctx: Context, values: list[Any]) -> Outcome:
        if ctx.key_columns:
            key = sorted(ctx.key_columns)[0]
            return Outcome(True, {"duplicate_rows": 0, "key": key}, 0)
        distinct_hashes = int(
            ctx.scalar(f"SELECT count(DISTINCT {self._hash(ctx)}) FROM data") or 0
        )
        if distinct_hashes == ctx.row_count:
            return Outcome(True, {"duplicate_rows": 0}, 0)
        row_hash = self._hash(ctx)
        suspects = (
            f"{row_hash} IN (SELECT {row_hash} AS h FROM data GROUP BY h HAVING count(*) > 1)"
        )
        rows, distinct = ctx.connection.sql(
            f"SELECT count(*), (SELECT count(*) FROM (SELECT DISTINCT * FROM data "
            f"WHERE {suspects})) FROM data WHERE {suspects}"
        ).fetchall()[0]
        duplicates = int(rows) - int(distinct)
        return Outcome(duplicates == 0, {"duplicate_rows": duplicates}, duplicates)

    def failing(self, ctx: Context) -> str:
        columns = ", ".join(quote(c) for c in ctx.kinds)
        return f"({columns}) IN (SELECT ({columns}) FROM data GROUP BY ALL HAVING count(*) > 1)"

    def expected(self) -> str:
        return "no row twice"


@dataclass
class NotConstant(Check):
    """Fails when one value takes more than ``max_fraction`` of the non-null rows."""

    kind: ClassVar[str] = "not_constant"
    column: str
    max_fraction: float = 0.99

    def aggregates(self, ctx: Context) -> list[str]:
        column = quote(self.column)
        return [f"count({column})", f"approx_count_distinct({column})"]

    def evaluate(self, ctx: Context, values: list[Any]) -> Outcome:
        count, distinct = int(values[0] or 0), int(values[1] or 0)
        # If one value held more than max_fraction of the rows, the others could take at
        # most the rest: a column with (many) more distinct values cannot fail, and needs
        # no count of its top value. The margin covers the estimate's error.
        if distinct > 1.25 * ((1 - self.max_fraction) * count + 1) + 10:
            return Outcome(True, {"distinct": distinct})
        column = quote(self.column)
        row = first_row(
            ctx.connection,
            f"SELECT CAST({column} AS VARCHAR), count(*) AS n, sum(count(*)) OVER () FROM data "
            f"WHERE {column} IS NOT NULL GROUP BY {column} ORDER BY n DESC",
        )
        if row is None:
            return Outcome(False, {"top_value": None, "fraction": 1.0}, None, "no values at all")
        value, top, total = row
        fraction = int(top) / int(total)
        return Outcome(
            fraction <= self.max_fraction, {"top_value": value, "fraction": round(fraction, 6)}
        )

    def expected(self) -> str:
        return f"top value <= {self.max_fraction:.0%} of rows"


@dataclass
class Matches(Check):
    """Every non-null value matches the regular expression (RE2 syntax, whole value)."""

    kind: ClassVar[str] = "matches"
    column: str
    pattern: str

    def __post_init__(self) -> None:
        super().__post_init__()
        try:
            re.compile(self.pattern)
        except re.error as exc:
            raise InvalidArgumentError(
                f"matches({self.column}): bad pattern {self.pattern!r}: {exc}"
            ) from None

    def _mismatch(self) -> str:
        column = quote(self.column)
        return (
            f"({column} IS NOT NULL AND NOT regexp_full_match(CAST({column} AS VARCHAR), "
            f"{_sql_text(self.pattern)}))"
        )

    def aggregates(self, ctx: Context) -> list[str]:
        return [f"count(*) FILTER (WHERE {self._mismatch()})"]

    def evaluate(self, ctx: Context, values: list[Any]) -> Outcome:
        mismatches = int(values[0] or 0)
        return Outcome(mismatches == 0, {"mismatches": mismatches}, mismatches)

    def failing(self, ctx: Context) -> str:
        return self._mismatch()

    def expected(self) -> str:
        return f"matches {self.pattern}"


# -- table -------------------------------------------------------------------------------


@dataclass
class RowCount(Check):
    kind: ClassVar[str] = "row_count"
    min: int | None = None
    max: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.min is None and self.max is None:
            raise InvalidArgumentError("row_count: give min, max or both")

    def evaluate(self, ctx: Context, values: list[Any]) -> Outcome:
        rows = ctx.row_count
        ok = (self.min is None or rows >= self.min) and (self.max is None or rows <= self.max)
        return Outcome(ok, rows)

    def expected(self) -> str:
        low = self.min if self.min is not None else 0
        high = self.max if self.max is not None else "inf"
        return f"between {low} and {high}"


@dataclass
class Fresh(Check):
    """The newest timestamp is no older than ``max_age`` (e.g. "36h", "2d", or seconds)."""

    kind: ClassVar[str] = "fresh"
    column: str
    max_age: str | float

    def __post_init__(self) -> None:
        super().__post_init__()
        self.seconds = parse_duration(self.max_age)

    def aggregates(self, ctx: Context) -> list[str]:
        # Seconds since the epoch (naive timestamps are taken as UTC).
        return [f"epoch(max(CAST({quote(self.column)} AS TIMESTAMPTZ)))"]

    def evaluate(self, ctx: Context, values: list[Any]) -> Outcome:
        if values[0] is None:
            return Outcome(False, {"newest": None}, None, "no timestamps at all")
        newest = dt.datetime.fromtimestamp(float(values[0]), tz=dt.UTC)
        age = (ctx.now - newest).total_seconds()
        return Outcome(
            age <= self.seconds, {"newest": newest.isoformat(), "age_seconds": round(age, 3)}
        )

    def expected(self) -> str:
        return f"newest within {self.max_age}"


@dataclass
class Drift(Check):
    """The column's distribution compared with a reference (a dataset or a profile).

    ``reference`` names a dataset version (``datasets:/name/3``) to compare with; the
    reference given to ``Suite.validate`` is used when it is not set.
    """

    kind: ClassVar[str] = "drift"
    column: str
    method: str = "psi"
    threshold: float | None = None
    reference: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.method not in drift_stats.METHODS:
            raise InvalidArgumentError(
                f"drift({self.column}): method must be one of {', '.join(drift_stats.METHODS)}, "
                f"got {self.method!r}"
            )

    def evaluate(self, ctx: Context, values: list[Any]) -> Outcome:
        reference = _reference_profile(self.reference) if self.reference else ctx.reference
        if reference is None:
            return Outcome(False, None, None, "no reference to compare with: pass reference=")
        column_profile = reference.get("columns", {}).get(self.column)
        if column_profile is None:
            return Outcome(False, None, None, f"the reference has no column {self.column!r}")
        if "drift_edges" in column_profile and ctx.kinds.get(self.column) in (
            "integer",
            "float",
            "temporal",
        ):
            return self._numeric(ctx, column_profile)
        if "top" in column_profile:
            return self._categorical(ctx, column_profile)
        return Outcome(
            False, None, None, f"the reference holds no distribution for {self.column!r}"
        )

    def _numeric(self, ctx: Context, reference: dict[str, Any]) -> Outcome:
        from forgeml.data.profiling import _as_number

        value = _as_number(ctx.kinds[self.column], quote(self.column))
        if self.method == "wasserstein":
            histogram = reference.get("histogram") or {"edges": [], "counts": []}
            edges = histogram["edges"]
            expected_counts = histogram["counts"]
            current = _binned(ctx, value, edges[1:-1])
            result = drift_stats.compare(
                "wasserstein",
                expected_counts,
                current,
                self.threshold,
                edges=edges,
                scale=reference.get("std"),
            )
        else:
            edges = reference["drift_edges"]
            expected_counts = reference["drift_counts"]
            current = _binned(ctx, value, edges)
            result = drift_stats.compare(self.method, expected_counts, current, self.threshold)
        return _drift_outcome(result)

    def _categorical(self, ctx: Context, reference: dict[str, Any]) -> Outcome:
        categories = [str(entry["value"]) for entry in reference["top"]]
        expected_counts = [int(entry["count"]) for entry in reference["top"]]
        expected_counts.append(int(reference.get("other_count", 0)))
        column = f"CAST({quote(self.column)} AS VARCHAR)"
        listed = ", ".join(_sql_text(c) for c in categories) or "NULL"
        found = (
            ctx.scalar(
                f"SELECT histogram(CASE WHEN {column} IN ({listed}) THEN {column} "
                f"ELSE {_sql_text(_OTHER)} END) FROM data WHERE {column} IS NOT NULL"
            )
            or {}
        )
        current = [int(found.get(c, 0)) for c in categories] + [int(found.get(_OTHER, 0))]
        method = "psi" if self.method in ("ks", "wasserstein") else self.method
        return _drift_outcome(drift_stats.compare(method, expected_counts, current, self.threshold))

    def expected(self) -> str:
        limit = (
            self.threshold
            if self.threshold is not None
            else drift_stats.DEFAULT_THRESHOLDS[self.method]
        )
        if self.method == "chi2":
            return f"chi2 p-value >= {limit}"
        return f"{self.method} <= {limit}"


def _binned(ctx: Context, value: str, edges: list[float]) -> list[int]:
    return histogram_counts(ctx.scalar(f"SELECT {histogram_sql(value, edges)} FROM data"), edges)


def _drift_outcome(result: drift_stats.DriftStatistic) -> Outcome:
    observed = {"method": result.method, "statistic": round(result.statistic, 6)}
    if result.p_value is not None:
        observed["p_value"] = result.p_value
    return Outcome(not result.drifted, observed)


def _reference_profile(uri: str) -> dict[str, Any]:
    from forgeml.data.dataset import Dataset

    match = re.fullmatch(r"(?:datasets:/)?([^/@]+)(?:[/@](\d+))?", uri.strip())
    if match is None:
        raise InvalidArgumentError(f"reference {uri!r} is not a dataset such as datasets:/name/3")
    version = int(match.group(2)) if match.group(2) else None
    return Dataset.get(match.group(1), version).profile


# -- helpers -----------------------------------------------------------------------------


def _epoch(value: Any) -> float:
    moment = dt.datetime.fromisoformat(str(value))
    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).timestamp()


def _iso(seconds: Any) -> str | None:
    if seconds is None:
        return None
    return dt.datetime.fromtimestamp(float(seconds), tz=dt.UTC).isoformat()


def parse_duration(value: str | float) -> float:
    """Seconds in ``90``, ``"90s"``, ``"15m"``, ``"6h"``, ``"2d"`` or ``"1w"``."""
    if isinstance(value, int | float):
        return float(value)
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", str(value))
    if match is None:
        raise InvalidArgumentError(
            f"duration {value!r} is not understood: use a number of seconds or 90s, 15m, 6h, 2d, 1w"
        )
    unit = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[match.group(2)]
    return float(match.group(1)) * unit


def _sql_text(value: Any) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _plain(value: Any) -> Any:
    """A JSON-friendly form of a value DuckDB returned."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, float) and value != value:
        return None
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, bytes | bytearray):
        return value.hex()
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return str(value)


CHECKS: dict[str, type[Check]] = {
    cls.kind: cls
    for cls in (
        ColumnsPresent,
        ColumnType,
        NotNull,
        InRange,
        InSet,
        Unique,
        NoDuplicateRows,
        NotConstant,
        Matches,
        RowCount,
        Fresh,
        Drift,
    )
}


def check_from_dict(data: Mapping[str, Any], where: str = "check") -> Check:
    """Build a check from its dict (YAML) form, naming ``where`` in every error."""
    if not isinstance(data, Mapping):
        raise InvalidArgumentError(f"{where}: expected a mapping with a 'type', got {data!r}")
    kind = data.get("type")
    cls = CHECKS.get(str(kind))
    if cls is None:
        raise InvalidArgumentError(
            f"{where}: unknown check type {kind!r} (known: {', '.join(sorted(CHECKS))})"
        )
    allowed = {f.name for f in fields(cls) if f.init}
    arguments = {k: v for k, v in data.items() if k != "type"}
    unknown = sorted(set(arguments) - allowed)
    if unknown:
        raise InvalidArgumentError(
            f"{where} ({kind}): unknown field {unknown[0]!r} (fields: {', '.join(sorted(allowed))})"
        )
    missing = sorted(
        f.name
        for f in fields(cls)
        if f.init
        and f.default is MISSING
        and f.default_factory is MISSING
        and f.name not in arguments
    )
    if missing:
        raise InvalidArgumentError(f"{where} ({kind}): missing field {missing[0]!r}")
    try:
        return cls(**arguments)
    except InvalidArgumentError as exc:
        raise InvalidArgumentError(f"{where}: {exc}") from None
    except TypeError as exc:
        raise InvalidArgumentError(f"{where} ({kind}): {exc}") from None


__all__ = [
    "CHECKS",
    "Check",
    "ColumnType",
    "ColumnsPresent",
    "Context",
    "Drift",
    "Fresh",
    "InRange",
    "InSet",
    "Matches",
    "NoDuplicateRows",
    "NotConstant",
    "NotNull",
    "Outcome",
    "RowCount",
    "Unique",
    "check_from_dict",
    "parse_duration",
]
