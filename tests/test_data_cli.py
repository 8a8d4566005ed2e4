"""`forgeml data` as a real process: ingest with progress, list, show, profile, validate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forgeml_cli import cli, cli_json


@pytest.fixture
def csv_file(home: Path, tmp_path: Path) -> Path:
    rng = np.random.default_rng(3)
    path = tmp_path / "trips.csv"
    pd.DataFrame(
        {
            "trip_id": np.arange(500),
            "city": rng.choice(["paris", "lyon"], 500),
            "km": rng.gamma(2, 3, 500).round(2),
        }
    ).to_csv(path, index=False)
    return path


def test_ingest_list_show_and_profile(csv_file: Path) -> None:
    created = cli_json("data", "ingest", str(csv_file), "--name", "trips", "-d", "city trips")
    assert (created["name"], created["version"], created["row_count"]) == ("trips", 1, 500)
    assert created["source"]["files"] == [str(csv_file)]
    again = cli_json("data", "ingest", str(csv_file), "--name", "trips")
    assert again["version"] == 1  # same rows, same version
    listed = cli_json("data", "list")
    assert listed == [
        {
            "name": "trips",
            "latest_version": 1,
            "versions": 1,
            "description": "city trips",
            "updated_at": listed[0]["updated_at"],
        }
    ]
    shown = cli_json("data", "show", "trips@1")
    assert {c["name"]: c["semantic"] for c in shown["columns"]} == {
        "trip_id": "identifier",
        "city": "categorical",
        "km": "numeric",
    }
    assert shown["profile"]["columns"]["km"]["count"] == 500
    text = cli("data", "show", "datasets:/trips/1").stdout
    assert "trip_id" in text and "identifier" in text and "paris" in text
    profiled = cli_json("data", "profile", "trips")
    assert profiled["row_count"] == 500


def test_validate_exit_status_and_saved_suite(csv_file: Path, tmp_path: Path) -> None:
    cli("data", "ingest", str(csv_file), "--name", "trips")
    suite = tmp_path / "suite.yaml"
    passed = cli_json("data", "validate", "trips", "--suggest", "trips", "--save-suite", str(suite))
    assert passed["success"] is True and passed["errors"] == 0
    assert "type: unique" in suite.read_text()
    broken = pd.read_csv(csv_file)
    broken.loc[0, "city"] = "atlantis"
    broken.loc[1, "trip_id"] = 2
    broken_path = tmp_path / "broken.csv"
    broken.to_csv(broken_path, index=False)
    cli("data", "ingest", str(broken_path), "--name", "trips")
    failed = cli("data", "validate", "trips@2", "--suite", str(suite), check=False)
    assert failed.returncode == 1
    assert "in_set(city)" in failed.stdout and "unexpected values: atlantis" in failed.stdout
    assert "unique(trip_id)" in failed.stdout and "FAILED" in failed.stdout
    shown = cli_json("data", "show", "trips", "--version", "2")
    assert [v["success"] for v in shown["validations"]] == [False]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("data", "show", "ghost"), "error: no dataset named 'ghost'"),
        (("data", "show", "bad/ref/x"), "error: 'bad/ref/x' is not a dataset"),
        (("data", "ingest", "--name", "x"), "error: give a SOURCE file, or --sql with --url"),
        (("data", "ingest", "--name", "x", "--sql", "select 1"), "error: --sql needs --url"),
        (("data", "ingest", "/no/such.csv", "--name", "x"), "error: /no/such.csv: no such file"),
        (
            ("data", "ingest", "a.csv", "--name", "x", "--type", "nonsense"),
            "error: --type 'nonsense': expected KEY=VALUE",
        ),
        (("data", "validate", "trips"), "error: give --suite FILE.yaml, or --suggest"),
    ],
)
def test_data_errors_are_one_line(csv_file: Path, args: tuple[str, ...], message: str) -> None:
    cli("data", "ingest", str(csv_file), "--name", "trips")
    result = cli(*args, check=False)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().startswith(message), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_ingest_from_sql(home: Path, tmp_path: Path) -> None:
    import sqlite3

    database = tmp_path / "src.db"
    with sqlite3.connect(database) as conn:
        conn.execute("CREATE TABLE t (a INTEGER, b TEXT)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, str(i)) for i in range(42)])
    created = cli_json(
        "data",
        "ingest",
        "--name",
        "t",
        "--sql",
        "SELECT * FROM t",
        "--url",
        f"sqlite:///{database}",
    )
    assert created["row_count"] == 42 and created["source"]["kind"] == "sql"


def test_report_html_and_json(csv_file: Path, tmp_path: Path) -> None:
    cli("data", "ingest", str(csv_file), "--name", "trips")
    html = tmp_path / "out" / "trips.html"
    html.parent.mkdir()
    assert (
        "wrote" in cli("data", "report", "trips", "--out", str(html), "--suggest", "trips").stdout
    )
    text = html.read_text()
    assert text.startswith("<!DOCTYPE html>") and "<svg" in text and "trip_id" in text
    data = json.loads(
        cli("data", "report", "trips@1", "--out", str(tmp_path / "trips.json")).stdout
        and (tmp_path / "trips.json").read_text()
    )
    assert data["profile"]["row_count"] == 500
    bad = cli("data", "report", "trips", "--out", str(tmp_path / "trips.txt"), check=False)
    assert bad.returncode == 2 and bad.stderr.startswith("error:")
