"""Data benchmark: forgeml's data layer and other tools side by side, same data, same machine.

    .venv/bin/python benchmarks/data.py                  # the full benchmark (about 10 minutes)
    .venv/bin/python benchmarks/data.py --quick          # a smoke test; writes no results
    .venv/bin/python benchmarks/data.py --csv-gb 1       # a 1 GB CSV for the ingestion workload

Three workloads. ``validate``: 1,000,000 rows x 25 columns checked with the same 73 checks
by forgeml, pandera (polars backend), Great Expectations (pandas) and hand-written DuckDB
and polars scripts. ``profile``: a profile, a default suite and an HTML report against a
reference, by forgeml and by Evidently's data summary preset, and whether either flags an
unseen category and duplicated ids. ``ingest``: a 5 GB CSV file into a forgeml dataset,
with the worker's memory sampled from outside.

Every tool runs in its own subprocess; pandera, Great Expectations and Evidently run in
their own virtualenvs (``benchmarks/.venv-pandera``, ``.venv-gx``, ``.venv-evidently``,
created on first use). The same file is the worker (``--tool NAME --workload NAME
--data-dir DIR --workdir DIR --json``), so it imports only the standard library at the
top: the foreign virtualenvs have neither forgeml nor rich.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "benchmarks"
RESULTS_DIR = BENCH_DIR / "results"
FORGEML_VENV = ROOT / ".venv"
CSV_CACHE_DIR = Path(tempfile.gettempdir()) / "forgeml-bench-csv"

WORKLOADS = ("validate", "profile", "ingest")
VALIDATE_TOOLS = ("forgeml", "duckdb", "polars", "pandera", "gx")
PROFILE_TOOLS = ("forgeml", "evidently")
INGEST_TOOLS = ("forgeml", "duckdb")
TOOL_LABELS = {
    "forgeml": "forgeml",
    "duckdb": "DuckDB script",
    "polars": "polars script",
    "pandera": "pandera (polars)",
    "gx": "Great Expectations",
    "evidently": "Evidently",
}

SEED = 20_241_123
ROWS = 1_000_000
QUICK_ROWS = 100_000
BAD_ROWS = 20_000
CSV_GB = 5.0
QUICK_CSV_GB = 0.2
REPEATS = 3
# A tool stops adding timed samples once warm-up plus samples pass this many seconds.
SLOW_BUDGET_S = 150.0
WORKER_TIMEOUT_S = 1_200
SAMPLE_INTERVAL_S = 0.2
INGEST_RSS_TARGET_MB = 1_500.0

# Usage reporting (Great Expectations, DO_NOT_TRACK) and progress bars off: neither is part
# of the work measured. pandera is told to check the data, not only the schema, whatever its
# default for the frame type.
WORKER_ENV = {
    "DO_NOT_TRACK": "1",
    "GX_ANALYTICS_ENABLED": "false",
    "TQDM_DISABLE": "1",
    "PANDERA_VALIDATION_DEPTH": "SCHEMA_AND_DATA",
}


@dataclass(frozen=True)
class ForeignTool:
    """A tool measured from its own virtualenv, so its dependencies never meet forgeml's."""

    workload: str
    venv: Path
    packages: tuple[str, ...]
    probe: str
    distributions: tuple[str, ...]


FOREIGN: dict[str, ForeignTool] = {
    "pandera": ForeignTool(
        "validate",
        BENCH_DIR / ".venv-pandera",
        ("pandera[polars]", "pyarrow"),
        "import pandera.polars, polars, pyarrow",
        ("pandera", "polars"),
    ),
    "gx": ForeignTool(
        "validate",
        BENCH_DIR / ".venv-gx",
        ("great_expectations", "pyarrow"),
        "import great_expectations, pandas, pyarrow",
        ("great_expectations", "pandas"),
    ),
    # Evidently 0.7 imports a pandas function that pandas 3 removed.
    "evidently": ForeignTool(
        "profile",
        BENCH_DIR / ".venv-evidently",
        ("evidently", "pandas<3", "pyarrow"),
        "from evidently import Report",
        ("evidently", "pandas"),
    ),
}
LOCAL_DISTRIBUTIONS = {
    "forgeml": ("forgeml", "duckdb", "pyarrow"),
    "duckdb": ("duckdb",),
    "polars": ("polars", "pyarrow"),
}

# ---------------------------------------------------------------------------------------
# The data and the checks: one specification every tool's implementation is built from.

CATEGORIES: dict[str, list[str]] = {
    "cat_0": ["red", "green", "blue"],
    "cat_1": ["xs", "s", "m", "l", "xl"],
    "cat_2": [f"region_{i}" for i in range(8)],
    "cat_3": [f"channel_{i:02d}" for i in range(12)],
    "cat_4": [f"segment_{i:02d}" for i in range(20)],
}
INT_RANGES: dict[str, tuple[int, int]] = {
    "int_0": (0, 100),
    "int_1": (0, 1_000),
    "int_2": (-50, 50),
    "int_3": (1, 7),
    "int_4": (0, 1_000_000),
    "int_5": (18, 90),
}
FLOAT_RANGES: dict[str, tuple[float, float]] = {
    "num_0": (0.0, 1.0),
    "num_1": (-1.0, 1.0),
    "num_2": (0.0, 100.0),
    "num_3": (-1_000.0, 1_000.0),
    "num_4": (0.0, 1_000_000.0),
    "num_5": (0.5, 2.5),
    "num_6": (-5.0, 5.0),
    "num_7": (10.0, 20.0),
    "num_8": (0.0, 1.0),
    "num_9": (-100.0, 100.0),
    "num_10": (0.0, 50.0),
}
RANGES: dict[str, tuple[float, float]] = {**INT_RANGES, **FLOAT_RANGES}
NULLABLE = ("cat_4", "num_8", "num_9", "num_10")
NULL_SHARE = 0.01
CODE_PATTERN = "[A-Z]{3}-[0-9]{4}"
ROW_BOUNDS = (1_000, 10_000_000)
COLUMNS = ["id", "code", "ts", *CATEGORIES, *INT_RANGES, *FLOAT_RANGES]
FAMILIES: dict[str, str] = {
    "id": "integer",
    "code": "string",
    "ts": "datetime",
    **dict.fromkeys(CATEGORIES, "string"),
    **dict.fromkeys(INT_RANGES, "integer"),
    **dict.fromkeys(FLOAT_RANGES, "float"),
}
NOT_NULL = [c for c in COLUMNS if c not in NULLABLE]

# What the small "bad" file breaks, so every tool must fail exactly these checks.
BAD_EXPECTED = sorted(
    [
        "not_null:cat_0",
        "in_range:int_0",
        "in_range:num_3",
        "in_set:cat_1",
        "unique:id",
        "matches:code",
        "no_duplicate_rows",
    ]
)

# Workload 2: what the "current" data set gets on top of the reference.
UNSEEN_COLUMN = "cat_2"
UNSEEN_VALUE = "region_unseen"
INJECTED_ROWS = 300


def check_keys() -> list[str]:
    """Every check of the validation workload, by a name all implementations share."""
    return sorted(
        [
            "columns_present",
            *(f"dtype:{c}" for c in COLUMNS),
            *(f"not_null:{c}" for c in NOT_NULL),
            *(f"in_range:{c}" for c in RANGES),
            *(f"in_set:{c}" for c in CATEGORIES),
            "unique:id",
            "matches:code",
            "row_count",
            "no_duplicate_rows",
        ]
    )


# ---------------------------------------------------------------------------------------
# Small helpers shared by every interpreter (standard library only).


def check(condition: bool, message: str) -> None:
    """Fail the workload loudly: a time for checks that did not check is worthless."""
    if not condition:
        raise RuntimeError(f"verification failed: {message}")


def peak_rss_mb() -> float:
    """This process's peak resident set so far, in MB (Linux reports KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


def current_rss_mb() -> float:
    """This process's resident set now, in MB, from /proc (no psutil in foreign venvs)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def repeat_timed(action: Callable[[], None], budget_s: float = SLOW_BUDGET_S) -> dict[str, Any]:
    """One untimed warm-up run, then up to ``REPEATS`` timed runs; the median is the figure.

    A tool whose runs take minutes stops adding samples once ``budget_s`` is spent, so
    the benchmark stays bounded; the number of samples is kept with the figure.
    """
    started = time.perf_counter()
    action()
    warmup_s = time.perf_counter() - started
    samples: list[float] = []
    while len(samples) < REPEATS:
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
        if time.perf_counter() - started > budget_s:
            break
    return {"warmup_s": warmup_s, "samples_s": samples, "median_s": statistics.median(samples)}


def distribution_versions(names: tuple[str, ...]) -> dict[str, str | None]:
    """Versions of the packages a worker measured, recorded next to its figures."""
    from importlib import metadata

    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


# ---------------------------------------------------------------------------------------
# Workload 1: validation. Each tool provides a loader, a builder and a runner.


@dataclass(frozen=True)
class ValidationTool:
    """How one tool reads the Parquet file, declares the checks and runs them.

    ``build`` returns the tool's validator and the shared names of the checks it
    declares; ``run`` returns the shared names of the checks that failed.
    """

    frame: str
    load: Callable[[Path], Any]
    build: Callable[[], tuple[Any, list[str]]]
    run: Callable[[Any, Any], list[str]]


def forgeml_validation() -> ValidationTool:
    """forgeml: a Suite of declarative checks over a pyarrow Table."""
    import pyarrow.parquet as pq

    import forgeml as fm
    from forgeml.data import checks as c

    def build() -> tuple[Any, list[str]]:
        items: list[Any] = [c.ColumnsPresent(COLUMNS, name="columns_present")]
        items += [c.ColumnType(col, fam, name=f"dtype:{col}") for col, fam in FAMILIES.items()]
        items += [c.NotNull(col, name=f"not_null:{col}") for col in NOT_NULL]
        items += [
            c.InRange(col, min=low, max=high, name=f"in_range:{col}")
            for col, (low, high) in RANGES.items()
        ]
        items += [c.InSet(col, values, name=f"in_set:{col}") for col, values in CATEGORIES.items()]
        items += [
            c.Unique("id", name="unique:id"),
            c.Matches("code", CODE_PATTERN, name="matches:code"),
            c.RowCount(min=ROW_BOUNDS[0], max=ROW_BOUNDS[1], name="row_count"),
            c.NoDuplicateRows(name="no_duplicate_rows"),
        ]
        return fm.data.Suite("bench", items), [item.title for item in items]

    def run(suite: Any, table: Any) -> list[str]:
        result = suite.validate(table)
        return sorted(r.name for r in result.results if not r.passed)

    return ValidationTool("pyarrow.Table", pq.read_table, build, run)


DUCKDB_FAMILIES = {
    "integer": ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT"),
    "float": ("FLOAT", "DOUBLE"),
    "string": ("VARCHAR",),
    "datetime": ("TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP WITH TIME ZONE"),
}


def duckdb_aggregates(present: set[str]) -> dict[str, str]:
    """The value checks as SQL aggregates over the table ``data``, one scan for all."""

    def q(name: str) -> str:
        return f'"{name}"'

    def text(value: str) -> str:
        return "'" + value.replace("'", "''") + "'"

    sql: dict[str, str] = {}
    for col in NOT_NULL:
        if col in present:
            sql[f"not_null:{col}"] = f"count(*) FILTER (WHERE {q(col)} IS NULL)"
    for col, (low, high) in RANGES.items():
        if col in present:
            sql[f"in_range:{col}"] = (
                f"count(*) FILTER (WHERE {q(col)} < {low!r} OR {q(col)} > {high!r})"
            )
    for col, values in CATEGORIES.items():
        if col in present:
            listed = ", ".join(text(v) for v in values)
            sql[f"in_set:{col}"] = f"count(*) FILTER (WHERE {q(col)} NOT IN ({listed}))"
    if "id" in present:
        sql["unique:id"] = "count(id) - count(DISTINCT id)"
    if "code" in present:
        sql["matches:code"] = (
            f"count(*) FILTER (WHERE NOT regexp_full_match(code, {text(CODE_PATTERN)}))"
        )
    return sql


def duckdb_validation() -> ValidationTool:
    """A hand-written DuckDB script: the data in a DuckDB table, the checks in SQL."""
    import duckdb

    def load(path: Path) -> Any:
        connection = duckdb.connect()
        connection.execute(f"CREATE TABLE data AS SELECT * FROM read_parquet('{path}')")
        return connection

    def run(_validator: Any, connection: Any) -> list[str]:
        types = dict(
            connection.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_name = 'data'"
            ).fetchall()
        )
        failed = [f"dtype:{c}" for c in COLUMNS if types.get(c) not in DUCKDB_FAMILIES[FAMILIES[c]]]
        if any(c not in types for c in COLUMNS):
            failed.append("columns_present")
        aggregates = duckdb_aggregates(set(types))
        expressions = ["count(*)", *aggregates.values()]
        row = connection.execute("SELECT " + ", ".join(expressions) + " FROM data").fetchall()[0]
        rows = int(row[0])
        failed += [key for key, value in zip(aggregates, row[1:], strict=True) if value]
        if not ROW_BOUNDS[0] <= rows <= ROW_BOUNDS[1]:
            failed.append("row_count")
        distinct = connection.execute("SELECT count(*) FROM (SELECT DISTINCT * FROM data)")
        if int(distinct.fetchall()[0][0]) != rows:
            failed.append("no_duplicate_rows")
        return sorted(failed)

    def build() -> tuple[Any, list[str]]:
        keys = ["columns_present", *(f"dtype:{c}" for c in COLUMNS), "row_count"]
        return None, [*keys, *duckdb_aggregates(set(COLUMNS)), "no_duplicate_rows"]

    return ValidationTool("DuckDB table", load, build, run)


def polars_expressions(present: set[str]) -> dict[str, Any]:
    """The value checks as polars expressions, evaluated together in one ``select``."""
    import polars as pl

    exprs: dict[str, Any] = {}
    for col in NOT_NULL:
        if col in present:
            exprs[f"not_null:{col}"] = pl.col(col).null_count()
    for col, (low, high) in RANGES.items():
        if col in present:
            exprs[f"in_range:{col}"] = (~pl.col(col).is_between(low, high)).sum()
    for col, values in CATEGORIES.items():
        if col in present:
            exprs[f"in_set:{col}"] = (~pl.col(col).is_in(values)).sum()
    if "id" in present:
        exprs["unique:id"] = pl.col("id").count() - pl.col("id").drop_nulls().n_unique()
    if "code" in present:
        exprs["matches:code"] = (~pl.col("code").str.contains(f"^{CODE_PATTERN}$")).sum()
    return exprs


def polars_validation() -> ValidationTool:
    """A hand-written polars script: one ``select`` of counts, then ``is_duplicated``."""
    import polars as pl

    def family_ok(family: str, dtype: Any) -> bool:
        if family == "integer":
            return bool(dtype.is_integer())
        if family == "float":
            return bool(dtype.is_float())
        if family == "string":
            return bool(dtype == pl.String)
        return isinstance(dtype, pl.Datetime)

    def run(_validator: Any, frame: Any) -> list[str]:
        schema = frame.schema
        failed = [f"dtype:{c}" for c in COLUMNS if c not in schema]
        failed += [
            f"dtype:{c}" for c in COLUMNS if c in schema and not family_ok(FAMILIES[c], schema[c])
        ]
        if any(c not in schema for c in COLUMNS):
            failed.append("columns_present")
        exprs = polars_expressions(set(schema))
        counts = frame.select(pl.len().alias("rows"), *(e.alias(k) for k, e in exprs.items())).row(
            0, named=True
        )
        rows = counts.pop("rows")
        failed += [key for key, value in counts.items() if value]
        if not ROW_BOUNDS[0] <= rows <= ROW_BOUNDS[1]:
            failed.append("row_count")
        if frame.is_duplicated().any():
            failed.append("no_duplicate_rows")
        return sorted(failed)

    def build() -> tuple[Any, list[str]]:
        keys = ["columns_present", *(f"dtype:{c}" for c in COLUMNS), "row_count"]
        return None, [*keys, *polars_expressions(set(COLUMNS)), "no_duplicate_rows"]

    return ValidationTool("polars.DataFrame", pl.read_parquet, build, run)


def pandera_validation() -> ValidationTool:
    """pandera's polars backend: a DataFrameSchema, validated lazily (every failure)."""
    import pandera.polars as pa
    import polars as pl
    from pandera.errors import SchemaErrors

    dtypes = {
        "integer": pl.Int64,
        "float": pl.Float64,
        "string": pl.String,
        "datetime": pl.Datetime("us"),
    }

    def build() -> tuple[Any, list[str]]:
        keys = ["columns_present", "unique:id", "row_count", "no_duplicate_rows"]
        columns = {}
        for col in COLUMNS:
            checks = []
            keys.append(f"dtype:{col}")
            if col in RANGES:
                checks.append(pa.Check.in_range(*RANGES[col]))
                keys.append(f"in_range:{col}")
            if col in CATEGORIES:
                checks.append(pa.Check.isin(CATEGORIES[col]))
                keys.append(f"in_set:{col}")
            if col == "code":
                checks.append(pa.Check.str_matches(f"^{CODE_PATTERN}$"))
                keys.append("matches:code")
            if col not in NULLABLE:
                keys.append(f"not_null:{col}")
            columns[col] = pa.Column(
                dtypes[FAMILIES[col]], checks=checks, nullable=col in NULLABLE, unique=col == "id"
            )
        low, high = ROW_BOUNDS
        row_count = pa.Check(
            lambda data: data.lazyframe.select(pl.len().is_between(low, high)), name="row_count"
        )
        schema = pa.DataFrameSchema(columns, checks=[row_count], unique=list(COLUMNS))
        return schema, keys

    def run(schema: Any, frame: Any) -> list[str]:
        try:
            schema.validate(frame, lazy=True)
        except SchemaErrors as exc:
            return pandera_failures(exc)
        return []

    return ValidationTool("polars.DataFrame", pl.read_parquet, build, run)


def pandera_failures(exc: Any) -> list[str]:
    """Shared check names from pandera's failure cases (one row per failing value)."""
    cases = exc.failure_cases
    pairs = {
        (str(row["check"]), None if row["column"] is None else str(row["column"]))
        for row in cases.select("check", "column").unique().to_dicts()
    }
    names = set()
    for check_name, column in pairs:
        if check_name == "not_nullable":
            names.add(f"not_null:{column}")
        elif check_name.startswith(("in_range", "between")):
            names.add(f"in_range:{column}")
        elif check_name.startswith("isin"):
            names.add(f"in_set:{column}")
        elif check_name.startswith("str_matches"):
            names.add("matches:code")
        elif check_name == "field_uniqueness":
            names.add(f"unique:{column}")
        elif check_name == "multiple_fields_uniqueness":
            names.add("no_duplicate_rows")
        elif check_name.startswith("dtype"):
            names.add(f"dtype:{column}")
        elif check_name == "column_in_dataframe":
            names.add("columns_present")
        elif check_name == "row_count":
            names.add("row_count")
        else:
            names.add(f"unknown:{check_name}:{column}")
    return sorted(names)


def gx_types(pandas_major: int) -> dict[str, str]:
    """The pandas dtype each family reads as from Parquet, for ExpectColumnValuesToBeOfType.

    Great Expectations 1.24's ExpectColumnValuesToBeInTypeList rejects pandas 3's "str"
    dtype even when the observed type is "str", so each family gets its one exact type.
    """
    modern = pandas_major >= 3
    return {
        "integer": "int64",
        "float": "float64",
        "string": "str" if modern else "object",
        "datetime": "datetime64[us]" if modern else "datetime64[ns]",
    }


def gx_validation() -> ValidationTool:
    """Great Expectations 1.x: an ephemeral context, a pandas data source, one suite."""
    import great_expectations as gx
    import great_expectations.expectations as gxe
    import pandas as pd
    from great_expectations.data_context.types.base import ProgressBarsConfig

    types = gx_types(int(pd.__version__.split(".")[0]))

    def build() -> tuple[Any, list[str]]:
        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(
            globally=False, metric_calculations=False
        )
        source = context.data_sources.add_pandas("bench")
        batches = source.add_dataframe_asset("frame").add_batch_definition_whole_dataframe("all")
        suite = gx.ExpectationSuite("bench")
        keyed: list[tuple[str, Any]] = [
            (
                "columns_present",
                gxe.ExpectTableColumnsToMatchSet(column_set=COLUMNS, exact_match=False),
            ),
            *(
                (
                    f"dtype:{c}",
                    gxe.ExpectColumnValuesToBeOfType(column=c, type_=types[f]),
                )
                for c, f in FAMILIES.items()
            ),
            *((f"not_null:{c}", gxe.ExpectColumnValuesToNotBeNull(column=c)) for c in NOT_NULL),
            *(
                (
                    f"in_range:{c}",
                    gxe.ExpectColumnValuesToBeBetween(column=c, min_value=low, max_value=high),
                )
                for c, (low, high) in RANGES.items()
            ),
            *(
                (f"in_set:{c}", gxe.ExpectColumnValuesToBeInSet(column=c, value_set=values))
                for c, values in CATEGORIES.items()
            ),
            ("unique:id", gxe.ExpectColumnValuesToBeUnique(column="id")),
            (
                "matches:code",
                gxe.ExpectColumnValuesToMatchRegex(column="code", regex=f"^{CODE_PATTERN}$"),
            ),
            (
                "row_count",
                gxe.ExpectTableRowCountToBeBetween(
                    min_value=ROW_BOUNDS[0], max_value=ROW_BOUNDS[1]
                ),
            ),
            ("no_duplicate_rows", gxe.ExpectCompoundColumnsToBeUnique(column_list=COLUMNS)),
        ]
        for key, expectation in keyed:
            expectation.meta = {"key": key}
            suite.add_expectation(expectation)
        return (batches, context.suites.add(suite)), [key for key, _ in keyed]

    def run(validator: Any, frame: Any) -> list[str]:
        batches, suite = validator
        batch = batches.get_batch(batch_parameters={"dataframe": frame})
        result = batch.validate(suite, result_format="BASIC")
        raised = [
            str(r.exception_info.get("exception_message"))
            for r in result.results
            if r.exception_info and r.exception_info.get("raised_exception")
        ]
        check(not raised, f"Great Expectations raised: {raised[:2]}")
        return sorted(r.expectation_config.meta["key"] for r in result.results if not r.success)

    return ValidationTool("pandas.DataFrame", pd.read_parquet, build, run)


VALIDATION_TOOLS: dict[str, Callable[[], ValidationTool]] = {
    "forgeml": forgeml_validation,
    "duckdb": duckdb_validation,
    "polars": polars_validation,
    "pandera": pandera_validation,
    "gx": gx_validation,
}


def validate_workload(tool: str, data_dir: Path, workdir: Path) -> dict[str, Any]:
    """Load, declare, validate (timed); then the small bad file, to prove the checks agree."""
    start = time.perf_counter()
    implementation = VALIDATION_TOOLS[tool]()
    import_s = time.perf_counter() - start
    rss_imported = current_rss_mb()
    start = time.perf_counter()
    frame = implementation.load(data_dir / "good.parquet")
    load_s = time.perf_counter() - start
    rss_loaded = current_rss_mb()
    start = time.perf_counter()
    validator, keys = implementation.build()
    setup_s = time.perf_counter() - start
    check(sorted(keys) == check_keys(), f"{tool} declares {len(keys)} checks, not the shared set")
    failed: list[str] = []

    def action() -> None:
        nonlocal failed
        failed = implementation.run(validator, frame)

    timing = repeat_timed(action)
    peak = peak_rss_mb()
    check(not failed, f"{tool} fails clean data on {failed[:5]}")
    failed_bad = implementation.run(validator, implementation.load(data_dir / "bad.parquet"))
    return {
        "frame": implementation.frame,
        "checks": len(keys),
        "import_s": import_s,
        "load_s": load_s,
        "setup_s": setup_s,
        **timing,
        "rss_after_import_mb": rss_imported,
        "rss_after_load_mb": rss_loaded,
        "peak_rss_mb": peak,
        "failed_on_bad": failed_bad,
        "agrees_on_bad": failed_bad == BAD_EXPECTED,
    }


# ---------------------------------------------------------------------------------------
# Workload 2: profile, default suite and report against a reference.


def forgeml_report_writer() -> Callable[..., Any] | None:
    """``forgeml.data.report.write_report`` where this checkout has it, else None."""
    import importlib

    try:
        module = importlib.import_module("forgeml.data.report")
    except ImportError:
        return None
    writer = getattr(module, "write_report", None)
    return writer if callable(writer) else None


def forgeml_profile(data_dir: Path, workdir: Path) -> dict[str, Any]:
    """Profile both data sets, suggest a suite from the reference, validate the current one."""
    import pyarrow.parquet as pq

    import forgeml as fm

    start = time.perf_counter()
    reference = pq.read_table(data_dir / "good.parquet")
    current = pq.read_table(data_dir / "current.parquet")
    load_s = time.perf_counter() - start
    write_report = forgeml_report_writer()
    html = workdir / "forgeml-report.html"
    state: dict[str, Any] = {}

    def action() -> None:
        reference_profile = fm.data.profile(reference)
        suite = fm.data.suggest_suite(reference_profile)
        current_profile = fm.data.profile(current)
        result = suite.validate(current, reference=reference_profile)
        if write_report is not None:
            write_report(current_profile, html, validation=result)
        state.update(suite=suite, result=result)

    timing = repeat_timed(action)
    peak = peak_rss_mb()
    result = state["result"]
    on_reference = state["suite"].validate(reference)
    failed = [
        {"check": r.check, "name": r.name, "column": r.column, "severity": r.severity}
        for r in result.results
        if not r.passed
    ]
    return {
        "load_s": load_s,
        **timing,
        "peak_rss_mb": peak,
        "report": "write_report" if write_report is not None else None,
        "html_bytes": html.stat().st_size if html.exists() else None,
        "suite_checks": len(state["suite"].checks),
        "suite_passes_reference": on_reference.success,
        "failed_on_current": failed,
        "flags_unseen_category": any(
            f["check"] == "in_set" and f["column"] == UNSEEN_COLUMN for f in failed
        ),
        "flags_duplicate_ids": any(f["check"] == "unique" and f["column"] == "id" for f in failed),
    }


def evidently_profile(data_dir: Path, workdir: Path) -> dict[str, Any]:
    """Evidently's DataSummaryPreset with its tests, current against reference, saved as HTML."""
    import pandas as pd
    from evidently import Dataset, Report
    from evidently.presets import DataSummaryPreset

    start = time.perf_counter()
    reference = pd.read_parquet(data_dir / "good.parquet")
    current = pd.read_parquet(data_dir / "current.parquet")
    load_s = time.perf_counter() - start
    html = workdir / "evidently-report.html"
    state: dict[str, Any] = {}

    def action() -> None:
        report = Report([DataSummaryPreset()], include_tests=True)
        snapshot = report.run(
            current_data=Dataset.from_pandas(current),
            reference_data=Dataset.from_pandas(reference),
        )
        snapshot.save_html(str(html))
        state["snapshot"] = snapshot

    timing = repeat_timed(action)
    peak = peak_rss_mb()
    return {
        "load_s": load_s,
        **timing,
        "peak_rss_mb": peak,
        "html_bytes": html.stat().st_size,
        **evidently_findings(state["snapshot"].dict()),
    }


def evidently_findings(document: dict[str, Any]) -> dict[str, Any]:
    """What Evidently's tests flag on the current data, read from its own result dict."""
    tests = document.get("tests", [])
    failed = [
        {
            "name": str(t.get("name")),
            "status": str(t.get("status")),
            "description": str(t.get("description")),
        }
        for t in tests
        if not str(t.get("status")).endswith("SUCCESS")
    ]
    shown = False
    for metric in document.get("metrics", []):
        label = str(metric.get("metric_name") or metric.get("metric_id") or "")
        if "UniqueValueCount" in label and f"column={UNSEEN_COLUMN}" in label:
            shown = UNSEEN_VALUE in json.dumps(metric.get("value"), default=str)

    def mentions(entry: dict[str, str], *words: str) -> bool:
        text = entry["name"] + " " + entry["description"]
        return any(word in text for word in words)

    return {
        "tests": len(tests),
        "metrics": len(document.get("metrics", [])),
        "failed_tests": failed,
        "flags_unseen_category": any(mentions(f, UNSEEN_COLUMN, UNSEEN_VALUE) for f in failed),
        "flags_duplicate_ids": any(mentions(f, "'id'", "uplicat") for f in failed),
        "unseen_category_in_metrics": shown,
    }


# ---------------------------------------------------------------------------------------
# Workload 3: ingesting a large CSV file.


def forgeml_ingest(csv_path: Path, expected_rows: int, workdir: Path) -> dict[str, Any]:
    """``fm.Dataset.ingest`` of the CSV into a fresh store; the parent samples the memory."""
    from forgeml.data import Dataset

    marks: list[float] = []
    start = time.perf_counter()

    def on_rows(_rows: int) -> None:
        if not marks:
            marks.append(time.perf_counter() - start)
        marks[1:] = [time.perf_counter() - start]

    dataset = Dataset.ingest(csv_path, name="bench-csv", on_rows=on_rows)
    seconds = time.perf_counter() - start
    check(
        dataset.row_count == expected_rows, f"ingested {dataset.row_count} of {expected_rows} rows"
    )
    check(len(dataset.columns) == len(COLUMNS), f"ingested {len(dataset.columns)} columns")
    return {
        "rows": dataset.row_count,
        "seconds": seconds,
        "first_batch_s": marks[0] if marks else None,
        "stream_s": marks[-1] if marks else None,
        "after_stream_s": seconds - marks[-1] if marks else None,
        "parquet_bytes": dataset.record.size,
        "peak_rss_mb": peak_rss_mb(),
    }


def duckdb_ingest(csv_path: Path, expected_rows: int, workdir: Path) -> dict[str, Any]:
    """Baseline: DuckDB's own CSV-to-Parquet COPY with default settings (no profile, no hash)."""
    import duckdb

    target = workdir / "copy.parquet"
    start = time.perf_counter()
    connection = duckdb.connect()
    connection.execute(
        f"COPY (SELECT * FROM read_csv('{csv_path}')) TO '{target}' "
        "(FORMAT parquet, COMPRESSION zstd)"
    )
    seconds = time.perf_counter() - start
    rows = connection.execute(f"SELECT count(*) FROM read_parquet('{target}')").fetchall()[0][0]
    check(rows == expected_rows, f"DuckDB copied {rows} of {expected_rows} rows")
    return {
        "rows": rows,
        "seconds": seconds,
        "parquet_bytes": target.stat().st_size,
        "peak_rss_mb": peak_rss_mb(),
    }


def csv_select_sql(rows: int) -> str:
    """SQL for ``rows`` seeded rows of the 25 columns: values are hashes of the row number."""

    def h(k: int) -> str:
        return f"hash(i, {SEED + k})"

    def nullable(name: str, expression: str, k: int) -> str:
        if name not in NULLABLE:
            return expression
        return f"CASE WHEN {h(k + 500)} % 100 = 0 THEN NULL ELSE {expression} END"

    letters = " || ".join(f"chr(65 + CAST({h(k)} % 26 AS INTEGER))" for k in (1, 2, 3))
    parts = [
        "i AS id",
        f"{letters} || '-' || lpad(CAST({h(4)} % 10000 AS VARCHAR), 4, '0') AS code",
        f"TIMESTAMP '2024-01-01' + to_seconds(CAST({h(5)} % 31536000 AS BIGINT)) AS ts",
    ]
    k = 10
    for name, values in CATEGORIES.items():
        listed = "[" + ", ".join(f"'{v}'" for v in values) + "]"
        expression = f"{listed}[1 + CAST({h(k)} % {len(values)} AS INTEGER)]"
        parts.append(f"{nullable(name, expression, k)} AS {name}")
        k += 1
    for name, (low, high) in INT_RANGES.items():
        parts.append(f"{low} + CAST({h(k)} % {high - low + 1} AS BIGINT) AS {name}")
        k += 1
    for name, (flow, fhigh) in FLOAT_RANGES.items():
        fraction = f"CAST({h(k)} % 1000000007 AS DOUBLE) / 1000000007"
        expression = f"round({flow!r} + {fhigh - flow!r} * {fraction}, 4)"
        parts.append(f"{nullable(name, expression, k)} AS {name}")
        k += 1
    return "SELECT " + ",\n  ".join(parts) + f"\nFROM range({rows}) AS t(i)"


def write_csv(path: Path, gigabytes: float) -> dict[str, Any]:
    """A seeded CSV of about ``gigabytes`` GB, written by DuckDB in parallel, in row order.

    A 100,000-row sample gives the bytes per row, from which the row count is chosen.
    """
    import duckdb

    start = time.perf_counter()
    connection = duckdb.connect()
    try:
        sample = path.with_suffix(".sample.csv")
        connection.execute(f"COPY ({csv_select_sql(100_000)}) TO '{sample}' (HEADER)")
        bytes_per_row = sample.stat().st_size / 100_000
        sample.unlink()
        rows = max(1_000, int(gigabytes * 1e9 / bytes_per_row))
        connection.execute(f"COPY ({csv_select_sql(rows)}) TO '{path}' (HEADER)")
    finally:
        connection.close()
    return {
        "rows": rows,
        "bytes": path.stat().st_size,
        "seconds": time.perf_counter() - start,
        "cached": False,
    }


# ---------------------------------------------------------------------------------------
# Worker mode.


def run_worker(args: argparse.Namespace) -> None:
    """One workload of one tool; figures as JSON on the real stdout, the rest on stderr."""
    real_stdout = sys.stdout
    sys.stdout = sys.stderr
    tool, workload = args.tool, args.workload[0]
    workdir = args.workdir.resolve()
    started = time.perf_counter()
    if workload == "validate":
        figures = validate_workload(tool, args.data_dir.resolve(), workdir)
    elif workload == "profile":
        runner = forgeml_profile if tool == "forgeml" else evidently_profile
        figures = runner(args.data_dir.resolve(), workdir)
    else:
        ingest = forgeml_ingest if tool == "forgeml" else duckdb_ingest
        figures = ingest(args.csv.resolve(), args.expect_rows, workdir)
    figures["workload_wall_s"] = time.perf_counter() - started
    names = FOREIGN[tool].distributions if tool in FOREIGN else LOCAL_DISTRIBUTIONS[tool]
    figures["versions"] = distribution_versions(names)
    figures["python"] = platform.python_version()
    real_stdout.write(json.dumps(figures, indent=None if args.json else 2, default=str) + "\n")
    real_stdout.flush()


# ---------------------------------------------------------------------------------------
# Orchestrator (runs under .venv/bin/python): set-up, data, subprocesses, report.


def log(message: str) -> None:
    """Progress on stderr, so a redirected stdout holds only the results tables."""
    print(message, file=sys.stderr, flush=True)


def interpreter(tool: str) -> Path:
    """The Python that runs a tool: its own virtualenv, or forgeml's for the local ones."""
    if tool in FOREIGN:
        return FOREIGN[tool].venv / "bin" / "python"
    candidate = FORGEML_VENV / "bin" / "python"
    return candidate if candidate.exists() else Path(sys.executable)


def ensure_venv(tool: str) -> None:
    """Create a tool's virtualenv and install it, unless one already imports the tool."""
    spec = FOREIGN[tool]
    python = spec.venv / "bin" / "python"
    if python.exists():
        probe = subprocess.run([str(python), "-c", spec.probe], capture_output=True, check=False)
        if probe.returncode == 0:
            return
        log(f"{spec.venv} exists but cannot run {spec.probe!r}; installing into it again")
    else:
        base = shutil.which("python3") or sys.executable
        log(f"creating {spec.venv}: {base} -m venv")
        subprocess.run([base, "-m", "venv", str(spec.venv)], check=True)
    command = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    log(f"installing {' '.join(spec.packages)} into {spec.venv.name} (a few minutes, once)")
    subprocess.run([*command, *spec.packages], check=True)


def tool_env(workdir: Path) -> dict[str, str]:
    """A worker's environment: this one, with a fresh forgeml store in ``workdir``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FORGEML_")}
    env.update(WORKER_ENV)
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "FORGEML_HOME": str(workdir / "home"),
            "FORGEML_DB_URL": f"sqlite:///{workdir / 'forgeml.db'}",
            "FORGEML_ARTIFACTS_URL": str(workdir / "artifacts"),
            "XDG_CONFIG_HOME": str(workdir / "config"),
        }
    )
    return env


@contextlib.contextmanager
def scratch_dir(label: str) -> Iterator[Path]:
    """A fresh temporary directory, removed afterwards whatever happens."""
    path = Path(tempfile.mkdtemp(prefix=f"forgeml-bench-{label}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def tree_rss_mb(process: Any) -> float:
    """Resident memory of a process and all its children, in MB (0 once it has gone)."""
    import psutil

    total = 0
    with contextlib.suppress(psutil.Error):
        total += process.memory_info().rss
        for child in process.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += child.memory_info().rss
    return total / 1e6


def run_sampled(command: list[str], workdir: Path) -> tuple[int, str, str, list[list[float]]]:
    """Run a worker, sampling its resident memory every 0.2 s from outside.

    Output goes to files, not pipes, so a chatty worker can never block on a full pipe
    while the sampler is busy.
    """
    import psutil

    out_path, err_path = workdir / "worker.out", workdir / "worker.err"
    samples: list[list[float]] = []
    with out_path.open("w") as out, err_path.open("w") as err:
        started = time.perf_counter()
        process = subprocess.Popen(
            command, cwd=workdir, env=tool_env(workdir), stdout=out, stderr=err
        )
        watched = psutil.Process(process.pid)
        while process.poll() is None:
            samples.append(
                [round(time.perf_counter() - started, 3), round(tree_rss_mb(watched), 1)]
            )
            if time.perf_counter() - started > WORKER_TIMEOUT_S:
                process.kill()
                process.wait()
                break
            time.sleep(SAMPLE_INTERVAL_S)
    return process.returncode, out_path.read_text(), err_path.read_text(), samples


def run_workload(tool: str, workload: str, extra: list[str]) -> dict[str, Any]:
    """One workload of one tool in a fresh interpreter with a fresh store."""
    with scratch_dir(f"{tool}-{workload}") as workdir:
        command = [
            str(interpreter(tool)),
            str(Path(__file__).resolve()),
            "--tool",
            tool,
            "--workload",
            workload,
            "--workdir",
            str(workdir),
            "--json",
            *extra,
        ]
        started = time.perf_counter()
        code, stdout, stderr, samples = run_sampled(command, workdir)
        wall = time.perf_counter() - started
    if code != 0:
        tail = "\n".join(stderr.strip().splitlines()[-15:])
        log(f"  {tool} {workload} FAILED (exit {code}):\n{tail}")
        return {"error": tail.splitlines()[-1] if tail else f"exit {code}"}
    figures: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    figures["subprocess_wall_s"] = wall
    figures["sampled_peak_rss_mb"] = max((s[1] for s in samples), default=None)
    if workload == "ingest":
        figures["rss_samples"] = samples
    return figures


# -- data ---------------------------------------------------------------------------------


def make_table(rows: int, seed: int) -> Any:
    """The seeded 25-column table: ids, codes, timestamps, categories, ints, floats."""
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {"id": pa.array(rng.permutation(rows).astype(np.int64))}
    raw = np.hstack(
        [
            rng.integers(65, 91, (rows, 3), dtype=np.uint8),
            np.full((rows, 1), ord("-"), dtype=np.uint8),
            rng.integers(48, 58, (rows, 4), dtype=np.uint8),
        ]
    )
    offsets = np.arange(0, 8 * rows + 1, 8, dtype=np.int32)
    columns["code"] = pa.StringArray.from_buffers(
        rows, pa.py_buffer(offsets), pa.py_buffer(raw.tobytes())
    )
    start = np.datetime64("2024-01-01T00:00:00", "us")
    offsets_us = rng.integers(0, 365 * 86_400 * 10**6, rows).astype("timedelta64[us]")
    columns["ts"] = pa.array(start + offsets_us)
    for name, values in CATEGORIES.items():
        mask = rng.random(rows) < NULL_SHARE if name in NULLABLE else None
        indices = pa.array(rng.integers(0, len(values), rows), mask=mask)
        columns[name] = pa.array(values, pa.string()).take(indices)
    for name, (low, high) in INT_RANGES.items():
        columns[name] = pa.array(rng.integers(low, high + 1, rows, dtype=np.int64))
    for name, (flow, fhigh) in FLOAT_RANGES.items():
        mask = rng.random(rows) < NULL_SHARE if name in NULLABLE else None
        columns[name] = pa.array(rng.uniform(flow, fhigh, rows), mask=mask)
    return pa.table(columns)


def make_bad_table(good: Any) -> Any:
    """The first rows of the good table with one violation per kind of check."""
    import pyarrow as pa

    rows = good.slice(0, BAD_ROWS).to_pylist()
    rows[10]["cat_0"] = None
    rows[20]["int_0"] = 1_000
    rows[30]["cat_1"] = "unknown"
    rows[40]["id"] = rows[41]["id"]
    rows[50]["code"] = "AB-12"
    rows[70]["num_3"] = 1e9
    rows.append(dict(rows[60]))
    return pa.Table.from_pylist(rows, schema=good.schema)


def make_current_table(reference: Any, seed: int) -> Any:
    """The reference with an unseen category and duplicated ids, each in 300 rows."""
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(seed + 1)
    rows = reference.num_rows
    picked = rng.choice(rows, 2 * INJECTED_ROWS, replace=False)
    unseen_rows, duplicate_rows = picked[:INJECTED_ROWS], picked[INJECTED_ROWS:]
    sources = rng.choice(np.setdiff1d(np.arange(rows), picked), INJECTED_ROWS, replace=False)
    categories = np.array(reference[UNSEEN_COLUMN].to_pylist(), dtype=object)
    categories[unseen_rows] = UNSEEN_VALUE
    ids = reference["id"].to_numpy().copy()
    ids[duplicate_rows] = ids[sources]
    table = reference.set_column(
        reference.schema.get_field_index(UNSEEN_COLUMN),
        UNSEEN_COLUMN,
        pa.array(categories, pa.string()),
    )
    return table.set_column(table.schema.get_field_index("id"), "id", pa.array(ids))


def write_data(data_dir: Path, rows: int) -> dict[str, Any]:
    """good.parquet (also the reference), bad.parquet and current.parquet, zstd-compressed."""
    import pyarrow.parquet as pq

    start = time.perf_counter()
    good = make_table(rows, SEED)
    files = {
        "good.parquet": good,
        "bad.parquet": make_bad_table(good),
        "current.parquet": make_current_table(good, SEED),
    }
    sizes = {}
    for name, table in files.items():
        pq.write_table(table, data_dir / name, compression="zstd")
        sizes[name] = {"rows": table.num_rows, "bytes": (data_dir / name).stat().st_size}
    return {
        "rows": rows,
        "columns": len(COLUMNS),
        "files": sizes,
        "seconds": time.perf_counter() - start,
        "in_memory_bytes": good.nbytes,
    }


def prepare_csv(gigabytes: float, keep: bool, scratch: Path) -> tuple[Path, dict[str, Any]]:
    """The ingestion CSV: reused from the cache with --keep-csv, else written afresh."""
    if keep:
        CSV_CACHE_DIR.mkdir(parents=True, exist_ok=True)
        path = CSV_CACHE_DIR / f"bench-{gigabytes:g}gb-{SEED}.csv"
        sidecar = path.with_suffix(".json")
        if path.exists() and sidecar.exists():
            info = json.loads(sidecar.read_text())
            if info.get("bytes") == path.stat().st_size:
                log(f"  reusing the cached CSV {path}")
                return path, {**info, "cached": True}
    else:
        path = scratch / f"bench-{gigabytes:g}gb.csv"
    free = shutil.disk_usage(path.parent).free / 1e9
    check(
        free > gigabytes * 2.5, f"{free:.0f} GB free at {path.parent}; need {gigabytes * 2.5:.0f}"
    )
    log(f"  writing a {gigabytes:g} GB CSV at {path} ...")
    info = write_csv(path, gigabytes)
    if keep:
        path.with_suffix(".json").write_text(json.dumps(info))
    return path, info


# -- the report ---------------------------------------------------------------------------


@dataclass
class Target:
    """A promise about forgeml, the figure it was judged on, and whether it held."""

    target: str
    figure: str
    met: bool | None


@dataclass
class Report:
    """Everything one invocation measured, in the shape the tables and files need."""

    sizes: dict[str, Any] = field(default_factory=dict)
    validate: dict[str, dict[str, Any]] = field(default_factory=dict)
    profile: dict[str, dict[str, Any]] = field(default_factory=dict)
    ingest: dict[str, dict[str, Any]] = field(default_factory=dict)
    csv: dict[str, Any] = field(default_factory=dict)


def median_of(results: dict[str, dict[str, Any]], tool: str) -> float | None:
    """A tool's median time, or None when its worker failed or did not run."""
    value = results.get(tool, {}).get("median_s")
    return float(value) if isinstance(value, int | float) else None


def ratio(slower: float | None, faster: float | None) -> float | None:
    return None if not slower or not faster else slower / faster


def fmt_s(value: Any) -> str:
    """Seconds at a precision that reads well for both 0.05 s and 200 s."""
    if not isinstance(value, int | float):
        return "n/a"
    if value < 1:
        return f"{value * 1000:,.0f} ms"
    return f"{value:,.2f} s" if value < 10 else f"{value:,.1f} s"


def fmt_mb(value: Any) -> str:
    return f"{value:,.0f} MB" if isinstance(value, int | float) else "n/a"


def fmt_gb(value: float) -> str:
    return f"{value:.1f} GB" if value >= 1 else f"{value:.2f} GB"


def fmt_x(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.0f}x" if value >= 10 else f"{value:.2f}x"


def fmt_yes(value: Any) -> str:
    return "n/a" if value is None else ("yes" if value else "no")


def fmt_met(met: bool | None) -> str:
    return "n/a" if met is None else ("met" if met else "NOT met")


def relative_text(relative: float | None) -> str:
    """How a tool's time compares with forgeml's, said in the direction that holds."""
    if relative is None:
        return "n/a"
    return f"{fmt_x(relative)} slower" if relative >= 1 else f"{fmt_x(1 / relative)} faster"


def samples_note(figures: dict[str, Any]) -> str:
    count = len(figures.get("samples_s") or [])
    return "" if count in (0, REPEATS) else f" ({count} sample{'s' if count > 1 else ''})"


def validation_table(report: Report) -> tuple[list[str], list[list[str]]]:
    """Per tool: load, validation (median), memory, how much slower than forgeml, agreement."""
    header = [
        "Tool (frame)",
        "Load",
        "Validate (median)",
        "Peak RSS",
        "vs forgeml",
        "Same failures",
    ]
    base = median_of(report.validate, "forgeml")
    rows = []
    for tool in VALIDATE_TOOLS:
        r = report.validate.get(tool, {})
        if "error" in r or not r:
            rows.append([TOOL_LABELS[tool], "failed", r.get("error", "did not run"), "", "", ""])
            continue
        relative = ratio(median_of(report.validate, tool), base)
        rows.append(
            [
                f"{TOOL_LABELS[tool]} ({r['frame']})",
                fmt_s(r["load_s"]),
                fmt_s(r["median_s"]) + samples_note(r),
                fmt_mb(r["peak_rss_mb"]),
                "1.00x" if tool == "forgeml" else relative_text(relative),
                fmt_yes(r["agrees_on_bad"]),
            ]
        )
    return header, rows


def profile_table(report: Report) -> tuple[list[str], list[list[str]]]:
    """Per tool: load, profile + suite/tests + report time, memory, and what was flagged."""
    header = [
        "Tool",
        "Load",
        "Profile + checks + report (median)",
        "Peak RSS",
        "vs forgeml",
        "Flags unseen category",
        "Flags duplicated ids",
    ]
    base = median_of(report.profile, "forgeml")
    rows = []
    for tool in PROFILE_TOOLS:
        r = report.profile.get(tool, {})
        if "error" in r or not r:
            rows.append(
                [TOOL_LABELS[tool], "failed", r.get("error", "did not run"), "", "", "", ""]
            )
            continue
        relative = ratio(median_of(report.profile, tool), base)
        rows.append(
            [
                TOOL_LABELS[tool],
                fmt_s(r["load_s"]),
                fmt_s(r["median_s"]) + samples_note(r),
                fmt_mb(r["peak_rss_mb"]),
                "1.00x" if tool == "forgeml" else relative_text(relative),
                fmt_yes(r["flags_unseen_category"]),
                fmt_yes(r["flags_duplicate_ids"]),
            ]
        )
    return header, rows


def ingest_table(report: Report) -> tuple[list[str], list[list[str]]]:
    """Per tool: wall time, throughput and peak memory of the CSV ingestion."""
    header = [
        "Tool",
        "Rows",
        "Wall",
        "Rows/s",
        "CSV MB/s",
        "Peak RSS (sampled)",
        "Peak RSS (ru_maxrss)",
    ]
    csv_bytes = report.csv.get("bytes") or 0
    rows = []
    labels = {"forgeml": "forgeml Dataset.ingest", "duckdb": "DuckDB COPY to Parquet"}
    for tool in INGEST_TOOLS:
        r = report.ingest.get(tool, {})
        if "error" in r or not r:
            rows.append([labels[tool], "failed", r.get("error", "did not run"), "", "", "", ""])
            continue
        rows.append(
            [
                labels[tool],
                f"{r['rows']:,}",
                fmt_s(r["seconds"]),
                f"{r['rows'] / r['seconds']:,.0f}",
                f"{csv_bytes / 1e6 / r['seconds']:,.0f}",
                fmt_mb(r.get("sampled_peak_rss_mb")),
                fmt_mb(r.get("peak_rss_mb")),
            ]
        )
    return header, rows


def judge(report: Report) -> list[Target]:
    """The promised targets, each marked met or NOT met from the measured figures."""
    targets = []
    forgeml = median_of(report.validate, "forgeml")
    if report.validate:
        pandera = ratio(median_of(report.validate, "pandera"), forgeml)
        targets.append(
            Target(
                "validation faster than pandera (polars)",
                f"{fmt_x(pandera)} (forgeml {fmt_s(forgeml)}, pandera "
                f"{fmt_s(median_of(report.validate, 'pandera'))})",
                None if pandera is None else pandera > 1,
            )
        )
        gx = ratio(median_of(report.validate, "gx"), forgeml)
        targets.append(
            Target(
                "validation >= 5x faster than Great Expectations",
                f"{fmt_x(gx)} (GX {fmt_s(median_of(report.validate, 'gx'))})",
                None if gx is None else gx >= 5,
            )
        )
        scripts = [median_of(report.validate, t) for t in ("duckdb", "polars")]
        known = [s for s in scripts if s]
        fastest = min(known) if known else None
        slower = ratio(forgeml, fastest)
        which = "DuckDB" if fastest == scripts[0] else "polars"
        targets.append(
            Target(
                "validation within 2x of the faster hand-written script",
                f"{slower:.2f}x the {which} script's time ({fmt_s(fastest)})" if slower else "n/a",
                None if slower is None else slower <= 2,
            )
        )
    if report.profile:
        fm_profile = median_of(report.profile, "forgeml")
        evidently = ratio(median_of(report.profile, "evidently"), fm_profile)
        targets.append(
            Target(
                "profile + suite + report >= 10x faster than Evidently",
                f"{fmt_x(evidently)} (forgeml {fmt_s(fm_profile)}, Evidently "
                f"{fmt_s(median_of(report.profile, 'evidently'))})",
                None if evidently is None else evidently >= 10,
            )
        )
        found = report.profile.get("forgeml", {})
        for key, what in (
            ("flags_unseen_category", "unseen category"),
            ("flags_duplicate_ids", "duplicated ids"),
        ):
            targets.append(
                Target(f"default suite flags the {what}", fmt_yes(found.get(key)), found.get(key))
            )
    if report.ingest:
        r = report.ingest.get("forgeml", {})
        peaks = [r.get("sampled_peak_rss_mb"), r.get("peak_rss_mb")]
        peak = max((p for p in peaks if isinstance(p, int | float)), default=None)
        gigabytes = (report.csv.get("bytes") or 0) / 1e9
        targets.append(
            Target(
                f"{fmt_gb(gigabytes)} CSV ingest peak RSS < {INGEST_RSS_TARGET_MB / 1000:.1f} GB",
                f"{fmt_mb(peak)} (larger of sampled and ru_maxrss)",
                None if peak is None else peak < INGEST_RSS_TARGET_MB,
            )
        )
    return targets


def notes(report: Report) -> list[str]:
    """What a reader needs to interpret the tables: sizes, samples, what was flagged."""
    lines = []
    if report.sizes:
        files = report.sizes["files"]
        lines.append(
            f"Validation data: {report.sizes['rows']:,} rows x {report.sizes['columns']} columns, "
            f"{files['good.parquet']['bytes'] / 1e6:.0f} MB of zstd Parquet "
            f"({report.sizes['in_memory_bytes'] / 1e6:.0f} MB as Arrow); "
            f"{len(check_keys())} checks; the bad file has {files['bad.parquet']['rows']:,} rows."
        )
    for tool in VALIDATE_TOOLS:
        r = report.validate.get(tool, {})
        if "samples_s" in r:
            samples = ", ".join(fmt_s(s) for s in r["samples_s"])
            lines.append(
                f"{TOOL_LABELS[tool]}: warm-up {fmt_s(r['warmup_s'])}, samples {samples}; "
                f"import {fmt_s(r['import_s'])}, set-up {fmt_s(r['setup_s'])}; failures found "
                f"in the bad file: {', '.join(r['failed_on_bad']) or 'none'}."
            )
    fm_profile = report.profile.get("forgeml", {})
    if "failed_on_current" in fm_profile:
        failed = ", ".join(
            f"{f['name']} ({f['severity']})" for f in fm_profile["failed_on_current"]
        )
        report_state = (
            "HTML report by forgeml.data.report.write_report"
            if fm_profile.get("report")
            else "no HTML report (forgeml.data.report.write_report does not exist in this checkout)"
        )
        lines.append(
            f"forgeml profile workload: {fm_profile['suite_checks']} suggested checks, "
            f"{report_state}; the suite passes the reference: "
            f"{fmt_yes(fm_profile['suite_passes_reference'])}; failed on current: "
            f"{failed or 'none'}."
        )
    ev = report.profile.get("evidently", {})
    if "failed_tests" in ev:
        failed = "; ".join(f["name"] for f in ev["failed_tests"]) or "none"
        lines.append(
            f"Evidently DataSummaryPreset: {ev['tests']} tests and {ev['metrics']} metrics; failed "
            f"tests on current: {failed}. The unseen category appears in its UniqueValueCount "
            f"metric: {fmt_yes(ev['unseen_category_in_metrics'])}."
        )
    if report.csv:
        c = report.csv
        lines.append(
            f"CSV: {c['bytes'] / 1e9:.2f} GB, {c['rows']:,} rows x {len(COLUMNS)} columns, "
            + (
                "reused from the cache."
                if c.get("cached")
                else f"written in {fmt_s(c['seconds'])}."
            )
        )
    fm_ingest = report.ingest.get("forgeml", {})
    if "stream_s" in fm_ingest and fm_ingest["stream_s"] is not None:
        lines.append(
            f"forgeml ingest: CSV to Parquet streaming took {fmt_s(fm_ingest['stream_s'])}, then "
            f"{fmt_s(fm_ingest['after_stream_s'])} for the profile, the digest and the catalogue "
            f"entry; Parquet {fm_ingest['parquet_bytes'] / 1e6:,.0f} MB."
        )
    return lines


def print_tables(sections: list[tuple[str, list[str], list[list[str]]]]) -> None:
    """The tables on stdout with rich (installed in forgeml's venv)."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 160)
    for title, header, rows in sections:
        table = Table(title=title)
        for i, name in enumerate(header):
            table.add_column(name, justify="left" if i == 0 else "right")
        for cells in rows:
            table.add_row(*cells)
        console.print(table)


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines) + "\n"


def sections(report: Report) -> list[tuple[str, list[str], list[list[str]]]]:
    """The tables of this run, titled; workloads that did not run are left out."""
    out = []
    if report.validate:
        out.append(
            (
                f"Validation, {report.sizes.get('rows', 0):,} rows x {len(COLUMNS)} columns, "
                f"{len(check_keys())} checks",
                *validation_table(report),
            )
        )
    if report.profile:
        out.append(
            ("Profile + default checks + HTML report, current vs reference", *profile_table(report))
        )
    if report.ingest:
        out.append(
            (f"Ingesting a {fmt_gb(report.csv.get('bytes', 0) / 1e9)} CSV", *ingest_table(report))
        )
    targets = judge(report)
    out.append(
        (
            "Targets",
            ["Target", "Figure", "Met"],
            [[t.target, t.figure, fmt_met(t.met)] for t in targets],
        )
    )
    return out


def machine_info() -> dict[str, Any]:
    """Where the figures came from: they only compare with runs on the same machine."""
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "orchestrator_python": platform.python_version(),
    }
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError, ValueError, IndexError):
        first = Path("/proc/meminfo").read_text().splitlines()[0]
        info["memory_gib"] = round(int(first.split()[1]) / 1024**2, 1)
    return info


def source_state() -> dict[str, Any]:
    """The forgeml code measured: git commit, uncommitted changes, a digest of src/."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted((ROOT / "src").rglob("*.py")):
        digest.update(path.relative_to(ROOT).as_posix().encode())
        digest.update(path.read_bytes())

    def git(*args: str) -> str | None:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else None

    status = git("status", "--porcelain", "--", "src")
    return {
        "commit": git("rev-parse", "HEAD"),
        "src_uncommitted_changes": None if status is None else bool(status),
        "src_digest": digest.hexdigest(),
    }


def all_versions(report: Report) -> dict[str, Any]:
    """Each worker's package versions and Python, by workload and tool."""
    versions: dict[str, Any] = {}
    for workload in WORKLOADS:
        for tool, figures in getattr(report, workload).items():
            if "versions" in figures:
                versions[f"{workload}/{tool}"] = {
                    **figures["versions"],
                    "python": figures.get("python"),
                }
    return versions


def versions_line(report: Report) -> str:
    """Every measured package once, with the version its own worker imported."""
    seen: dict[str, str] = {}
    for packages in all_versions(report).values():
        for name, version in packages.items():
            if name != "python" and version and name not in seen:
                seen[name] = version
    pandas = {
        tool: report.profile.get(tool, {}).get("versions", {}).get("pandas")
        or report.validate.get(tool, {}).get("versions", {}).get("pandas")
        for tool in ("gx", "evidently")
    }
    parts = [f"{name} {version}" for name, version in seen.items() if name != "pandas"]
    parts += [f"pandas {v} ({TOOL_LABELS[t]})" for t, v in pandas.items() if v]
    return ", ".join(parts)


def write_results(report: Report, total_s: float, source: dict[str, Any]) -> None:
    """results/data.json (every raw number), results/data.md (the tables), results/data.png."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    date = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    targets = judge(report)
    document = {
        "date": date,
        "machine": machine_info(),
        "forgeml_source": source,
        "versions": all_versions(report),
        "settings": {
            "seed": SEED,
            "repeats": REPEATS,
            "slow_budget_s": SLOW_BUDGET_S,
            "sample_interval_s": SAMPLE_INTERVAL_S,
            "checks": check_keys(),
            "bad_expected": BAD_EXPECTED,
            "injected_rows": INJECTED_ROWS,
            "environment": WORKER_ENV,
        },
        "sizes": {"parquet": report.sizes, "csv": report.csv},
        "total_seconds": total_s,
        "targets": [asdict(t) for t in targets],
        "results": {
            "validate": report.validate,
            "profile": report.profile,
            "ingest": report.ingest,
        },
        "notes": notes(report),
    }
    (RESULTS_DIR / "data.json").write_text(json.dumps(document, indent=2, default=str) + "\n")
    commit = (source.get("commit") or "unknown")[:10]
    if source.get("src_uncommitted_changes"):
        commit += " + uncommitted changes in src/"
    info = machine_info()
    text = [
        "# Data benchmark results\n",
        f"{date}, {info['cpu_count']} CPUs, {info.get('memory_gib', '?')} GiB, forgeml "
        f"(commit {commit}), Python {platform.python_version()}, whole benchmark "
        f"{total_s:.0f} s.\n",
        f"Versions: {versions_line(report)}.\n",
    ]
    if source.get("src_changed_during_run"):
        text.append("Files under src/ changed while this run was in progress.\n")
    for title, header, rows in sections(report):
        text += [f"## {title}\n", markdown(header, rows)]
    text += ["## Notes\n", "\n".join(f"- {line}" for line in notes(report)) + "\n"]
    (RESULTS_DIR / "data.md").write_text("\n".join(text))
    plot(report, RESULTS_DIR / "data.png")


def plot(report: Report, path: Path) -> None:
    """Three panels: validation times, profile times, and the ingest worker's memory over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(
        1, 3, figsize=(17, 4.2), gridspec_kw={"width_ratios": [1.3, 1.1, 1.2]}
    )
    bar_panel(
        axes[0],
        report.validate,
        VALIDATE_TOOLS,
        f"Validation: {report.sizes.get('rows', 0):,} rows x {len(COLUMNS)} columns, "
        f"{len(check_keys())} checks",
    )
    bar_panel(axes[1], report.profile, PROFILE_TOOLS, "Profile + default checks + HTML report")
    memory = axes[2]
    for tool, colour in (("forgeml", "#2a9d8f"), ("duckdb", "#8d99ae")):
        samples = report.ingest.get(tool, {}).get("rss_samples") or []
        if samples:
            label = "forgeml Dataset.ingest" if tool == "forgeml" else "DuckDB COPY (baseline)"
            memory.plot([s[0] for s in samples], [s[1] for s in samples], label=label, color=colour)
    memory.axhline(INGEST_RSS_TARGET_MB, color="#e76f51", linestyle="--", label="target")
    gigabytes = (report.csv.get("bytes") or 0) / 1e9
    memory.set_title(f"Ingesting a {fmt_gb(gigabytes)} CSV: worker RSS")
    memory.set_xlabel("seconds since the worker started")
    memory.set_ylabel("RSS, MB (sampled every 0.2 s)")
    memory.set_ylim(0, INGEST_RSS_TARGET_MB * 1.3)
    memory.legend(fontsize=8, loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def bar_panel(
    axis: Any, results: dict[str, dict[str, Any]], tools: tuple[str, ...], title: str
) -> None:
    """Horizontal bars of median times, each labelled with its multiple of forgeml's time."""
    base = median_of(results, "forgeml")
    measured = [(tool, median_of(results, tool)) for tool in tools]
    shown = [(tool, value) for tool, value in measured if value is not None]
    positions = list(range(len(shown)))
    values = [value for _, value in shown]
    colours = ["#2a9d8f" if tool == "forgeml" else "#8d99ae" for tool, _ in shown]
    axis.barh(positions, values, color=colours)
    axis.set_xscale("log")
    axis.set_yticks(positions, [TOOL_LABELS[tool] for tool, _ in shown])
    axis.invert_yaxis()
    for position, (tool, value) in zip(positions, shown, strict=True):
        relative = ratio(value, base)
        text = fmt_s(value) + (
            "" if tool == "forgeml" or relative is None else f"  = {relative:.2f}x forgeml's time"
        )
        axis.text(value * 1.1, position, text, va="center", fontsize=8)
    if values:
        axis.set_xlim(min(values) / 2, max(values) * 40)
    axis.set_xlabel("median seconds (log scale; shorter is faster)")
    axis.set_title(title, fontsize=10)


def orchestrate(args: argparse.Namespace) -> int:
    """The whole benchmark: environments, data, every workload of every tool, the report."""
    started = time.perf_counter()
    source = source_state()
    only = args.workload or list(WORKLOADS)
    rows = QUICK_ROWS if args.quick else ROWS
    gigabytes = args.csv_gb if args.csv_gb is not None else (QUICK_CSV_GB if args.quick else CSV_GB)
    needed = sorted(tool for tool, spec in FOREIGN.items() if spec.workload in only)
    for tool in needed:
        ensure_venv(tool)
    report = Report()
    with scratch_dir("data") as data_dir:
        if "validate" in only or "profile" in only:
            log(f"writing {rows:,} seeded rows to Parquet ...")
            report.sizes = write_data(data_dir, rows)
        for workload, tools, results in (
            ("validate", VALIDATE_TOOLS, report.validate),
            ("profile", PROFILE_TOOLS, report.profile),
        ):
            if workload not in only:
                continue
            for tool in tools:
                log(f"running {workload} with {tool} ...")
                results[tool] = run_workload(tool, workload, ["--data-dir", str(data_dir)])
                log_done(results[tool])
        if "ingest" in only:
            csv_path, report.csv = prepare_csv(gigabytes, args.keep_csv, data_dir)
            try:
                for tool in INGEST_TOOLS:
                    log(f"running ingest with {tool} ...")
                    extra = ["--csv", str(csv_path), "--expect-rows", str(report.csv["rows"])]
                    report.ingest[tool] = run_workload(tool, "ingest", extra)
                    log_done(report.ingest[tool])
            finally:
                if not args.keep_csv:
                    csv_path.unlink(missing_ok=True)
    total_s = time.perf_counter() - started
    source["src_changed_during_run"] = source_state()["src_digest"] != source["src_digest"]
    if source["src_changed_during_run"]:
        log("WARNING: files under src/ changed while the benchmark ran; figures mix versions")
    print_tables(sections(report))
    for line in notes(report):
        print(f"- {line}")
    print(f"total benchmark time: {total_s:.0f} s")
    partial = args.quick or sorted(only) != sorted(WORKLOADS) or args.csv_gb not in (None, CSV_GB)
    if partial:
        print("(partial, --quick or resized run: results/ not written)")
    else:
        write_results(report, total_s, source)
        print(f"wrote {RESULTS_DIR / 'data.json'}, data.md and data.png")
    failed = [f"{w}/{t}" for w in WORKLOADS for t, r in getattr(report, w).items() if "error" in r]
    if failed:
        print(f"failed workloads: {', '.join(failed)}")
        return 1
    return 0


def log_done(figures: dict[str, Any]) -> None:
    wall = figures.get("subprocess_wall_s")
    if wall is not None:
        log(f"  done in {wall:.1f} s")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--workload", choices=WORKLOADS, action="append", help="run only this workload (repeatable)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="100,000 rows and a 0.2 GB CSV; results/ is not written",
    )
    parser.add_argument(
        "--csv-gb", type=float, help=f"size of the ingestion CSV in GB (default {CSV_GB:g})"
    )
    parser.add_argument(
        "--keep-csv",
        action="store_true",
        help=f"keep the ingestion CSV in {CSV_CACHE_DIR} and reuse it on later runs",
    )
    worker = parser.add_argument_group("worker mode (used by the orchestrator)")
    worker.add_argument("--tool", choices=sorted(TOOL_LABELS), help="measure this tool only")
    worker.add_argument("--workdir", type=Path, help="the worker's fresh scratch directory")
    worker.add_argument("--data-dir", type=Path, help="where good/bad/current.parquet are")
    worker.add_argument("--csv", type=Path, help="the CSV file to ingest")
    worker.add_argument("--expect-rows", type=int, help="rows the CSV holds")
    worker.add_argument("--json", action="store_true", help="print figures as one JSON line")
    parser.add_argument(
        "--write-data",
        type=Path,
        metavar="DIR",
        help="only write good/bad/current.parquet into DIR (for running a worker by hand)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.write_data is not None:
        args.write_data.mkdir(parents=True, exist_ok=True)
        sizes = write_data(args.write_data, QUICK_ROWS if args.quick else ROWS)
        print(json.dumps(sizes["files"]))
        return 0
    if args.tool is not None:
        if not args.workload or len(args.workload) != 1 or args.workdir is None:
            raise SystemExit("worker mode needs --tool, one --workload and --workdir")
        run_worker(args)
        return 0
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
