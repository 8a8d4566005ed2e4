"""``forgeml scheduler``: the long-running process that fires pipeline schedules."""

from __future__ import annotations

import typer


def scheduler(
    poll_interval: float = typer.Option(1.0, help="Seconds between passes over the schedules."),
    max_concurrent: int = typer.Option(2, help="At most this many runs at once."),
    once: bool = typer.Option(False, "--once", help="One pass, wait for its runs, then exit."),
    wait: float = typer.Option(600.0, help="With --once: at most this many seconds of waiting."),
) -> None:
    """Run pipelines on their schedules and events until stopped (SIGTERM or Ctrl-C).

    State is in the metadata database: restart it at will, run several for redundancy;
    no slot runs twice. Runs it started carry on after it stops. Logs are JSON lines.
    """
    import sys
    from pathlib import Path

    from forgeml.pipelines.scheduler import Scheduler, configure_logging

    sys.path.insert(0, str(Path.cwd()))  # pipelines of this project, as `pipelines run` does
    configure_logging()
    found = Scheduler(poll_interval=poll_interval, max_concurrent=max_concurrent)
    if once:
        found.tick()
        if not found.wait(wait):
            raise typer.Exit(1)
        return
    found.run_forever()
