"""``forgeml schedules``: add, list, remove, pause, resume and trigger pipeline schedules."""

from __future__ import annotations

import typer

from forgeml.cli.output import console, print_json, when

app = typer.Typer(help="Run pipelines on a clock or on events.", no_args_is_help=True)

JSON = typer.Option(False, "--json", help="Print JSON instead of tables.")


@app.command()
def add(
    name: str = typer.Argument(..., help="A name for the schedule, unique."),
    pipeline: str = typer.Option(..., "--pipeline", help="module:pipeline to run."),
    cron: str = typer.Option(None, "--cron", help='A cron expression, like "0 2 * * *".'),
    every: str = typer.Option(None, "--every", help="An interval: 30s, 15m, 2h, 1d."),
    on: str = typer.Option(None, "--on", help="dataset:NAME or alert:NAME (NAME may be *)."),
    param: list[str] = typer.Option([], "--param", "-p", help="NAME=VALUE, repeatable."),
    timezone: str = typer.Option(None, "--timezone", help="IANA zone for --cron (UTC)."),
    as_json: bool = JSON,
) -> None:
    """Store a schedule; a running `forgeml scheduler` picks it up."""
    from forgeml.cli.pipelines import _parse_params
    from forgeml.pipelines.schedules_api import schedule

    record = schedule(
        name,
        pipeline,
        cron=cron,
        every=every,
        on=on,
        params=_parse_params(param),
        timezone=timezone,
    )
    if as_json:
        print_json(_as_dict(record))
        return
    console.print(f"schedule {record.name}: {_when(record)}, next {_next(record)}")


@app.command("list")
def list_(as_json: bool = JSON) -> None:
    """Every schedule with its next fire time."""
    from rich.table import Table

    from forgeml.pipelines.schedules_api import list_schedules

    found = list_schedules()
    if as_json:
        print_json([_as_dict(r) for r in found])
        return
    table = Table("name", "pipeline", "when", "enabled", "next", "last fired", "last run")
    for record in found:
        table.add_row(
            record.name,
            record.pipeline,
            _when(record),
            "yes" if record.enabled else "[yellow]paused[/]",
            _next(record),
            when(record.last_fired_at),
            (record.last_run_id or "-")[:12],
        )
    console.print(table)


@app.command()
def remove(name: str) -> None:
    """Delete a schedule (its runs are kept)."""
    from forgeml.pipelines.schedules_api import remove_schedule

    remove_schedule(name)
    console.print(f"removed schedule {name}")


@app.command()
def pause(name: str) -> None:
    """Stop firing a schedule until it is resumed."""
    from forgeml.pipelines.schedules_api import pause as pause_schedule

    pause_schedule(name)
    console.print(f"paused schedule {name}")


@app.command()
def resume(name: str) -> None:
    """Fire a paused schedule again, from its next slot (missed slots are not run)."""
    from forgeml.pipelines.schedules_api import resume as resume_schedule

    resume_schedule(name)
    console.print(f"resumed schedule {name}")


@app.command()
def trigger(name: str) -> None:
    """Ask the scheduler to run a schedule now; prints the event id."""
    from forgeml.pipelines.schedules_api import trigger as trigger_schedule

    typer.echo(str(trigger_schedule(name)))


def _when(record: object) -> str:
    from forgeml.pipelines.cron import Every
    from forgeml.store.schedules import ScheduleRecord

    assert isinstance(record, ScheduleRecord)
    if record.cron is not None:
        return f"cron {record.cron} ({record.timezone})"
    if record.interval_seconds is not None:
        return f"every {Every(record.interval_seconds).text}"
    return f"on {record.event_kind}:{record.event_subject}"


def _next(record: object) -> str:
    from forgeml.store.schedules import ScheduleRecord

    assert isinstance(record, ScheduleRecord)
    if not record.enabled:
        return "-"
    return when(record.next_fire_at) if record.next_fire_at is not None else "on event"


def _as_dict(record: object) -> dict[str, object]:
    from dataclasses import asdict

    from forgeml.store.schedules import ScheduleRecord

    assert isinstance(record, ScheduleRecord)
    return asdict(record)
