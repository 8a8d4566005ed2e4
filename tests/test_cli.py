"""The `forgeml` command, run as a real process: tables, JSON, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from sklearn.linear_model import LogisticRegression

import forgeml as fm
from forgeml import backend
from forgeml_cli import cli, cli_json


@pytest.fixture
def populated(home: Path) -> dict[str, str]:
    ids = {}
    for name, model, auc in (("base", "lr", 0.81), ("boost", "gbm", 0.93), ("big", "gbm", 0.91)):
        with fm.start_run(experiment="flights", name=name) as run:
            fm.log_params({"model": model, "seed": 1})
            fm.log_metric("auc", auc)
            ids[name] = run.id
    with fm.start_run(experiment="flights", name="winner", parent=None) as run:
        fm.log_text("hello", "notes/readme.txt")
        version = fm.log_model(
            LogisticRegression().fit([[0], [1]], [0, 1]), name="delay", example=[[0.5]]
        )
        ids["winner"] = run.id
    fm.set_alias("delay", "champion", version.version)
    backend.reset()  # the CLI runs in its own process; let it see a closed database
    return ids


def test_help_lists_the_nouns() -> None:
    out = cli("--help").stdout
    for noun in ("runs", "models", "db"):
        assert noun in out


def test_runs_list_filter_order_and_json(populated: dict[str, str]) -> None:
    data = cli_json(
        "runs", "list", "-e", "flights", "-f", "params.model = 'gbm'", "-o", "metrics.auc desc"
    )
    assert [r["name"] for r in data["runs"]] == ["boost", "big"]
    assert data["runs"][0]["metrics"] == {"auc": 0.93}
    assert data["next_page_token"] is None
    first = cli_json("runs", "list", "-n", "2")
    assert len(first["runs"]) == 2 and first["next_page_token"]
    rest = cli_json("runs", "list", "-n", "2", "--page-token", first["next_page_token"])
    assert len(rest["runs"]) == 2
    table = cli("runs", "list", "-o", "metrics.auc desc").stdout
    assert "boost" in table and "0.93" in table


def test_runs_show_and_compare(populated: dict[str, str]) -> None:
    shown = cli_json("runs", "show", populated["winner"][:8])
    assert shown["id"] == populated["winner"]
    assert shown["models"] == ["models:/delay/1"]
    assert [a["path"] for a in shown["artifacts"]] == ["notes/readme.txt"]
    assert shown["system"]["peak_rss_bytes"] > 0
    text = cli("runs", "show", populated["boost"]).stdout
    assert "params" in text and "gbm" in text
    compared = cli_json("runs", "compare", populated["base"], populated["boost"])
    assert compared["params"]["model"] == ["lr", "gbm"]
    assert compared["metrics"]["auc"] == [0.81, 0.93]
    assert "metrics.auc" in cli("runs", "compare", populated["base"], populated["boost"]).stdout


def test_models_list_show_and_alias(populated: dict[str, str]) -> None:
    models = cli_json("models", "list")
    assert models[0]["name"] == "delay" and models[0]["aliases"] == {"champion": 1}
    shown = cli_json("models", "show", "delay")
    assert [v["version"] for v in shown["versions"]] == [1]
    detail = cli_json("models", "show", "models:/delay@champion")
    assert detail["run_id"] == populated["winner"]
    assert "model.skops" in detail["files"]
    assert detail["lineage"]["upstream"][0]["source"]["id"] == populated["winner"]
    moved = cli_json("models", "alias", "delay", "challenger", "1", "--reason", "A/B")
    assert moved == {
        "alias": "challenger",
        "from_version": None,
        "to_version": 1,
        "actor": "tester",
        "at": moved["at"],
        "reason": "A/B",
    }
    assert "delay@challenger → v1" in cli("models", "alias", "delay", "challenger").stdout
    cli("models", "alias", "delay", "challenger", "--delete")
    history = cli_json("models", "alias", "delay", "--history")
    assert [(e["alias"], e["to_version"]) for e in history] == [
        ("champion", 1),
        ("challenger", 1),
        ("challenger", None),
    ]
    assert "inputs" in cli("models", "show", "delay", "--version", "1").stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("runs", "show", "ffffffffff"), "error: no run with id 'ffffffffff'"),
        (("runs", "list", "-f", "metrics.auc >"), "error: invalid filter at column 14"),
        (("models", "show", "ghost"), "error: no registered model named 'ghost'"),
        (("models", "alias", "delay", "champion", "7"), "error: model 'delay' has no version 7"),
        (("runs", "compare", "abcdef"), "error: compare needs at least two runs"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(
    populated: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    result = cli(*args, check=False)
    assert result.returncode == 2
    assert result.stderr.strip().startswith(message), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_bad_settings_are_one_line_and_exit_2(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORGEML_DB_URL", "mysql://nope")
    result = cli("runs", "list", check=False)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: FORGEML_DB_URL='mysql://nope' (environment): unsupported database 'mysql' "
        "(forgeml stores metadata in SQLite or PostgreSQL)"
    )


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "FORGEML_DB_URL",
            "postgresql://nobody@127.0.0.1:1/none",
            "error: cannot open the metadata database",
        ),
        ("FORGEML_HOME", "/proc/no-such-dir/home", "error: cannot create /proc/no-such-dir/home"),
    ],
)
def test_unreachable_stores_are_one_line_and_exit_2(
    home: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    result = cli("runs", "list", check=False)
    assert result.returncode == 2
    assert result.stderr.startswith(message), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_db_upgrade_and_outdated_schema(home: Path) -> None:
    from forgeml.store import Database, upgrade
    from forgeml.store.migrations import HEAD, REVISIONS

    db = Database(f"sqlite:///{home / 'forgeml.db'}", check_schema=False)
    upgrade(db, REVISIONS[0])
    db.dispose()
    refused = cli("runs", "list", check=False)
    assert refused.returncode == 2
    assert "upgrade it with `forgeml db upgrade`" in refused.stderr
    assert cli_json("db", "current") == {
        "url": f"sqlite:///{home / 'forgeml.db'}",
        "revision": REVISIONS[0],
        "head": HEAD,
    }
    assert f"to {HEAD}" in cli("db", "upgrade").stdout
    assert "up to date" in cli("db", "upgrade").stdout
    assert cli("runs", "list").returncode == 0
