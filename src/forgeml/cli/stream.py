"""``forgeml score-stream``: score the requests of a Redis stream, a NATS subject or a queue."""

from __future__ import annotations

import sys

import typer


def score_stream(
    model: str = typer.Option(..., "--model", "-m", help="A models:/ URI; an alias is followed."),
    source: str = typer.Option(
        ...,
        "--source",
        help="redis://HOST:PORT/DB?stream=NAME, nats://HOST:PORT?subject=NAME or memory://NAME.",
    ),
    output: str = typer.Option(
        ..., "--output", help="Stream (Redis) or subject (NATS) for answers."
    ),
    dead_letter: str = typer.Option(
        None, "--dead-letter", help="Where refused messages go (default: OUTPUT.dead)."
    ),
    name: str = typer.Option(
        None, "--name", help="Name in the prediction log (default: stream-MODEL)."
    ),
    group: str = typer.Option(None, "--group", help="Consumer group / durable consumer."),
    consumer: str = typer.Option(None, "--consumer", help="This consumer's name (Redis)."),
    batch: int = typer.Option(64, "--batch", min=1, help="Messages per fetch and model call."),
    max_deliveries: int = typer.Option(
        5, "--max-deliveries", min=1, help="Deliveries of a message the model fails on, at most."
    ),
    visibility: float = typer.Option(
        30.0, "--visibility", help="Seconds before an unacknowledged message is redelivered."
    ),
    max_in_flight: int = typer.Option(
        None, "--max-in-flight", min=1, help="Unsettled messages at most (default: 2 x batch)."
    ),
    output_bound: int = typer.Option(
        None, "--output-bound", min=1, help="Pause reading while the output holds this many."
    ),
    output_maxlen: int = typer.Option(
        None, "--output-maxlen", min=1, help="Redis: trim the output to about this many entries."
    ),
    retry_delay: float = typer.Option(
        1.0, "--retry-delay", help="Seconds before a message the model failed on comes back."
    ),
    refresh: float = typer.Option(
        10.0, "--refresh", help="Seconds between checks of the model alias (0: never)."
    ),
    no_prediction_log: bool = typer.Option(
        False, "--no-prediction-log", help="Do not log predictions (monitoring sees nothing)."
    ),
    max_messages: int = typer.Option(
        None, "--max-messages", min=1, help="Stop after settling this many messages."
    ),
    idle_exit: float = typer.Option(
        None, "--idle-exit", help="Stop after this many seconds without a message."
    ),
    metrics_port: int = typer.Option(
        None, "--metrics-port", help="Serve Prometheus counters on 127.0.0.1:PORT."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Score messages from a broker until SIGTERM/SIGINT; answers go to OUTPUT.

    Invalid messages go to the dead letter at once; messages the model fails on come
    back after --retry-delay, and go to the dead letter after --max-deliveries.
    """
    from forgeml.cli.output import print_json
    from forgeml.serving.stream import score_stream as run

    try:
        stats = run(
            model,
            source,
            output,
            dead_letter,
            name=name,
            group=group,
            consumer=consumer,
            batch=batch,
            max_deliveries=max_deliveries,
            visibility_seconds=visibility,
            max_in_flight=max_in_flight,
            output_bound=output_bound,
            output_maxlen=output_maxlen,
            retry_delay=retry_delay,
            refresh_seconds=refresh,
            log_predictions=not no_prediction_log,
            max_messages=max_messages,
            idle_exit=idle_exit,
            metrics_port=metrics_port,
        )
    except Exception as exc:
        if not type(exc).__module__.startswith(("redis", "nats")):
            raise
        print(f"error: the broker at {source} failed: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if as_json:
        print_json(stats.as_dict())
    else:
        typer.echo(stats.summary())
