"""``forgeml db``: schema revision and upgrades of the metadata database."""

from __future__ import annotations

import typer

from forgeml.cli.output import console, print_json

app = typer.Typer(help="Manage the metadata database.", no_args_is_help=True)


@app.command()
def upgrade() -> None:
    """Apply pending schema migrations to the database named by the settings."""
    from forgeml import config
    from forgeml.store import Database, current_revision, upgrade as run_upgrade

    db = Database(config.settings().db_url, check_schema=False)
    before = current_revision(db)
    after = run_upgrade(db)
    if before == after:
        console.print(f"{db.display_url} is up to date (revision {after})")
    else:
        console.print(f"upgraded {db.display_url} from revision {before or 'empty'} to {after}")


@app.command()
def current(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show the database URL, its schema revision and the one this forgeml needs."""
    from forgeml import config
    from forgeml.store import Database, current_revision
    from forgeml.store.migrations import HEAD

    db = Database(config.settings().db_url, check_schema=False)
    revision = current_revision(db)
    if as_json:
        print_json({"url": db.display_url, "revision": revision, "head": HEAD})
        return
    state = "up to date" if revision == HEAD else "needs `forgeml db upgrade`"
    console.print(f"{db.display_url}: revision {revision or 'empty'} (head {HEAD}, {state})")
