"""``forgeml data``: ingest, list, show, profile, validate and report on datasets."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from forgeml.cli.output import console, number, print_json, size, sparkline, when

if TYPE_CHECKING:
    from forgeml.data.dataset import Dataset
    from forgeml.data.suite import Suite, ValidationResult

app = typer.Typer(help="Version, profile and validate datasets.", no_args_is_help=True)

JSON = typer.Option(False, "--json", help="Print JSON instead of tables.")
VERSION = typer.Option(None, "--version", "-v", help="Version number (default: the newest).")
_REF = re.compile(r"^(?:datasets:/)?(?P<name>[^/@]+)(?:[/@](?P<version>\d+))?/?$")


def parse_reference(text: str, version: int | None = None) -> tuple[str, int | None]:
    """``name``, ``name@3``, ``name/3`` or ``datasets:/name/3`` -> (name, version)."""
    from forgeml.errors import InvalidArgumentError

    match = _REF.match(text.strip())
    if match is None:
        raise InvalidArgumentError(
            f"{text!r} is not a dataset: use NAME, NAME@VERSION or datasets:/NAME/VERSION"
        )
    found = int(match.group("version")) if match.group("version") else None
    if found is not None and version is not None and found != version:
        raise InvalidArgumentError(f"{text!r} names version {found} but --version says {version}")
    return match.group("name"), found if found is not None else version


def load(text: str, version: int | None = None) -> Dataset:
    from forgeml.data.dataset import Dataset

    name, number_ = parse_reference(text, version)
    return Dataset.get(name, number_)


def _key_values(items: list[str] | None, option: str) -> dict[str, Any]:
    from forgeml.errors import InvalidArgumentError

    parsed: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidArgumentError(f"{option} {item!r}: expected KEY=VALUE")
        lowered = value.lower()
        parsed[key] = True if lowered == "true" else False if lowered == "false" else value
    return parsed


def version_dict(dataset: Dataset) -> dict[str, Any]:
    record = dataset.record
    return {
        "name": record.name,
        "version": record.version,
        "uri": dataset.uri,
        "digest": record.digest,
        "size": record.size,
        "row_count": record.row_count,
        "columns": record.columns,
        "source": record.source,
        "run_id": record.run_id,
        "created_at": record.created_at,
        "created_by": record.created_by,
    }


@app.command()
def ingest(
    source: str = typer.Argument(None, help="CSV or Parquet: a file, a glob or a directory."),
    name: str = typer.Option(..., "--name", "-n", help="Dataset name."),
    description: str | None = typer.Option(None, "--description", "-d"),
    column_type: list[str] | None = typer.Option(
        None, "--type", "-t", help="COLUMN=TYPE for CSV, e.g. id=BIGINT; repeatable."
    ),
    csv_option: list[str] | None = typer.Option(
        None, "--csv", help="CSV reader option KEY=VALUE, e.g. delim=';'; repeatable."
    ),
    sql: str | None = typer.Option(
        None, "--sql", help="Ingest the rows of this SQL query instead of a file."
    ),
    url: str | None = typer.Option(
        None, "--url", help="Database URL for --sql (any SQLAlchemy URL)."
    ),
    as_json: bool = JSON,
) -> None:
    """Store a new version of a dataset (or find the identical one already stored)."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from forgeml.data.dataset import Dataset
    from forgeml.data.sources import SQL
    from forgeml.errors import InvalidArgumentError

    if (sql is None) == (source is None):
        raise InvalidArgumentError("give a SOURCE file, or --sql with --url, not both")
    if sql is not None and url is None:
        raise InvalidArgumentError("--sql needs --url (the database to query)")
    target: Any = SQL(sql, url or "") if sql is not None else source
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]ingesting[/] {task.description}"),
        TextColumn("{task.fields[rows]:,} rows"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=as_json,
    ) as progress:
        task = progress.add_task(name, rows=0)
        dataset = Dataset.ingest(
            target,
            name,
            description=description,
            types=_key_values(column_type, "--type") or None,
            csv=_key_values(csv_option, "--csv") or None,
            on_rows=lambda rows: progress.update(task, rows=rows),
        )
    if as_json:
        print_json(version_dict(dataset))
        return
    console.print(
        f"{dataset.uri}: {dataset.row_count:,} rows x {len(dataset.columns)} columns, "
        f"{size(dataset.record.size)} Parquet, sha256 {dataset.digest[:12]}"
    )


@app.command("list")
def list_datasets(as_json: bool = JSON) -> None:
    """Datasets with their newest version."""
    from forgeml.data.dataset import Dataset

    datasets = Dataset.all()
    if as_json:
        print_json(
            [
                {
                    "name": d.name,
                    "latest_version": d.latest_version,
                    "versions": d.versions,
                    "description": d.description,
                    "updated_at": d.updated_at,
                }
                for d in datasets
            ]
        )
        return
    if not datasets:
        console.print("no datasets")
        return
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for column in ("name", "latest", "versions", "updated", "description"):
        table.add_column(column)
    for d in datasets:
        table.add_row(
            d.name,
            f"v{d.latest_version}" if d.latest_version else "-",
            str(d.versions),
            when(d.updated_at),
            d.description or "",
        )
    console.print(table)


@app.command()
def show(
    dataset: str = typer.Argument(..., help="NAME, NAME@VERSION or datasets:/NAME/VERSION."),
    version: int | None = VERSION,
    as_json: bool = JSON,
) -> None:
    """A version's columns with their profile, its source, and its validations."""
    from forgeml import backend

    found = load(dataset, version)
    validations = backend.datasets().list_validations(found.name, found.version)
    if as_json:
        data = version_dict(found)
        data["profile"] = found.profile
        data["validations"] = [
            {
                "suite": v.suite,
                "success": v.success,
                "errors": v.errors,
                "warnings": v.warnings,
                "created_at": v.created_at,
            }
            for v in validations
        ]
        print_json(data)
        return
    record = found.record
    console.print(
        f"[bold]{found.uri}[/]  {record.row_count:,} rows x {len(record.columns)} columns, "
        f"{size(record.size)}, sha256 {record.digest[:12]}"
    )
    console.print(f"  [dim]source  [/]{_describe_source(record.source)}")
    console.print(
        f"  [dim]created [/]{when(record.created_at)} by {record.created_by}"
        + (f" in run {record.run_id[:8]}" if record.run_id else "")
    )
    _profile_table(found.columns, found.profile)
    for v in validations[:5]:
        state = "[green]passed[/]" if v.success else "[red]failed[/]"
        console.print(
            f"  {when(v.created_at)}  suite {v.suite}: {state} "
            f"({v.errors} errors, {v.warnings} warnings)"
        )


def _describe_source(source: dict[str, Any]) -> str:
    if source.get("kind") == "sql":
        return f"SQL {source.get('url')}: {source.get('query')}"
    files: list[str] = source.get("files") or []
    if files:
        return files[0] + (f" and {len(files) - 1} more files" if len(files) > 1 else "")
    return str(source.get("kind", "-"))


def _profile_table(columns: list[dict[str, Any]], profile: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for heading in (
        "column",
        "type",
        "semantic",
        "nulls",
        "distinct",
        "min",
        "mean",
        "max",
        "distribution",
    ):
        table.add_column(
            heading,
            justify="right" if heading in ("nulls", "distinct", "min", "mean", "max") else "left",
        )
    stats = profile.get("columns", {})
    for column in columns:
        s = stats.get(column["name"], {})
        histogram = s.get("histogram")
        if histogram:
            shape = sparkline([float(c) for c in histogram["counts"]])
        elif s.get("top"):
            shape = ", ".join(
                f"{t['value']} {t['count'] / max(s.get('count') or 1, 1):.0%}" for t in s["top"][:3]
            )
        else:
            shape = ""
        is_time = s.get("kind") == "temporal"
        table.add_row(
            column["name"],
            column["type"][:24],
            column["semantic"],
            f"{s.get('null_fraction', 0):.1%}" if s.get("nulls") else "",
            f"{s.get('distinct', 0):,}" + ("~" if s.get("distinct_approximate") else ""),
            _stat(s.get("min"), is_time),
            _stat(s.get("mean"), is_time),
            _stat(s.get("max"), is_time),
            shape,
        )
    console.print(table)


def _stat(value: float | None, is_time: bool) -> str:
    if value is None:
        return ""
    return when(value)[:10] if is_time else number(value)


@app.command()
def profile(
    dataset: str = typer.Argument(..., help="NAME, NAME@VERSION or datasets:/NAME/VERSION."),
    version: int | None = VERSION,
    as_json: bool = JSON,
) -> None:
    """Profile a stored version again and show the result."""
    from forgeml.data.dataset import compute_profile

    found = load(dataset, version)
    with console.status(f"profiling {found.uri} ({found.row_count:,} rows)", spinner="dots"):
        fresh = compute_profile(found)
    if as_json:
        print_json(fresh)
        return
    console.print(f"[bold]{found.uri}[/]  {fresh['row_count']:,} rows")
    _profile_table(found.columns, fresh)


def _suite(suite_path: Path | None, suggest_from: Dataset | None) -> Suite:
    from forgeml.data.suite import Suite, suggest_suite
    from forgeml.errors import InvalidArgumentError

    if suite_path is not None:
        return Suite.from_yaml(suite_path)
    if suggest_from is not None:
        return suggest_suite(suggest_from)
    raise InvalidArgumentError("give --suite FILE.yaml, or --suggest to derive one from the data")


@app.command()
def validate(
    dataset: str = typer.Argument(..., help="NAME, NAME@VERSION or datasets:/NAME/VERSION."),
    version: int | None = VERSION,
    suite_path: Path | None = typer.Option(None, "--suite", "-s", help="Suite in YAML."),
    suggest: str | None = typer.Option(
        None, "--suggest", help="Derive the suite from this dataset's profile (e.g. NAME@1)."
    ),
    reference: str | None = typer.Option(
        None, "--reference", "-r", help="Dataset that drift checks compare with."
    ),
    save_suite: Path | None = typer.Option(
        None, "--save-suite", help="Also write the suite used as YAML."
    ),
    as_json: bool = JSON,
) -> None:
    """Run a suite; exit status 1 when a check of severity "error" fails."""
    found = load(dataset, version)
    suite = _suite(suite_path, load(suggest) if suggest else None)
    reference_data = load(reference) if reference else None
    with console.status(
        f"validating {found.uri} ({found.row_count:,} rows, {len(suite.checks)} checks)",
        spinner="dots",
    ):
        result = found.validate(suite, reference=reference_data)
    if save_suite is not None:
        save_suite.write_text(suite.to_yaml())
    if as_json:
        print_json(result.to_dict())
    else:
        print_result(result)
    if not result.success:
        sys.exit(1)


def print_result(result: ValidationResult) -> None:
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for heading in ("", "check", "severity", "observed", "expected"):
        table.add_column(heading)
    for r in result.results:
        mark = (
            "[green]✓[/]"
            if r.passed
            else ("[red]✗[/]" if r.severity == "error" else "[yellow]![/]")
        )
        observed = r.message or _compact(r.observed)
        table.add_row(mark, r.name, r.severity, observed, r.expected)
    console.print(table)
    state = "[green]passed[/]" if result.success else "[red]FAILED[/]"
    console.print(
        f"suite {result.suite}: {state}, {result.errors} errors, {result.warnings} warnings, "
        f"{len(result.results)} checks on {result.row_count:,} rows in {result.seconds:.2f}s"
    )


def _compact(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={_compact(v)}" for k, v in value.items() if v not in (None, [], {}))
    if isinstance(value, float):
        return number(value)
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value[:5])) + (", ...]" if len(value) > 5 else "]")
    return str(value)


@app.command()
def report(
    dataset: str = typer.Argument(..., help="NAME, NAME@VERSION or datasets:/NAME/VERSION."),
    out: Path = typer.Option(..., "--out", "-o", help="report.html or report.json"),
    version: int | None = VERSION,
    suite_path: Path | None = typer.Option(None, "--suite", "-s", help="Suite in YAML to include."),
    suggest: str | None = typer.Option(
        None, "--suggest", help="Include a suite derived from this dataset."
    ),
    reference: str | None = typer.Option(
        None, "--reference", "-r", help="Dataset drift checks compare with."
    ),
) -> None:
    """Write a self-contained HTML report (charts, missing values, checks) or its JSON."""
    from forgeml.data.report import write_report

    found = load(dataset, version)
    suite = (
        _suite(suite_path, load(suggest) if suggest else None) if (suite_path or suggest) else None
    )
    written = write_report(
        found, out, suite=suite, reference=load(reference) if reference else None
    )
    console.print(f"wrote {written}")
