"""``forgeml runs``: list, show and compare tracked runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from forgeml.cli.output import (
    STATUS_STYLE,
    console,
    duration,
    number,
    print_json,
    size,
    sparkline,
    when,
)

if TYPE_CHECKING:
    from forgeml.store.records import Run

app = typer.Typer(help="Browse tracked runs.", no_args_is_help=True)

JSON = typer.Option(False, "--json", help="Print JSON instead of a table.")


def run_dict(run: Run) -> dict[str, Any]:
    return {
        "id": run.id,
        "experiment": run.experiment,
        "name": run.name,
        "status": run.status.value,
        "user": run.user,
        "start_time": run.start_time,
        "end_time": run.end_time,
        "duration_s": run.duration,
        "parent_id": run.parent_id,
        "git_sha": run.git_sha,
        "git_dirty": run.git_dirty,
        "command": run.command,
        "host": run.host,
        "params": run.params,
        "metrics": run.metrics,
        "tags": run.tags,
        "system": run.system,
        "error": run.error,
    }


@app.command("list")
def list_runs(
    experiment: list[str] = typer.Option(
        None, "--experiment", "-e", help="Only these experiments."
    ),
    filter_: str = typer.Option(
        "", "--filter", "-f", help="e.g. \"metrics.auc > 0.9 and params.model = 'gbm'\""
    ),
    order_by: list[str] = typer.Option(
        None, "--order-by", "-o", help="e.g. 'metrics.auc desc'; repeatable."
    ),
    limit: int = typer.Option(20, "--limit", "-n", min=1, max=50_000, help="Runs per page."),
    page_token: str | None = typer.Option(
        None, "--page-token", help="Continue from a previous page."
    ),
    as_json: bool = JSON,
) -> None:
    """List runs, newest first unless --order-by says otherwise."""
    from forgeml.tracking.fluent import search_runs

    page = search_runs(
        filter_,
        experiment=experiment or None,
        order_by=order_by or None,
        max_results=limit,
        page_token=page_token,
    )
    if as_json:
        print_json({"runs": [run_dict(r) for r in page], "next_page_token": page.next_page_token})
        return
    if not page:
        console.print("no runs match")
        return
    from rich.table import Table

    mentioned = _mentioned_keys(filter_, order_by or [])
    room = max(1, (console.width - 56) // 11)  # extra columns that fit beside the fixed ones
    metric_keys = _column_keys([r.metrics for r in page], mentioned["metric"], min(3, room))
    param_keys = _column_keys(
        [r.params for r in page], mentioned["param"], min(2, room - len(metric_keys))
    )
    several = len({r.experiment for r in page}) > 1
    table = Table(box=None, header_style="bold")
    widths = {"id": 8, "experiment": 10, "name": 10, "status": 8, "started": 11, "took": 5}
    for column in ["id", *(["experiment"] if several else []), "name", "status", "started", "took"]:
        table.add_column(column, no_wrap=True, min_width=widths[column])
    for key in param_keys:
        table.add_column(key, no_wrap=True, max_width=14, overflow="ellipsis")
    for key in metric_keys:
        table.add_column(key, justify="right", no_wrap=True, min_width=min(len(key), 10))
    for r in page:
        style = STATUS_STYLE.get(r.status.value, "")
        table.add_row(
            r.id[:8],
            *([r.experiment] if several else []),
            r.name,
            f"[{style}]{r.status.value}[/]",
            when(r.start_time)[5:16],
            duration(r.duration),
            *(r.params.get(k, "") for k in param_keys),
            *(f"{r.metrics[k]:.4g}" if k in r.metrics else "" for k in metric_keys),
        )
    console.print(table)
    if page.next_page_token:
        console.print(f"[dim]more: --page-token {page.next_page_token}[/]")


def _mentioned_keys(filter_: str, order_by: list[str]) -> dict[str, list[str]]:
    """Metric and param names the user filtered or sorted on: those get columns first."""
    from forgeml.store.run_filter import (
        And,
        Comparison,
        Expr,
        Not,
        Or,
        parse_filter,
        parse_order_by,
    )

    found: dict[str, list[str]] = {"metric": [], "param": [], "tag": [], "attribute": []}

    def walk(expr: Expr | None) -> None:
        if isinstance(expr, Comparison):
            found[expr.field.entity].append(expr.field.key)
        elif isinstance(expr, And | Or):
            for part in expr.parts:
                walk(part)
        elif isinstance(expr, Not):
            walk(expr.part)

    for entry in order_by:
        field = parse_order_by(entry).field
        found[field.entity].append(field.key)
    walk(parse_filter(filter_))
    return found


def _column_keys(dicts: list[dict[str, Any]], preferred: list[str], limit: int) -> list[str]:
    """Up to ``limit`` keys: the preferred ones present, then the most common."""
    counts: dict[str, int] = {}
    for d in dicts:
        for key in d:
            counts[key] = counts.get(key, 0) + 1
    chosen = list(dict.fromkeys(k for k in preferred if k in counts))
    chosen += sorted((k for k in counts if k not in chosen), key=lambda k: (-counts[k], k))
    return chosen[:limit]


@app.command()
def show(
    run_id: str = typer.Argument(..., help="Run id or a prefix of 6+ characters."),
    as_json: bool = JSON,
) -> None:
    """Everything recorded about one run."""
    from forgeml import backend
    from forgeml.registry.api import models_of_run
    from forgeml.tracking.fluent import get_run, list_artifacts

    run = get_run(run_id)
    artifacts = list_artifacts(run.id)
    children = backend.runs().child_run_ids(run.id)
    versions = models_of_run(run.id)
    if as_json:
        data = run_dict(run)
        data["artifacts"] = [
            {"path": a.path, "digest": a.digest, "size": a.size} for a in artifacts
        ]
        data["children"] = children
        data["models"] = [v.uri for v in versions]
        print_json(data)
        return
    from rich.table import Table

    style = STATUS_STYLE.get(run.status.value, "")
    console.print(f"[bold]{run.experiment} / {run.name}[/]  [{style}]{run.status.value}[/]")
    info = Table.grid(padding=(0, 2))
    info.add_column(style="dim")
    info.add_column()
    code = run.git_sha[:12] + (" (dirty)" if run.git_dirty else "") if run.git_sha else "-"
    for label, value in (
        ("id", run.id),
        ("user", run.user),
        ("started", when(run.start_time)),
        ("duration", duration(run.duration)),
        ("parent", run.parent_id or "-"),
        ("code", code),
        ("host", run.host or "-"),
        ("command", run.command or "-"),
    ):
        info.add_row(label, value)
    sysinfo = run.system
    if sysinfo:
        info.add_row(
            "cpu",
            f"{sysinfo.get('cpu_percent', 0):.0f}% of one core, "
            f"{sysinfo.get('cpu_time_s', 0):.2f}s",
        )
        info.add_row("peak memory", size(sysinfo.get("peak_rss_bytes")))
        for gpu in sysinfo.get("gpus", []):
            info.add_row(
                f"gpu {gpu['index']}",
                f"{gpu['utilization_mean_percent']:.0f}% mean, "
                f"{size(gpu['memory_peak_bytes'])} peak",
            )
    console.print(info)
    sections: tuple[tuple[str, dict[str, Any]], ...] = (
        ("params", run.params),
        ("metrics", run.metrics),
        ("tags", run.tags),
    )
    repo = backend.runs()
    for title, values in sections:
        if values:
            table = Table(title=title, title_justify="left", box=None, show_header=False)
            table.add_column(style="dim")
            table.add_column()
            if title == "metrics":
                table.add_column(style="cyan")  # the history, drawn
                table.add_column(style="dim")
            for index, (key, value) in enumerate(sorted(values.items())):
                if title != "metrics":
                    table.add_row(key, str(value))
                    continue
                count, trend = repo.metric_trend(run.id, key) if index < 30 else (0, [])
                steps = f"{count} steps" if count > 1 else ""
                table.add_row(key, number(value), sparkline(trend), steps)
            console.print(table)
    if artifacts:
        table = Table(title="artifacts", title_justify="left", box=None, show_header=False)
        for a in artifacts:
            table.add_row(a.path, size(a.size), f"[dim]{a.digest[:12]}[/]")
        console.print(table)
    if children:
        console.print(f"[bold]child runs[/] {', '.join(c[:8] for c in children)}")
    if versions:
        console.print(f"[bold]models[/] {', '.join(v.uri for v in versions)}")
    if run.error:
        console.print("[bold red]error[/]")
        console.print(run.error.rstrip(), markup=False)


@app.command()
def compare(
    run_ids: list[str] = typer.Argument(..., help="Two or more run ids (or prefixes)."),
    as_json: bool = JSON,
) -> None:
    """Params and metrics of several runs side by side; differing rows are highlighted."""
    from forgeml.errors import InvalidArgumentError
    from forgeml.tracking.fluent import get_run

    if len(run_ids) < 2:
        raise InvalidArgumentError("compare needs at least two runs")
    runs = [get_run(r) for r in run_ids]
    params = sorted({k for r in runs for k in r.params})
    metrics = sorted({k for r in runs for k in r.metrics})
    if as_json:
        print_json(
            {
                "runs": [r.id for r in runs],
                "params": {k: [r.params.get(k) for r in runs] for k in params},
                "metrics": {k: [r.metrics.get(k) for r in runs] for k in metrics},
            }
        )
        return
    from rich.table import Table

    table = Table(header_style="bold", box=None)
    table.add_column("")
    for r in runs:
        table.add_column(f"{r.name}\n[dim]{r.id[:8]}[/]", justify="right")
    for key in params:
        values = [r.params.get(key, "") for r in runs]
        style = "yellow" if len(set(values)) > 1 else ""
        table.add_row(f"params.{key}", *values, style=style)
    for key in metrics:
        numbers = [r.metrics.get(key) for r in runs]
        style = "yellow" if len(set(numbers)) > 1 else ""
        cells = ["" if v is None else number(v) for v in numbers]
        table.add_row(f"metrics.{key}", *cells, style=style)
    console.print(table)
