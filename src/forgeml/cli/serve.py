"""``forgeml serve``: run the model server."""

from __future__ import annotations

import typer


def serve(
    deployments: list[str] = typer.Argument(
        None, help="Stored deployments to serve (default: all of them)."
    ),
    model: list[str] = typer.Option(
        [], "--model", "-m", help="Also serve a models:/ URI as its own deployment."
    ),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8080, "--port"),
    workers: int = typer.Option(1, "--workers", help="Worker processes sharing the port."),
    refresh: float = typer.Option(
        2.0, "--refresh", help="Seconds between checks for changed deployments and aliases."
    ),
    no_prediction_log: bool = typer.Option(
        False, "--no-prediction-log", help="Do not log predictions (monitoring sees nothing)."
    ),
    no_access_log: bool = typer.Option(False, "--no-access-log", help="No JSON access lines."),
    graceful: float = typer.Option(
        30.0, "--graceful-seconds", help="On SIGTERM, how long in-flight requests may finish."
    ),
) -> None:
    """Serve models over HTTP: forgeml's JSON/Arrow API and the Open Inference Protocol V2."""
    from forgeml.serving.launch import serve as run

    run(
        deployments or [],
        model,
        host=host,
        port=port,
        workers=workers,
        refresh_seconds=refresh,
        log_predictions=not no_prediction_log,
        access_log=not no_access_log,
        graceful_seconds=graceful,
    )
