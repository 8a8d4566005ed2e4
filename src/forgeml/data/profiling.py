"""Column profiles computed by DuckDB in two scans, whatever the size of the data.

The first scan gathers counts, nulls, approximate distinct counts (HyperLogLog), min,
max, mean, standard deviation and approximate quantiles (t-digest) for every column at
once. The second bins every numeric and temporal column twice: equal-width bins for
charts, and bins at the data's own 5% quantiles for drift statistics (the edges are
stored so a later sample can be binned the same way), and counts categories.

A profile is plain JSON. It is stored with each dataset version and serves as the
reference when data is later checked for drift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from forgeml.data.sources import first_row

if TYPE_CHECKING:
    import duckdb

FORMAT = "forgeml.profile/1"
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
DRIFT_QUANTILES = tuple(round(0.05 * i, 2) for i in range(1, 20))
HISTOGRAM_BINS = 30
TOP_CATEGORIES = 50
EXACT_CATEGORY_LIMIT = 1000
SAMPLE = 32_768

_INTEGER_TYPES = {
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "UHUGEINT",
}
_FLOAT_TYPES = {"FLOAT", "DOUBLE", "REAL"}


def kind_of(duckdb_type: str) -> str:
    """Group a DuckDB type: integer, float, boolean, temporal, string or other."""
    name = duckdb_type.upper()
    if name in _INTEGER_TYPES:
        return "integer"
    if name in _FLOAT_TYPES or name.startswith("DECIMAL"):
        return "float"
    if name == "BOOLEAN":
        return "boolean"
    if name in ("DATE", "TIME") or name.startswith("TIMESTAMP"):
        return "temporal"
    if name == "VARCHAR" or name.startswith("ENUM"):
        return "string"
    return "other"


def quote(name: str) -> str:
    """A column name as a DuckDB identifier, whatever characters it holds."""
    return '"' + name.replace('"', '""') + '"'


def _as_number(kind: str, column: str) -> str:
    """SQL for a column as a double: epoch seconds for times, the value for numbers."""
    if kind == "temporal":
        return f"epoch(CAST({column} AS TIMESTAMP))"
    if kind == "boolean":
        return f"CAST({column} AS INTEGER)"
    return f"CAST({column} AS DOUBLE)"


@dataclass(frozen=True)
class ColumnPlan:
    index: int
    name: str
    duckdb_type: str
    kind: str

    @property
    def sql(self) -> str:
        return quote(self.name)

    @property
    def number(self) -> str:
        """The column as a double: epoch seconds for times, the value for numbers."""
        return _as_number(self.kind, self.sql)

    @property
    def value(self) -> str:
        """Name of the projected column holding the finite numeric value (NULL otherwise)."""
        return f"v{self.index}"

    @property
    def length(self) -> str:
        return f"l{self.index}"

    @property
    def numeric(self) -> bool:
        return self.kind in ("integer", "float", "temporal")


def plan_columns(relation: duckdb.DuckDBPyRelation) -> list[ColumnPlan]:
    return [
        ColumnPlan(index, name, str(dtype), kind_of(str(dtype)))
        for index, (name, dtype) in enumerate(zip(relation.columns, relation.types, strict=True))
    ]


def projected(plans: list[ColumnPlan]) -> str:
    """The data with each derived value computed once per row: finite numbers as doubles,
    string lengths. Aggregates over it then need no per-aggregate filters."""
    parts = ["*"]
    for plan in plans:
        if plan.kind == "float":
            parts.append(
                f"CASE WHEN isfinite({plan.number}) THEN {plan.number} END AS {plan.value}"
            )
        elif plan.numeric:
            parts.append(f"{plan.number} AS {plan.value}")
        elif plan.kind == "string":
            parts.append(f"length(CAST({plan.sql} AS VARCHAR)) AS {plan.length}")
    return "(SELECT " + ", ".join(parts) + " FROM data)"


def _first_scan_sql(plans: list[ColumnPlan]) -> tuple[str, list[tuple[str, str, int]]]:
    """One SELECT over all columns; returns the SQL and (column, field, position) slots."""
    parts = ["count(*)"]
    slots: list[tuple[str, str, int]] = []

    def add(column: str, field: str, expression: str) -> None:
        slots.append((column, field, len(parts)))
        parts.append(expression)

    quantiles = "[" + ", ".join(str(q) for q in QUANTILES + DRIFT_QUANTILES) + "]"
    for plan in plans:
        column = plan.sql
        add(plan.name, "count", f"count({column})")
        if plan.kind == "other":
            continue
        add(plan.name, "distinct", f"approx_count_distinct({column})")
        if plan.numeric:
            value = plan.value
            add(plan.name, "min", f"min({value})")
            add(plan.name, "max", f"max({value})")
            add(plan.name, "mean", f"avg({value})")
            add(plan.name, "std", f"stddev_samp({value})")
            # A fixed-size sample keeps quantiles cheap; at 32,768 values the rank error of
            # a quantile is about 0.3%, plenty for bin edges and summaries.
            add(plan.name, "quantiles", f"reservoir_quantile({value}, {quantiles}, {SAMPLE})")
            if plan.kind == "float":
                add(plan.name, "non_finite", f"count({column}) - count({value})")
            if plan.kind == "integer":
                add(plan.name, "zeros", f"count(*) FILTER (WHERE {column} = 0)")
        elif plan.kind == "string":
            length = plan.length
            add(plan.name, "min_length", f"min({length})")
            add(plan.name, "max_length", f"max({length})")
            add(plan.name, "mean_length", f"avg({length})")
            add(plan.name, "empty", f"count(*) FILTER (WHERE {length} = 0)")
        elif plan.kind == "boolean":
            add(plan.name, "true", f"count(*) FILTER (WHERE {column})")
    return "SELECT " + ",\n  ".join(parts) + " FROM " + projected(plans), slots


def histogram_sql(value: str, edges: list[float], finite: bool = False) -> str:
    """SQL counting ``value`` into bins edges[i-1] < v <= edges[i] (plus one above the last).

    DuckDB finds the bin by binary search, so many bins cost little more than a few.
    """
    listed = "[" + ", ".join(repr(float(edge)) for edge in edges) + "]::DOUBLE[]"
    if finite:  # already NULL where not finite: NULLs are not counted
        return f"histogram({value}, {listed})"
    return f"histogram({value}, {listed}) FILTER (WHERE isfinite({value}))"


def histogram_counts(found: Any, edges: list[float]) -> list[int]:
    """The map ``histogram_sql`` returns, as one count per bin (the last one is overflow)."""
    counts = [0] * (len(edges) + 1)
    position = {float(edge): index for index, edge in enumerate(edges)}
    for key, count in (found or {}).items():
        counts[position.get(float(key), len(edges))] += int(count)
    return counts


def _equal_width_sql(value: str, low: float, high: float, bins: int = HISTOGRAM_BINS) -> str:
    """Equal-width bins by arithmetic (bin i holds [edge i, edge i+1), the last also ``high``):
    counting small integers is twice as fast as searching edges."""
    if high <= low:
        return f"histogram(CAST({value} IS NOT NULL AS INTEGER) - 1)"  # one bin: index 0
    scale = bins / (high - low)
    # NULL stays NULL (and is not counted); least() would have turned it into the last bin.
    index = (
        f"CASE WHEN {value} >= {high!r} THEN {bins - 1} "
        f"ELSE CAST(floor(({value} - {low!r}) * {scale!r}) AS INTEGER) END"
    )
    return f"histogram({index})"


def equal_width_edges(low: float, high: float, bins: int = HISTOGRAM_BINS) -> list[float]:
    """Interior edges of ``bins`` equal bins over [low, high]."""
    width = (high - low) / bins
    return [low + width * i for i in range(1, bins)]


def drift_edges(quantiles: list[float]) -> list[float]:
    """Interior bin edges at the data's 5% quantiles, duplicates (ties) removed."""
    edges: list[float] = []
    for value in quantiles:
        if value is not None and math.isfinite(value) and (not edges or value > edges[-1]):
            edges.append(float(value))
    return edges


def profile_relation(
    connection: duckdb.DuckDBPyConnection, relation: duckdb.DuckDBPyRelation
) -> dict[str, Any]:
    """Profile every column of ``relation`` (registered as ``data`` on ``connection``)."""
    plans = plan_columns(relation)
    connection.register("data", relation)
    try:
        sql, slots = _first_scan_sql(plans)
        row = first_row(connection, sql)
        assert row is not None
        total = int(row[0])
        stats: dict[str, dict[str, Any]] = {plan.name: {} for plan in plans}
        for column, field, position in slots:
            stats[column][field] = row[position]
        columns = {plan.name: _column_profile(plan, stats[plan.name], total) for plan in plans}
        _second_scan(connection, plans, columns)
    finally:
        connection.unregister("data")
    return {"format": FORMAT, "row_count": total, "columns": columns}


def _column_profile(plan: ColumnPlan, stats: dict[str, Any], total: int) -> dict[str, Any]:
    count = int(stats.get("count") or 0)
    profile: dict[str, Any] = {
        "type": "ENUM" if plan.duckdb_type.startswith("ENUM") else plan.duckdb_type,
        "kind": plan.kind,
        "count": count,
        "nulls": total - count,
        "null_fraction": (total - count) / total if total else 0.0,
    }
    if "distinct" in stats:
        profile["distinct"] = min(int(stats["distinct"] or 0), count)
        profile["distinct_approximate"] = True
    if plan.numeric:
        quantiles = list(stats.get("quantiles") or [])
        for field in ("min", "max", "mean", "std"):
            value = stats.get(field)
            profile[field] = None if value is None else float(value)
        profile["quantiles"] = {
            str(q): float(v)
            for q, v in zip(QUANTILES, quantiles[: len(QUANTILES)], strict=False)
            if v is not None
        }
        profile["drift_edges"] = drift_edges(quantiles[len(QUANTILES) :])
        for field in ("non_finite", "zeros"):
            if field in stats:
                profile[field] = int(stats[field] or 0)
    elif plan.kind == "string":
        for field in ("min_length", "max_length", "empty"):
            profile[field] = None if stats.get(field) is None else int(stats[field])
        mean_length = stats.get("mean_length")
        profile["mean_length"] = None if mean_length is None else float(mean_length)
    elif plan.kind == "boolean":
        profile["true"] = int(stats.get("true") or 0)
    return profile


def _second_scan(
    connection: duckdb.DuckDBPyConnection,
    plans: list[ColumnPlan],
    columns: dict[str, dict[str, Any]],
) -> None:
    """Histograms (two binnings) for numbers and times, counts for categories."""
    parts: list[str] = []
    jobs: list[tuple[str, str, Any]] = []
    for plan in plans:
        profile = columns[plan.name]
        if plan.numeric and profile.get("min") is not None:
            low, high = profile["min"], profile["max"]
            edges = equal_width_edges(low, high) if high > low else []
            parts.append(_equal_width_sql(plan.value, low, high))
            jobs.append((plan.name, "histogram", (low, high, edges)))
            drift = profile["drift_edges"]
            parts.append(histogram_sql(plan.value, drift, finite=True))
            jobs.append((plan.name, "drift_counts", drift))
        elif (
            plan.kind in ("string", "boolean")
            and 0 < profile.get("distinct", 0) <= EXACT_CATEGORY_LIMIT
        ):
            parts.append(f"histogram(CAST({plan.sql} AS VARCHAR))")
            jobs.append((plan.name, "categories", None))
        if plan.kind in ("integer", "string") and (
            profile.get("distinct", 0) >= 0.9 * profile.get("count", 0) > 0
        ):
            # A would-be identifier: count exactly, so "unique" is a fact, not an estimate.
            parts.append(f"count(DISTINCT {plan.sql})")
            jobs.append((plan.name, "exact_distinct", None))
    if parts:
        row = first_row(connection, "SELECT " + ", ".join(parts) + " FROM " + projected(plans))
        assert row is not None
        for (name, job, extra), value in zip(jobs, row, strict=True):
            profile = columns[name]
            if job == "histogram":
                low, high, edges = extra
                counts = [0] * (len(edges) + 1)
                for index, count in (value or {}).items():
                    counts[int(index)] += int(count)
                profile["histogram"] = {"edges": [low, *edges, high], "counts": counts}
            elif job == "drift_counts":
                profile["drift_counts"] = histogram_counts(value, extra)
            elif job == "exact_distinct":
                profile["distinct"] = int(value)
                profile["distinct_approximate"] = False
            else:
                _store_categories(profile, dict(value or {}))
    for plan in plans:
        profile = columns[plan.name]
        if plan.kind == "string" and "top" not in profile and profile.get("count"):
            found = connection.sql(
                f"SELECT CAST({plan.sql} AS VARCHAR) AS v, count(*) AS n FROM data "
                f"WHERE {plan.sql} IS NOT NULL GROUP BY v ORDER BY n DESC, v LIMIT 10"
            ).fetchall()
            profile["top"] = [{"value": v, "count": int(n)} for v, n in found]
            profile["top_complete"] = False
            profile["other_count"] = profile["count"] - sum(int(n) for _, n in found)


def _store_categories(profile: dict[str, Any], counts: dict[str, int]) -> None:
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    top = ordered[:TOP_CATEGORIES]
    profile["distinct"] = len(counts)  # exact: every category was counted
    profile["distinct_approximate"] = False
    profile["top"] = [{"value": value, "count": int(count)} for value, count in top]
    profile["top_complete"] = len(ordered) <= TOP_CATEGORIES
    profile["other_count"] = int(sum(count for _, count in ordered[TOP_CATEGORIES:]))


def profile_data(data: Any) -> dict[str, Any]:
    """Profile any frame, Arrow table, DuckDB relation or dataset version."""
    from forgeml.data.sources import duckdb_connection

    connection = duckdb_connection()
    try:
        return profile_relation(connection, as_relation(connection, data))
    finally:
        connection.close()


def as_relation(connection: duckdb.DuckDBPyConnection, data: Any) -> duckdb.DuckDBPyRelation:
    """A DuckDB relation over ``data`` without copying it (Arrow, pandas, polars, Parquet)."""
    import duckdb

    relation_of = getattr(data, "relation", None)
    if callable(relation_of):
        return relation_of(connection)  # type: ignore[no-any-return]
    if isinstance(data, duckdb.DuckDBPyRelation):
        return data
    module = type(data).__module__
    if module.startswith("pandas"):
        return connection.from_df(data)
    if module.startswith("polars"):
        return connection.from_arrow(data.to_arrow())
    if module.startswith("pyarrow"):
        return connection.from_arrow(data)
    from forgeml.errors import InvalidArgumentError

    raise InvalidArgumentError(
        f"cannot read a {type(data).__name__} as a table: give a dataset, a DataFrame or an "
        "Arrow table"
    )
