"""``forgeml predict``: score a table with a registered model into a Parquet file."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from forgeml.cli.output import console, duration, print_json

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID


def predict(
    model: str = typer.Option(
        ..., "--model", "-m", help="The model: models:/NAME@ALIAS, models:/NAME/VERSION."
    ),
    input: str = typer.Option(
        ...,
        "--input",
        "-i",
        help="A Parquet file, a directory or glob of them, a CSV file, or datasets:/NAME[/V].",
    ),
    output: str = typer.Option(..., "--output", "-o", help="The Parquet file to write."),
    method: str = typer.Option("predict", "--method", help="predict or predict_proba."),
    keep: str = typer.Option(
        "", "--keep", help="Input columns to copy beside the answers, comma-separated (an id)."
    ),
    chunk_rows: int = typer.Option(
        100_000, "--chunk-rows", help="Rows per chunk: memory grows with it and --workers."
    ),
    workers: int = typer.Option(
        1, "--workers", "-w", help="1: score in this process; N: N processes (or Ray actors)."
    ),
    executor: str = typer.Option(
        None, "--executor", help="local, ray or ray://HOST:PORT (default: the executor setting)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Score every row of a table with a registered model; answers in input order."""
    from forgeml.serving.batch import predict_batch

    bar = _Bar(model) if not quiet else None
    try:
        done = predict_batch(
            model,
            input,
            output,
            method=method,
            keep=[k.strip() for k in keep.split(",") if k.strip()],
            chunk_rows=chunk_rows,
            workers=workers,
            executor=executor,
            progress=bar.update if bar is not None else None,
        )
    finally:
        if bar is not None:
            bar.close()
    if as_json:
        print_json(done.to_dict())
        return
    console.print(
        f"scored {done.rows:,} rows with {done.model}/{done.version} "
        f"(digest {done.digest[:12]}) in {duration(done.seconds)} "
        f"({done.rows_per_second:,.0f} rows/s) -> {done.output}"
    )


class _Bar:
    """Rows written of the total (when the files' footers tell it), on stderr."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bar: Progress | None = None
        self.task: TaskID | None = None

    def update(self, done: int, total: int | None) -> None:
        if self.bar is None:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("rows"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self.task = self.bar.add_task(self.label, total=total)
            self.bar.start()
        assert self.task is not None
        self.bar.update(self.task, completed=done)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
