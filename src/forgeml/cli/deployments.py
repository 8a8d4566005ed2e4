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


@app.command()
def rollout(
    name: str,
    to: str = typer.Option(..., "--to", help="The challenger's models:/ URI."),
    steps: str = typer.Option("5,25,50,100", "--steps", help="Percentages, the last 100."),
    step_seconds: float = typer.Option(60.0, "--step-seconds", help="Least time per step."),
    min_requests: int = typer.Option(
        50, "--min-requests", help="Challenger requests a step needs before it is judged."
    ),
    max_error_rate_increase: float = typer.Option(
        0.01, "--max-error-rate-increase", help="Error rate allowed above the champion's."
    ),
    max_latency_ratio: float = typer.Option(
        1.5, "--max-latency-ratio", help="p99 allowed, as a multiple of the champion's."
    ),
    latency_slack_ms: float = typer.Option(5.0, "--latency-slack-ms"),
    max_step_seconds: float = typer.Option(
        None, "--max-step-seconds", help="Roll back if a step has too few requests by then."
    ),
    poll_seconds: float = typer.Option(1.0, "--poll-seconds"),
    force: bool = typer.Option(False, "--force", help="Start even if a rollout seems running."),
    reason: str = REASON,
    as_json: bool = JSON,
) -> None:
    """Shift traffic to a challenger step by step; roll back automatically on a breach."""
    from forgeml.errors import InvalidArgumentError
    from forgeml.serving.rollouts import PROMOTED, RolloutPlan, rollout as run_rollout

    try:
        weights = tuple(float(part) for part in steps.split(",") if part.strip())
    except ValueError:
        raise InvalidArgumentError(
            f"--steps {steps!r}: expected numbers like 5,25,50,100"
        ) from None
    plan = RolloutPlan(
        steps=weights, step_seconds=step_seconds, min_requests=min_requests,
        max_error_rate_increase=max_error_rate_increase, max_latency_ratio=max_latency_ratio,
        latency_slack_ms=latency_slack_ms, max_step_seconds=max_step_seconds,
        poll_seconds=poll_seconds,
    )  # fmt: skip
    printer = _RolloutPrinter(name, quiet=as_json)
    result = run_rollout(name, to, plan, reason=reason, force=force, on_progress=printer)
    printer.close()
    if as_json:
        from dataclasses import asdict

        print_json(asdict(result))
    else:
        colour = "green" if result.state == PROMOTED else "red"
        console.print(f"[{colour}]{result.state}[/]: {result.reason}")
    if result.state != PROMOTED:
        raise typer.Exit(1)


@app.command()
def status(name: str, as_json: bool = JSON) -> None:
    """A deployment's traffic split and its last rollout, step by step with the evidence."""
    from forgeml.serving.deployments_api import get_deployment
    from forgeml.serving.rollout_evidence import gather
    from forgeml.serving.rollouts import RUNNING, rollout_status

    record = get_deployment(name)
    last = rollout_status(name)
    live = None
    if last is not None and last["state"] == RUNNING:
        since = last["steps"][-1]["at"] if last["steps"] else last["started_at"]
        live = {arm: e.to_dict() for arm, e in gather(name, since).items()}
    if as_json:
        print_json({"deployment": name, "spec": record.spec, "rollout": last, "live": live})
        return
    spec = record.spec
    split = (
        f"{spec.get('policy')} {spec.get('weight', 0):g}% to {spec.get('challenger')}"
        if spec.get("challenger") and spec.get("policy") != "single"
        else "single"
    )
    console.print(f"[bold]{name}[/] revision {record.revision}: {spec['model']}, {split}")
    if last is None:
        console.print("no rollout yet")
        return
    console.print(
        f"rollout {last['rollout']} to {last['to']}: [bold]{last['state']}[/] "
        f"(started {when(last['started_at'])} by {last['by']})"
        + (f": {last['reason']}" if last["reason"] else "")
    )
    from rich.table import Table

    table = Table("weight", "verdict", "challenger", "champion", "why")
    for step in last["steps"]:
        table.add_row(
            f"{step['weight']:g}%",
            "[green]passed[/]" if step["passed"] else "[red]failed[/]",
            _arm(step["challenger"]),
            _arm(step["champion"]),
            step["reason"] if not step["passed"] else "",
        )
    console.print(table)
    if live is not None:
        console.print(
            f"now at {last['weight']:g}%: challenger {_arm(live['challenger'])}; "
            f"champion {_arm(live['champion'])}"
        )


@app.command()
def rollback(name: str, reason: str = REASON) -> None:
    """Send all traffic back to the champion, as before the last rollout."""
    from forgeml.serving.rollouts import rollback as run_rollback

    result = run_rollback(name, reason=reason)
    console.print(
        f"deployment {name}: revision {result['revision']}, back to {result['spec']['model']}"
    )


class _RolloutPrinter:
    """Live progress of a rollout: one status line that follows the evidence."""

    def __init__(self, name: str, quiet: bool) -> None:
        from rich.status import Status

        self.name = name
        self.quiet = quiet
        self.status: Status | None = None if quiet else console.status(f"rolling out {name}")
        if self.status is not None:
            self.status.start()

    def __call__(self, kind: str, detail: dict[str, Any]) -> None:
        if self.quiet or self.status is None:
            return
        if kind == "weight":
            console.print(f"{self.name}: challenger at {detail['weight']:g}%")
        elif kind == "evidence":
            self.status.update(
                f"{detail['weight']:g}% for {detail['elapsed']:.0f}s: challenger "
                f"{_arm(detail['challenger'])}; champion {_arm(detail['champion'])}"
            )

    def close(self) -> None:
        if self.status is not None:
            self.status.stop()


def _arm(evidence: dict[str, Any]) -> str:
    if not evidence.get("requests"):
        return "no requests"
    p99 = evidence.get("p99_ms")
    latency = f", p99 {p99:.1f} ms" if p99 is not None else ""
    return f"{evidence['requests']} req, {evidence['error_rate']:.1%} failed{latency}"


def _as_dict(record: object) -> dict[str, Any]:
    from dataclasses import asdict

    from forgeml.store.deployments import DeploymentRecord

    assert isinstance(record, DeploymentRecord)
    return asdict(record)
