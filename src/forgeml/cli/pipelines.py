"""``forgeml pipelines``: run, list, show, explain, logs and resume."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from forgeml.cli.output import console, duration, print_json, when

app = typer.Typer(help="Run pipelines and look into their runs.", no_args_is_help=True)

JSON = typer.Option(False, "--json", help="Print JSON instead of tables.")
_COLORS = {
    "succeeded": "green",
    "cached": "cyan",
    "reused": "cyan",
    "running": "yellow",
    "pending": "dim",
    "skipped": "dim",
    "failed": "red",
}


def _status(value: str) -> str:
    return f"[{_COLORS.get(value, 'white')}]{value}[/]"


def _parse_params(pairs: list[str]) -> dict[str, Any]:
    """``name=value`` pairs; a value that reads as JSON (5, 0.1, true, [1]) is taken as such."""
    import orjson

    from forgeml.errors import InvalidArgumentError

    params: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name.strip():
            raise InvalidArgumentError(f"--param {pair!r}: expected NAME=VALUE")
        try:
            params[name.strip()] = orjson.loads(text)
        except orjson.JSONDecodeError:
            params[name.strip()] = text
    return params


@app.command()
def run(
    ref: str = typer.Argument(..., help="module:pipeline or path/to/file.py:pipeline"),
    param: list[str] = typer.Option([], "--param", "-p", help="NAME=VALUE, repeatable."),
    executor: str = typer.Option(None, help="local, ray or ray://HOST:PORT (default: settings)."),
    workers: int = typer.Option(None, help="At most this many CPUs' worth of steps at once."),
    as_json: bool = JSON,
    trigger: str = typer.Option("manual", "--trigger", hidden=True),
    dedupe_key: str = typer.Option(None, "--dedupe-key", hidden=True),
) -> None:
    """Run a pipeline; steps whose code and inputs are unchanged come from cache."""
    from forgeml.pipelines.api import load_pipeline
    from forgeml.pipelines.runner import run_pipeline

    sys.path.insert(0, str(Path.cwd()))  # as `python -m` would: modules of this project
    pipeline = load_pipeline(ref)
    params = pipeline.params(**_parse_params(param))
    finished = run_pipeline(
        pipeline,
        params,
        executor=executor,
        max_workers=workers,
        progress=not as_json,
        check=False,
        trigger=trigger,
        dedupe_key=dedupe_key,
    )
    _report(finished.id, as_json)
    if finished.status.value != "succeeded":
        raise typer.Exit(1)


@app.command()
def resume(
    run_id: str = typer.Argument(..., help="A failed run (a unique prefix of its id will do)."),
    executor: str = typer.Option(None, help="local, ray or ray://HOST:PORT (default: settings)."),
    as_json: bool = JSON,
) -> None:
    """Run a failed run again: finished steps are reused, the rest run."""
    from forgeml.errors import PipelineError
    from forgeml.pipelines.api import resume as resume_run

    sys.path.insert(0, str(Path.cwd()))
    try:
        finished = resume_run(run_id, executor=executor, progress=not as_json)
    except PipelineError as exc:
        if exc.run_id is None or "nothing to resume" in str(exc) or "still running" in str(exc):
            raise
        _report(exc.run_id, as_json)
        raise typer.Exit(1) from None
    _report(finished.id, as_json)


@app.command("list")
def list_(
    pipeline: str = typer.Option(None, help="Only runs of this pipeline."),
    status: str = typer.Option(None, help="Only runs with this status."),
    limit: int = typer.Option(20, help="At most this many runs, newest first."),
    as_json: bool = JSON,
) -> None:
    """Pipeline runs, newest first."""
    from rich.table import Table

    from forgeml.pipelines.api import list_runs

    runs = list_runs(pipeline, status, limit)
    if as_json:
        print_json([_run_dict(r) for r in runs])
        return
    table = Table("run", "pipeline", "status", "started", "took", "trigger", "executor")
    for found in runs:
        took = (found.ended_at - found.created_at) if found.ended_at else None
        table.add_row(
            found.id[:12],
            found.pipeline,
            _status(found.status.value),
            when(found.created_at),
            duration(took),
            found.trigger,
            found.executor,
        )
    console.print(table)


@app.command()
def show(run_id: str, as_json: bool = JSON) -> None:
    """A run and its steps."""
    _report(run_id, as_json)


@app.command()
def explain(run_id: str, as_json: bool = JSON) -> None:
    """Why each step ran, came from cache, was reused or skipped."""
    from rich.table import Table

    from forgeml.pipelines.api import explain as explain_run

    explained = explain_run(run_id)
    if as_json:
        print_json(explained)
        return
    table = Table("step", "status", "why", "cache key")
    for entry in explained:
        table.add_row(
            entry["step"],
            _status(entry["status"]),
            entry["reason"],
            (entry["cache_key"] or "-")[:12],
        )
    console.print(table)


@app.command()
def logs(
    run_id: str,
    step: str,
    attempt: int = typer.Option(None, help="Which attempt (default: the last)."),
    stream: str = typer.Option("all", help="stdout, stderr, events (structured lines) or all."),
) -> None:
    """A step's captured output."""
    from forgeml.errors import InvalidArgumentError
    from forgeml.pipelines.api import logs as step_logs

    names = {"stdout": "stdout.log", "stderr": "stderr.log", "events": "events.jsonl"}
    if stream != "all" and stream not in names:
        raise InvalidArgumentError(f"--stream {stream!r}: expected stdout, stderr, events or all")
    found = step_logs(run_id, step, attempt)
    for label, name in names.items():
        if stream not in ("all", label):
            continue
        if stream == "all":
            console.print(f"[bold]── {label} ──[/]")
        sys.stdout.write(found[name])
        if found[name] and not found[name].endswith("\n"):
            sys.stdout.write("\n")
        sys.stdout.flush()


def _run_dict(record: Any) -> dict[str, Any]:
    return {
        "id": record.id,
        "pipeline": record.pipeline,
        "status": record.status.value,
        "params": record.params,
        "executor": record.executor,
        "trigger": record.trigger,
        "resumed_from": record.resumed_from,
        "created_at": record.created_at,
        "ended_at": record.ended_at,
        "error": record.error,
    }


def _report(run_id: str, as_json: bool) -> None:
    from rich.table import Table

    from forgeml.pipelines import values
    from forgeml.pipelines.api import get_run

    found = get_run(run_id)
    if as_json:
        print_json(
            {
                **_run_dict(found.record),
                "steps": [
                    {
                        "step": s.step,
                        "status": s.status.value,
                        "attempts": s.attempts,
                        "seconds": s.seconds,
                        "outputs": s.outputs,
                        "error": s.error,
                    }
                    for s in found.steps
                ],
            }
        )
        return
    record = found.record
    console.print(
        f"[bold]{record.pipeline}[/] run {record.id}  {_status(record.status.value)}  "
        f"({record.executor}, {record.trigger})"
    )
    table = Table("step", "status", "attempts", "took", "output")
    for step in found.steps:
        shown = ", ".join(values.describe(o) for o in step.outputs or [])
        if not shown and step.error:
            shown = step.error.splitlines()[0]
        table.add_row(
            step.step, _status(step.status.value), str(step.attempts), duration(step.seconds), shown
        )
    console.print(table)
    if record.error:
        console.print(f"[red]{record.error}[/]")
