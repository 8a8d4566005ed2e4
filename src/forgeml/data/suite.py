"""Validation suites: named lists of checks, run in one scan, defined in Python or YAML.

A suite runs every check's aggregates in a single SELECT over the data; only checks
that need more (duplicates, near-constant columns, drift) add a query of their own,
and only failed checks add a query for sample rows. ``suggest_suite`` writes a suite
from a profile, so a new dataset can be held to the shape of a known good one.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forgeml.data.checks import (
    Check,
    ColumnsPresent,
    ColumnType,
    Context,
    Drift,
    InRange,
    InSet,
    NoDuplicateRows,
    NotConstant,
    NotNull,
    Outcome,
    RowCount,
    Unique,
    _plain,
    check_from_dict,
)
from forgeml.data.profiling import as_relation, kind_of, profile_data
from forgeml.data.sources import duckdb_connection, first_row
from forgeml.errors import InvalidArgumentError, ValidationFailedError

if TYPE_CHECKING:
    import duckdb

SAMPLE_ROWS = 5


@dataclass(frozen=True)
class CheckResult:
    check: str
    name: str
    column: str | None
    severity: str
    passed: bool
    observed: Any
    expected: str
    message: str = ""
    failing_count: int | None = None
    failing_rows: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "name": self.name,
            "column": self.column,
            "severity": self.severity,
            "passed": self.passed,
            "observed": self.observed,
            "expected": self.expected,
            "message": self.message,
            "failing_count": self.failing_count,
            "failing_rows": self.failing_rows,
        }


@dataclass(frozen=True)
class ValidationResult:
    suite: str
    row_count: int
    results: list[CheckResult]
    seconds: float

    @property
    def errors(self) -> int:
        return sum(1 for r in self.results if not r.passed and r.severity == "error")

    @property
    def warnings(self) -> int:
        return sum(1 for r in self.results if not r.passed and r.severity == "warn")

    @property
    def success(self) -> bool:
        """True when no check of severity "error" failed (warnings do not count)."""
        return self.errors == 0

    def failed(self) -> list[CheckResult]:
        return [r for r in self.results if not r.passed]

    def raise_for_errors(self) -> ValidationResult:
        """Raise ValidationFailedError if an error-severity check failed; else return self."""
        if not self.success:
            first = next(r for r in self.results if not r.passed and r.severity == "error")
            raise ValidationFailedError(
                f"suite {self.suite!r}: {self.errors} check(s) failed, first {first.name}: "
                f"{first.message or 'observed ' + str(first.observed)} (expected {first.expected})",
                self,
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "success": self.success,
            "errors": self.errors,
            "warnings": self.warnings,
            "row_count": self.row_count,
            "seconds": round(self.seconds, 6),
            "results": [r.to_dict() for r in self.results],
        }

    def __str__(self) -> str:
        lines = [
            f"suite {self.suite}: {'passed' if self.success else 'FAILED'} "
            f"({self.errors} errors, {self.warnings} warnings, {len(self.results)} checks)"
        ]
        for r in self.failed():
            lines.append(
                f"  {r.severity:5} {r.name}: observed {r.observed} (expected {r.expected})"
            )
        return "\n".join(lines)


class Suite:
    """A named list of checks."""

    def __init__(self, name: str, checks: Sequence[Check]) -> None:
        if not isinstance(name, str) or not name.strip():
            raise InvalidArgumentError(f"a suite needs a name, got {name!r}")
        for index, check in enumerate(checks):
            if not isinstance(check, Check):
                raise InvalidArgumentError(
                    f"suite {name!r}, check {index + 1}: {check!r} is not a check"
                )
        self.name = name
        self.checks = list(checks)

    def __repr__(self) -> str:
        return f"<Suite {self.name}: {len(self.checks)} checks>"

    # -- YAML and dicts -----------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "suite") -> Suite:
        if not isinstance(data, Mapping) or "checks" not in data:
            raise InvalidArgumentError(f"{where}: expected a mapping with 'name' and 'checks'")
        raw = data["checks"]
        if not isinstance(raw, list):
            raise InvalidArgumentError(f"{where}: 'checks' must be a list")
        name = str(data.get("name") or Path(where).stem)
        checks = [check_from_dict(item, f"{where}, check {i + 1}") for i, item in enumerate(raw)]
        return cls(name, checks)

    @classmethod
    def from_yaml(cls, source: str | Path) -> Suite:
        """Load from a YAML file path, or from YAML text."""
        import yaml

        text, where = str(source), "suite"
        if isinstance(source, Path) or (
            len(text) < 4096 and "\n" not in text and Path(text).is_file()
        ):
            path = Path(source)
            if not path.is_file():
                raise InvalidArgumentError(f"{path}: no such suite file")
            text, where = path.read_text(), str(path)
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InvalidArgumentError(f"{where}: not valid YAML: {exc}") from None
        return cls.from_dict(data, where)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "checks": [c.to_dict() for c in self.checks]}

    def to_yaml(self) -> str:
        import yaml

        return str(yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True))

    # -- running ------------------------------------------------------------------------
    def validate(
        self,
        data: Any,
        reference: Any = None,
        *,
        now: dt.datetime | None = None,
        sample_rows: int = SAMPLE_ROWS,
    ) -> ValidationResult:
        """Run every check on ``data`` (a dataset, DataFrame, Arrow table or DuckDB relation).

        ``reference`` (a dataset, a profile, or data to profile) is what drift checks
        compare with.
        """
        started = time.perf_counter()
        connection = duckdb_connection()
        try:
            relation = as_relation(connection, data)
            connection.register("data", relation)
            ctx = Context(
                connection=connection,
                kinds={
                    n: kind_of(str(t))
                    for n, t in zip(relation.columns, relation.types, strict=True)
                },
                types={n: str(t) for n, t in zip(relation.columns, relation.types, strict=True)},
                reference=_reference(reference),
            )
            if now is not None:
                ctx.now = now if now.tzinfo else now.replace(tzinfo=dt.UTC)
            results = self._run(ctx, sample_rows)
        finally:
            connection.close()
        return ValidationResult(self.name, ctx.row_count, results, time.perf_counter() - started)

    def _run(self, ctx: Context, sample_rows: int) -> list[CheckResult]:
        runnable: list[tuple[int, Check, int, int]] = []
        expressions = ["count(*)"]
        outcomes: dict[int, Outcome] = {}
        for index, check in enumerate(self.checks):
            missing = [c for c in check.needs() if c not in ctx.kinds]
            if missing:
                outcomes[index] = Outcome(False, None, None, f"column {missing[0]!r} is missing")
                continue
            aggregates = check.aggregates(ctx)
            runnable.append((index, check, len(expressions), len(aggregates)))
            expressions.extend(aggregates)
        row = first_row(ctx.connection, "SELECT " + ", ".join(expressions) + " FROM data")
        assert row is not None
        ctx.row_count = int(row[0])
        for index, check, start, count in sorted(runnable, key=lambda item: item[1].late):
            outcomes[index] = check.evaluate(ctx, list(row[start : start + count]))
        ran = {index for index, *_ in runnable}
        results = []
        for index, check in enumerate(self.checks):
            outcome = outcomes[index]
            rows: list[dict[str, Any]] = []
            if not outcome.passed and sample_rows and index in ran:
                predicate = check.failing(ctx)
                if predicate is not None:
                    rows = _sample(ctx.connection, predicate, sample_rows)
            results.append(
                CheckResult(
                    check=check.kind,
                    name=check.title,
                    column=getattr(check, "column", None),
                    severity=check.severity,
                    passed=outcome.passed,
                    observed=outcome.observed,
                    expected=check.expected(),
                    message=outcome.message,
                    failing_count=outcome.failing_count,
                    failing_rows=rows,
                )
            )
        return results


def _sample(
    connection: duckdb.DuckDBPyConnection, predicate: str, limit: int
) -> list[dict[str, Any]]:
    table = connection.sql(
        f"SELECT * FROM data WHERE {predicate} LIMIT {int(limit)}"
    ).to_arrow_table()
    return [{k: _plain(v) for k, v in row.items()} for row in table.to_pylist()]


def _reference(reference: Any) -> dict[str, Any] | None:
    if reference is None:
        return None
    if isinstance(reference, Mapping) and "columns" in reference:
        return dict(reference)
    profile = getattr(reference, "profile", None)
    if isinstance(profile, Mapping):
        return dict(profile)
    return profile_data(reference)


# -- suggestions -------------------------------------------------------------------------

# Integers and floats both suggest "numeric": a nullable integer column read through pandas
# arrives as float64, and that alone should not fail a suite.
_FAMILY = {"integer": "numeric", "float": "numeric", "boolean": "boolean", "string": "string"}


def suggest_suite(
    data: Any, name: str | None = None, *, drift: bool = False, range_margin: float = 0.1
) -> Suite:
    """A suite that known-good ``data`` passes and that catches what usually goes wrong.

    From the profile: the columns and their types, no nulls where there were none (a
    bound where there were some), uniqueness for identifiers, the allowed categories of
    small categorical columns, value ranges (warn, widened by ``range_margin``), no
    duplicate rows, and with ``drift=True`` a drift check per column (warn) against the
    reference given at validation.
    """
    from forgeml.data.schema import semantic_type

    profile = data if isinstance(data, Mapping) else _reference(data)
    assert profile is not None
    columns: dict[str, dict[str, Any]] = profile["columns"]
    suite_name = name or (f"{data.name}-suggested" if hasattr(data, "name") else "suggested")
    semantic = _semantic_types(data, columns, semantic_type)
    checks: list[Check] = [ColumnsPresent(list(columns)), RowCount(min=1)]
    for column, stats in columns.items():
        kind, meaning = stats.get("kind"), semantic[column]
        family = _FAMILY.get(str(kind)) or (
            "datetime"
            if str(stats.get("type", "")).startswith("TIMESTAMP")
            else "date"
            if stats.get("type") == "DATE"
            else None
        )
        if family:
            checks.append(ColumnType(column, family))
        fraction = stats.get("null_fraction", 0.0)
        if fraction == 0:
            checks.append(NotNull(column))
        else:
            checks.append(
                NotNull(
                    column, max_fraction=round(min(1.0, fraction * 1.5 + 0.01), 4), severity="warn"
                )
            )
        if meaning == "identifier":
            if not stats.get("distinct_approximate") and stats.get("distinct") == stats.get(
                "count"
            ):
                checks.append(Unique(column))
            continue
        if meaning == "categorical" and stats.get("top_complete") and stats.get("top"):
            checks.append(InSet(column, [entry["value"] for entry in stats["top"]]))
        if kind in ("integer", "float") and stats.get("min") is not None:
            low, high = stats["min"], stats["max"]
            margin = (high - low) * range_margin
            checks.append(
                InRange(
                    column, min=_round(low - margin), max=_round(high + margin), severity="warn"
                )
            )
        if (stats.get("distinct") or 0) > 1:
            checks.append(NotConstant(column, severity="warn"))
        if drift and meaning in ("numeric", "categorical"):
            checks.append(Drift(column, severity="warn"))
    checks.append(NoDuplicateRows(severity="warn"))
    return Suite(suite_name, checks)


def _semantic_types(data: Any, columns: dict[str, dict[str, Any]], classify: Any) -> dict[str, str]:
    described = getattr(data, "columns", None)
    if isinstance(described, list) and described and isinstance(described[0], Mapping):
        return {c["name"]: c["semantic"] for c in described}
    import pyarrow as pa

    return {name: classify(name, pa.null(), stats) for name, stats in columns.items()}


def _round(value: float) -> float:
    return float(f"{value:.6g}")
