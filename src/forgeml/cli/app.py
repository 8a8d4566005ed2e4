"""The root command and its sub-commands (imported lazily by the entry point)."""

from __future__ import annotations

import typer

from forgeml.cli import (
    data,
    db,
    deployments,
    features,
    models,
    pipelines,
    predict,
    runs,
    scheduler,
    schedules,
    serve,
    stream,
)

app = typer.Typer(
    name="forgeml",
    help=(
        "forgeml: version data, serve features, track experiments, register and serve "
        "models, and trace their lineage."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(runs.app, name="runs")
app.add_typer(models.app, name="models")
app.add_typer(data.app, name="data")
app.add_typer(features.app, name="features")
app.add_typer(pipelines.app, name="pipelines")
app.add_typer(db.app, name="db")
app.add_typer(schedules.app, name="schedules")
app.add_typer(deployments.app, name="deployments")
app.command("scheduler")(scheduler.scheduler)
app.command("serve")(serve.serve)
app.command("score-stream")(stream.score_stream)
app.command("predict")(predict.predict)


@app.command()
def version() -> None:
    """Print the forgeml version."""
    from forgeml import __version__

    typer.echo(__version__)
