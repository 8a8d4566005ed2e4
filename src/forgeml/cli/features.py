"""``forgeml features``: apply, list, show, diff, materialize, get, skew and serve."""

from __future__ import annotations

import datetime as dt
import runpy
from pathlib import Path
from typing import Any

import typer

from forgeml.cli.output import console, number, print_json, when

app = typer.Typer(help="Define, materialize and serve features.", no_args_is_help=True)

JSON = typer.Option(False, "--json", help="Print JSON instead of tables.")


def load_definitions(path: Path) -> list[Any]:
    """Run a Python file and collect the entities and views it defines, in order."""
    from forgeml.errors import InvalidArgumentError
    from forgeml.features.definitions import Entity, FeatureView, OnDemandFeatureView

    if not path.is_file():
        raise InvalidArgumentError(f"{path}: no such file")
    namespace = runpy.run_path(str(path.resolve()), run_name=f"forgeml_features_{path.stem}")
    found: list[Any] = []
    for value in namespace.values():
        items = value if isinstance(value, list | tuple) else [value]
        for item in items:
            if isinstance(item, Entity | FeatureView | OnDemandFeatureView) and item not in found:
                found.append(item)
    if not any(isinstance(item, FeatureView | OnDemandFeatureView) for item in found):
        raise InvalidArgumentError(f"{path}: defines no fm.FeatureView or fm.OnDemandFeatureView")
    return found


@app.command()
def apply(
    paths: list[Path] = typer.Argument(..., help="Python files that define entities and views."),
    as_json: bool = JSON,
) -> None:
    """Register definitions; a view whose definition changed gets a new version."""
    from forgeml import backend
    from forgeml.errors import NotFoundError
    from forgeml.features import registry
    from forgeml.features.definitions import Entity

    objects: list[Any] = []
    for path in paths:
        objects.extend(load_definitions(path))
    before: dict[str, int | None] = {}
    for obj in objects:
        if not isinstance(obj, Entity):
            try:
                before[obj.name] = backend.features().get_version(obj.name).version
            except NotFoundError:
                before[obj.name] = None
    with console.status("applying definitions", spinner="dots"):
        versions = registry.apply(objects)
    rows: list[dict[str, Any]] = [
        {
            "view": v.name,
            "kind": v.kind,
            "version": v.version,
            "changed": before.get(v.name) != v.version,
            "features": v.features,
        }
        for v in versions
    ]
    if as_json:
        print_json(
            {"views": rows, "entities": [o.to_dict() for o in objects if isinstance(o, Entity)]}
        )
        return
    from rich.table import Table

    table = Table("view", "kind", "version", "status", "features")
    for row in rows:
        status = "[green]new version[/]" if row["changed"] else "unchanged"
        table.add_row(
            row["view"], row["kind"], str(row["version"]), status, ", ".join(row["features"])
        )
    console.print(table)


def _online_meta() -> dict[str, dict[str, Any]]:
    from forgeml.features.online_store import open_store

    store = open_store()
    return {name: meta for name in store.views() if (meta := store.get_meta(name)) is not None}


@app.command("list")
def list_views(as_json: bool = JSON) -> None:
    """Every registered view: newest version, keys, features, and what is online."""
    from forgeml import backend

    records = backend.features().list_latest()
    online = _online_meta()
    rows = []
    for record in records:
        definition = record.definition
        meta = online.get(record.name)
        rows.append(
            {
                "view": record.name,
                "kind": record.kind,
                "version": record.version,
                "join_keys": definition.get("join_keys", []),
                "features": definition["features"],
                "ttl_seconds": definition.get("ttl_seconds"),
                "source": definition.get("source"),
                "online_version": meta["version"] if meta else None,
                "online_until": meta["end"] if meta else None,
            }
        )
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print("no feature views yet: define some and run `forgeml features apply FILE.py`")
        return
    from rich.table import Table

    table = Table("view", "kind", "version", "keys", "features", "ttl", "online")
    for row in rows:
        ttl = row["ttl_seconds"]
        online_text = (
            f"v{row['online_version']} to {when(row['online_until'])}"
            if row["online_version"] is not None
            else "-"
        )
        table.add_row(
            row["view"],
            row["kind"],
            str(row["version"]),
            ", ".join(row["join_keys"]) or "-",
            _short(", ".join(row["features"])),
            str(dt.timedelta(seconds=ttl)) if ttl else "-",
            online_text,
        )
    console.print(table)


def _short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


@app.command()
def show(
    name: str = typer.Argument(..., help="Feature view name."),
    version: int | None = typer.Option(None, "--version", "-v", help="Default: the newest."),
    as_json: bool = JSON,
) -> None:
    """A view's definition (transform code included), its versions and materializations."""
    from forgeml import backend
    from forgeml.features.registry import render_definition

    repo = backend.features()
    record = repo.get_version(name, version)
    versions = repo.list_versions(name)
    materializations = repo.materializations(name, limit=10)
    if as_json:
        print_json(
            {
                "view": record.name,
                "version": record.version,
                "digest": record.digest,
                "definition": record.definition,
                "versions": [
                    {"version": v.version, "created_at": v.created_at, "created_by": v.created_by}
                    for v in versions
                ],
                "materializations": [m.__dict__ for m in materializations],
            }
        )
        return
    console.print(
        f"[bold]{record.name}[/] v{record.version}  ({record.kind}, {record.digest[:12]})"
    )
    console.print(render_definition(record.definition), markup=False, highlight=False)
    console.print(
        "[bold]versions[/]: "
        + ", ".join(f"v{v.version} ({when(v.created_at)} by {v.created_by})" for v in versions)
    )
    if materializations:
        from rich.table import Table

        table = Table("version", "store", "from", "to", "kind", "rows read", "entities", "seconds")
        for m in materializations:
            table.add_row(
                str(m.view_version),
                m.online_store,
                when(m.start_time),
                when(m.end_time),
                "full" if m.full else "incremental",
                number(m.rows_read),
                number(m.entities_written),
                f"{m.seconds:.2f}",
            )
        console.print(table)


@app.command()
def diff(
    name: str = typer.Argument(..., help="Feature view name."),
    old: int | None = typer.Argument(None, help="Older version (default: the one before NEW)."),
    new: int | None = typer.Argument(None, help="Newer version (default: the newest)."),
) -> None:
    """What changed between two versions of a view's definition."""
    from rich.syntax import Syntax

    from forgeml.features.registry import diff as diff_versions

    text = diff_versions(name, old, new)
    if not text:
        console.print("the two versions have the same definition")
        return
    console.print(Syntax(text, "diff", theme="ansi_dark", background_color="default"))


def _parse_time(text: str | None) -> dt.datetime | None:
    from forgeml.errors import InvalidArgumentError

    if text is None:
        return None
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidArgumentError(f"--end {text!r}: not an ISO date-time") from exc


@app.command()
def materialize(
    views: list[str] | None = typer.Argument(None, help="Views (default: every batch view)."),
    full: bool = typer.Option(False, "--full", help="Rewrite every entity, not only new rows."),
    end: str | None = typer.Option(None, "--end", help="Up to this time (ISO; default now, UTC)."),
    as_json: bool = JSON,
) -> None:
    """Write the latest feature values into the online store."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from forgeml.features.materialize import materialize as run

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("entities"),
        TimeElapsedColumn(),
        console=console,
        disable=as_json,
    ) as progress:
        tasks: dict[str, Any] = {}

        def report(view: str, done: int, total: int) -> None:
            if view not in tasks:
                tasks[view] = progress.add_task(view, total=total)
            progress.update(tasks[view], completed=done, total=total)

        results = run(views or None, end=_parse_time(end), full=full, progress=report)
    rows: list[dict[str, Any]] = [
        {
            "view": r.view,
            "version": r.version,
            "full": r.full,
            "start": r.start.isoformat() if r.start else None,
            "end": r.end.isoformat(),
            "rows_read": r.rows_read,
            "entities_written": r.entities_written,
            "seconds": round(r.seconds, 3),
            "online_store": r.online_store,
        }
        for r in results
    ]
    if as_json:
        print_json(rows)
        return
    from rich.table import Table

    table = Table("view", "version", "kind", "from", "to", "rows read", "entities", "seconds")
    for row in rows:
        table.add_row(
            row["view"],
            str(row["version"]),
            "full" if row["full"] else "incremental",
            row["start"] or "-",
            row["end"],
            number(row["rows_read"]),
            number(row["entities_written"]),
            f"{row['seconds']:.2f}",
        )
    console.print(table)


def _typed(value: str) -> Any:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            continue
    return value


@app.command()
def get(
    features: list[str] = typer.Argument(..., help="Features: view:feature or view:*."),
    entity: list[str] = typer.Option(..., "--entity", "-e", help="KEY=VALUE; repeatable."),
    request: list[str] | None = typer.Option(
        None, "--request", "-r", help="Request field FIELD=VALUE for on-demand features."
    ),
    as_of: str | None = typer.Option(None, "--as-of", help="Judge TTLs at this time (ISO)."),
) -> None:
    """Look up online features for one entity."""
    from forgeml.errors import InvalidArgumentError
    from forgeml.features.lookup import online

    def pairs(items: list[str], option: str) -> dict[str, list[Any]]:
        parsed: dict[str, list[Any]] = {}
        for item in items:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise InvalidArgumentError(f"{option} {item!r}: expected KEY=VALUE")
            parsed[key] = [_typed(value)]
        return parsed

    moment = None
    if as_of is not None:
        try:
            moment = dt.datetime.fromisoformat(as_of)
        except ValueError as exc:
            raise InvalidArgumentError(f"--as-of {as_of!r}: not an ISO date-time") from exc
    result = online(
        pairs(entity, "--entity"),
        features,
        request=pairs(request or [], "--request") or None,
        as_of=moment,
    )
    print_json({name: column[0] for name, column in result.items()})


@app.command()
def skew(
    view: str = typer.Argument(..., help="Feature view name."),
    sample: int = typer.Option(200, "--sample", help="Entities to check."),
    as_json: bool = JSON,
) -> None:
    """Recompute online values offline for a sample of entities and report differences."""
    from forgeml.features.skew import check_skew

    if as_json:
        report = check_skew(view, sample=sample)
    else:
        with console.status(f"checking {view}", spinner="dots"):
            report = check_skew(view, sample=sample)
    if as_json:
        print_json(report.to_dict())
    else:
        console.print(str(report), markup=False)
        for example in report.examples[:5]:
            console.print(f"  {example}", markup=False)
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(6566, "--port"),
    workers: int = typer.Option(1, "--workers", help="Worker processes."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Read the store on every lookup."),
    cache_ttl: float = typer.Option(60.0, "--cache-ttl", help="Seconds an entry may be cached."),
) -> None:
    """Serve online features over HTTP (POST /v1/features)."""
    from forgeml.features.server import serve as run

    run(host=host, port=port, workers=workers, cache=not no_cache, cache_ttl_seconds=cache_ttl)
