"""``forgeml deployments``: declare what model servers host and how traffic is split."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from forgeml.cli.output import console, print_json, when

app = typer.Typer(help="Declare and change model deployments.", no_args_is_help=True)

JSON = typer.Option(False, "--json", help="Print JSON instead of tables.")
REASON = typer.Option(None, "--reason", help="Why; kept in the deployment's history.")


@app.command()
def apply(
    file: Path = typer.Option(..., "--file", "-f", exists=True, dir_okay=False),
    reason: str = REASON,
) -> None:
    """Create or replace the deployments declared in a YAML file."""
    from forgeml.serving.deployments_api import apply_file

    for record in apply_file(file, reason=reason):
        console.print(f"deployment {record.name}: revision {record.revision}")


@app.command("set")
def set_(
    name: str,
    model: str = typer.Option(None, "--model", help="The champion's models:/ URI."),
    policy: str = typer.Option(None, "--policy", help="single, canary, shadow or ab."),
    challenger: str = typer.Option(None, "--challenger", help="The challenger's URI."),
    weight: float = typer.Option(None, "--weight", help="Percent of traffic to the challenger."),
    fallback: str = typer.Option(None, "--fallback", help="A model answering while open."),
    timeout_ms: float = typer.Option(None, "--timeout-ms"),
    option: list[str] = typer.Option(
        [], "--option", "-o", help="Any other field as NAME=JSON, e.g. -o max_batch_size=32."
    ),
    reason: str = REASON,
) -> None:
    """Create a deployment, or change some of its fields."""
    import orjson

    from forgeml.errors import InvalidArgumentError, NotFoundError
    from forgeml.serving import deployments_api

    changes: dict[str, Any] = {
        key: value
        for key, value in {
            "model": model,
            "policy": policy,
            "challenger": challenger,
            "weight": weight,
            "fallback": fallback,
            "timeout_ms": timeout_ms,
        }.items()
        if value is not None
    }
    for item in option:
        key, sep, raw = item.partition("=")
        if not sep:
            raise InvalidArgumentError(f"--option {item!r}: expected NAME=VALUE")
        try:
            changes[key] = orjson.loads(raw)
        except orjson.JSONDecodeError:
            changes[key] = raw
    try:
        deployments_api.get_deployment(name)
    except NotFoundError:
        if "model" not in changes:
            raise InvalidArgumentError(f"deployment {name!r} is new: give --model") from None
        record = deployments_api.deploy(name, reason=reason, **changes)
    else:
        record = deployments_api.update(name, reason=reason, **changes)
    console.print(f"deployment {record.name}: revision {record.revision}")


@app.command("list")
def list_(as_json: bool = JSON) -> None:
    """Every deployment with its models and traffic split."""
    from rich.table import Table

    from forgeml.serving.deployments_api import list_deployments

    found = list_deployments()
    if as_json:
        print_json([_as_dict(r) for r in found])
        return
    table = Table("name", "policy", "model", "challenger", "weight", "revision", "updated")
    for record in found:
        spec = record.spec
        table.add_row(
            record.name,
            spec.get("policy", "single"),
            spec["model"],
            spec.get("challenger") or "-",
            f"{spec.get('weight', 0):g}%" if spec.get("challenger") else "-",
            str(record.revision),
            when(record.updated_at),
        )
    console.print(table)


@app.command()
def show(name: str, as_json: bool = JSON) -> None:
    """One deployment's whole spec."""
    from forgeml.serving.deployments_api import get_deployment

    record = get_deployment(name)
    if as_json:
        print_json(_as_dict(record))
        return
    console.print(f"[bold]{record.name}[/] revision {record.revision}, by {record.updated_by}")
    print_json(record.spec)


@app.command()
def history(name: str, as_json: bool = JSON) -> None:
    """Every change and rollout step of a deployment, oldest first."""
    from rich.table import Table

    from forgeml.serving.deployments_api import history as read_history

    entries = read_history(name)
    if as_json:
        print_json(entries)
        return
    table = Table("when", "by", "change", "detail")
    for entry in entries:
        detail = {k: v for k, v in entry.items() if k not in ("id", "at", "by", "change", "spec")}
        table.add_row(when(entry["at"]), entry["by"], str(entry.get("change")), str(detail))
    console.print(table)


@app.command()
def remove(name: str, reason: str = REASON) -> None:
    """Delete a deployment; servers stop serving it at their next refresh."""
    from forgeml.serving.deployments_api import remove_deployment

    remove_deployment(name, reason=reason)
    console.print(f"removed deployment {name}")


def _as_dict(record: object) -> dict[str, Any]:
    from dataclasses import asdict

    from forgeml.store.deployments import DeploymentRecord

    assert isinstance(record, DeploymentRecord)
    return asdict(record)
