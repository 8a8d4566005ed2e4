"""``forgeml models``: list registered models, show versions, move aliases."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from forgeml.cli.output import console, print_json, size, when

if TYPE_CHECKING:
    from forgeml.store.records import AliasEvent, ModelVersion

app = typer.Typer(help="Browse the model registry and move aliases.", no_args_is_help=True)

JSON = typer.Option(False, "--json", help="Print JSON instead of a table.")


def version_dict(v: ModelVersion) -> dict[str, Any]:
    return {
        "model": v.model,
        "version": v.version,
        "uri": v.uri,
        "flavor": v.flavor,
        "run_id": v.run_id,
        "manifest_digest": v.manifest_digest,
        "size": v.size,
        "signature": v.signature,
        "description": v.description,
        "created_at": v.created_at,
        "created_by": v.created_by,
        "tags": v.tags,
        "aliases": list(v.aliases),
    }


def event_dict(e: AliasEvent) -> dict[str, Any]:
    return {
        "alias": e.alias,
        "from_version": e.from_version,
        "to_version": e.to_version,
        "actor": e.actor,
        "at": e.at,
        "reason": e.reason,
    }


@app.command("list")
def list_models(as_json: bool = JSON) -> None:
    """Registered models with their newest version and aliases."""
    from forgeml.registry.api import list_models as fetch

    models = fetch()
    if as_json:
        print_json(
            [
                {
                    "name": m.name,
                    "latest_version": m.latest_version,
                    "aliases": m.aliases,
                    "tags": m.tags,
                    "description": m.description,
                    "created_at": m.created_at,
                    "updated_at": m.updated_at,
                }
                for m in models
            ]
        )
        return
    if not models:
        console.print("no registered models")
        return
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for column in ("name", "latest", "aliases", "updated"):
        table.add_column(column)
    for m in models:
        aliases = ", ".join(f"{a}→v{v}" for a, v in m.aliases.items()) or "-"
        table.add_row(
            m.name, f"v{m.latest_version}" if m.latest_version else "-", aliases, when(m.updated_at)
        )
    console.print(table)


@app.command()
def show(
    name: str = typer.Argument(..., help="Model name, or a models:/ URI for one version."),
    version: int | None = typer.Option(
        None, "--version", "-v", help="Show this version in detail."
    ),
    as_json: bool = JSON,
) -> None:
    """A model's versions and alias history, or one version's signature, files and lineage."""
    from forgeml.registry import api

    if version is not None or name.startswith("models:/"):
        detail = api.get_model_version(name, version=version)
        _show_version(detail, as_json)
        return
    model = api.get_model(name)
    versions = api.list_model_versions(name)
    history = api.alias_history(name)
    if as_json:
        print_json(
            {
                "name": model.name,
                "description": model.description,
                "aliases": model.aliases,
                "tags": model.tags,
                "versions": [version_dict(v) for v in versions],
                "alias_history": [event_dict(e) for e in history],
            }
        )
        return
    from rich.table import Table

    console.print(
        f"[bold]{model.name}[/]" + (f"  {model.description}" if model.description else "")
    )
    table = Table(box=None, header_style="bold")
    for column in ("version", "aliases", "flavor", "run", "size", "created", "by"):
        table.add_column(column)
    for v in versions:
        table.add_row(
            f"v{v.version}",
            ", ".join(v.aliases) or "",
            v.flavor,
            (v.run_id or "-")[:8],
            size(v.size),
            when(v.created_at),
            v.created_by,
        )
    console.print(table)
    if history:
        console.print("[bold]alias history[/]")
        for e in history:
            console.print(
                f"  {when(e.at)}  {e.alias}: {_move(e)}  by {e.actor}"
                + (f"  ({e.reason})" if e.reason else "")
            )


def _move(e: AliasEvent) -> str:
    before = f"v{e.from_version}" if e.from_version is not None else "(none)"
    after = f"v{e.to_version}" if e.to_version is not None else "(deleted)"
    return f"{before} → {after}"


def _show_version(v: ModelVersion, as_json: bool) -> None:
    from forgeml.lineage_graph import lineage
    from forgeml.registry.api import model_manifest
    from forgeml.registry.signature import describe

    manifest = model_manifest(v)
    graph = lineage(v)
    if as_json:
        data = version_dict(v)
        data["files"] = manifest["files"]
        data["requirements"] = manifest.get("requirements", {})
        data["lineage"] = graph.to_dict()
        print_json(data)
        return
    console.print(
        f"[bold]{v.uri}[/]  {v.flavor}" + (f"  [{', '.join(v.aliases)}]" if v.aliases else "")
    )
    signature = v.signature or {}
    for label, value in (
        ("run", v.run_id or "-"),
        ("created", f"{when(v.created_at)} by {v.created_by}"),
        ("bundle", f"{v.manifest_digest[:12]} ({size(v.size)})"),
        ("inputs", describe(signature.get("inputs"))),
        ("outputs", describe(signature.get("outputs"))),
        (
            "requires",
            ", ".join(f"{k}=={val}" for k, val in manifest.get("requirements", {}).items()),
        ),
    ):
        console.print(f"  [dim]{label:<9}[/]{value}")
    for path, entry in manifest["files"].items():
        console.print(
            f"  [dim]file     [/]{path}  {size(entry['size'])}  [dim]{entry['digest'][:12]}[/]"
        )
    for node_type, node_id in graph.upstream():
        console.print(f"  [dim]from     [/]{node_type} {node_id}")
    for node_type, node_id in graph.downstream():
        console.print(f"  [dim]to       [/]{node_type} {node_id}")


@app.command()
def alias(
    name: str = typer.Argument(..., help="Registered model name."),
    alias_name: str | None = typer.Argument(None, metavar="ALIAS", help="Alias such as champion."),
    version: int | None = typer.Argument(None, help="Version the alias should point at."),
    delete: bool = typer.Option(False, "--delete", help="Remove the alias."),
    reason: str | None = typer.Option(None, "--reason", "-r", help="Why: kept in the audit trail."),
    history: bool = typer.Option(False, "--history", help="Show every move of the alias."),
    as_json: bool = JSON,
) -> None:
    """Move an alias (`models alias NAME champion 3`), delete it, or show its history."""
    from forgeml.errors import InvalidArgumentError
    from forgeml.registry import api

    if history:
        events = api.alias_history(name, alias_name)
        if as_json:
            print_json([event_dict(e) for e in events])
            return
        for e in events:
            console.print(
                f"{when(e.at)}  {e.alias}: {_move(e)}  by {e.actor}"
                + (f"  ({e.reason})" if e.reason else "")
            )
        if not events:
            console.print("no alias moves recorded")
        return
    if alias_name is None:
        raise InvalidArgumentError("give an ALIAS (and a VERSION, or --delete)")
    if delete:
        if version is not None:
            raise InvalidArgumentError("give a VERSION or --delete, not both")
        event = api.delete_alias(name, alias_name, reason=reason)
    else:
        if version is None:
            current = api.get_model_version(name, alias=alias_name)
            if as_json:
                print_json(version_dict(current))
            else:
                console.print(f"{name}@{alias_name} → v{current.version}")
            return
        event = api.set_alias(name, alias_name, version, reason=reason)
    if as_json:
        print_json(event_dict(event))
    else:
        console.print(f"{name}@{alias_name}: {_move(event)}")
