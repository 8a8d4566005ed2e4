"""Batch scoring: real registered models over real Parquet and CSV files, in and out of process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import forgeml as fm
from forgeml import events
from forgeml.errors import DataSourceError, InvalidArgumentError, NotFoundError
from forgeml.serving.inputs import RequestError
from forgeml_cli import cli
from serving_support import FEATURES, register_versions

ROWS = 1_000
CHUNK = 128  # not a divisor of the row-group size: chunks straddle row groups


def scoring_frame(rows: int = ROWS, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, len(FEATURES))), columns=FEATURES)
    frame.insert(0, "id", np.arange(rows, dtype=np.int64) * 3 + 1)
    frame["note"] = [f"row-{i}" for i in range(rows)]
    return frame


def write_parquet(frame: pd.DataFrame, path: Path, row_group: int = 300) -> Path:
    pq.write_table(
        pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=row_group
    )
    return path


@pytest.fixture
def clf(home: Path) -> Any:
    """A registered classifier (the champion) and the model object itself."""
    register_versions("clf", 1)
    return fm.load_model("models:/clf/1")


@pytest.fixture
def data(tmp_path: Path) -> tuple[pd.DataFrame, Path]:
    frame = scoring_frame()
    return frame, write_parquet(frame, tmp_path / "rows.parquet")


@pytest.mark.parametrize("workers", [1, 2])
def test_predictions_equal_the_models_own_in_input_order(
    clf: Any, data: tuple[pd.DataFrame, Path], tmp_path: Path, workers: int
) -> None:
    frame, path = data
    out = tmp_path / "out" / "scores.parquet"
    seen: list[tuple[int, int | None]] = []
    done = fm.serving.predict_batch(
        "models:/clf@champion",
        path,
        out,
        keep=["id"],
        chunk_rows=CHUNK,
        workers=workers,
        progress=lambda rows, total: seen.append((rows, total)),
    )
    result = pq.read_table(out)
    assert result.column_names == ["id", "prediction"]
    assert result.column("id").to_pylist() == frame.id.tolist()
    expected = clf.predict(frame[FEATURES])
    np.testing.assert_array_equal(result.column("prediction").to_numpy(), expected)
    assert (done.rows, done.model, done.version, done.output) == (ROWS, "clf", 1, out)
    assert done.columns == ("prediction",) and done.seconds > 0
    assert seen[0] == (0, ROWS) and seen[-1] == (ROWS, ROWS)
    assert [r for r, _ in seen] == sorted({r for r, _ in seen}) and len(seen) > 3

    metadata = {k.decode(): v.decode() for k, v in pq.read_metadata(out).metadata.items()}
    version = fm.get_model_version("models:/clf/1")
    assert metadata["forgeml.model"] == "clf"
    assert metadata["forgeml.model_version"] == "1"
    assert metadata["forgeml.model_digest"] == version.manifest_digest == done.digest
    assert metadata["forgeml.input"] == str(path.resolve())
    assert metadata["forgeml.rows"] == str(ROWS)
    assert [p.name for p in out.parent.iterdir()] == ["scores.parquet"]

    event = events.since(0, ["batch_prediction"])[-1]
    assert event.subject == "clf/1" and event.id == done.event_id
    assert event.payload is not None
    assert (event.payload["rows"], event.payload["output"]) == (ROWS, str(out))
    downstream = fm.lineage("models:/clf/1", "down").downstream("batch_output")
    assert ("batch_output", str(out)) in downstream


def test_predict_proba_has_one_column_per_class(
    clf: Any, data: tuple[pd.DataFrame, Path], tmp_path: Path
) -> None:
    frame, path = data
    out = tmp_path / "proba.parquet"
    done = fm.serving.predict_batch(
        "models:/clf/1", path, out, method="predict_proba", keep=["id", "note"], chunk_rows=CHUNK
    )
    result = pq.read_table(out)
    assert result.column_names == ["id", "note", "proba_0", "proba_1"]
    assert done.columns == ("proba_0", "proba_1")
    expected = clf.predict_proba(frame[FEATURES])
    np.testing.assert_allclose(result.column("proba_0").to_numpy(), expected[:, 0], rtol=0, atol=0)
    np.testing.assert_allclose(result.column("proba_1").to_numpy(), expected[:, 1], rtol=0, atol=0)
    assert result.column("note").to_pylist() == frame.note.tolist()


def test_directories_globs_and_csv_keep_order(clf: Any, tmp_path: Path) -> None:
    frame = scoring_frame(600)
    parts = tmp_path / "parts"
    parts.mkdir()
    for i in range(3):
        write_parquet(frame.iloc[i * 200 : (i + 1) * 200], parts / f"part-{i}.parquet", 70)
    csv = tmp_path / "rows.csv"
    frame.to_csv(csv, index=False)
    expected = clf.predict(frame[FEATURES])
    hive = tmp_path / "hive"
    for i, region in enumerate(("north", "south")):
        (hive / f"region={region}").mkdir(parents=True)
        write_parquet(frame.iloc[i * 300 : (i + 1) * 300], hive / f"region={region}" / "p.parquet")
    regions = pq.read_table(
        fm.serving.predict_batch(
            "models:/clf/1", hive, tmp_path / "h.parquet", keep=["region"], workers=2
        ).output
    ).column("region")
    assert regions.to_pylist() == ["north"] * 300 + ["south"] * 300
    for source in (parts, str(parts / "part-*.parquet"), csv):
        out = tmp_path / "out.parquet"
        done = fm.serving.predict_batch("models:/clf/1", source, out, keep=["id"], chunk_rows=90)
        result = pq.read_table(out)
        assert done.rows == 600
        assert result.column("id").to_pylist() == frame.id.tolist(), source
        np.testing.assert_array_equal(result.column("prediction").to_numpy(), expected)


def test_a_stored_dataset_version_is_an_input_with_lineage(
    clf: Any, data: tuple[pd.DataFrame, Path], tmp_path: Path
) -> None:
    frame, path = data
    dataset = fm.Dataset.ingest(path, name="customers")
    out = tmp_path / "scores.parquet"
    done = fm.serving.predict_batch("models:/clf/1", "datasets:/customers", out, keep=["id"])
    assert done.input == f"datasets:/customers/{dataset.version}"
    np.testing.assert_array_equal(
        pq.read_table(out).column("prediction").to_numpy(), clf.predict(frame[FEATURES])
    )
    graph = fm.lineage(("batch_output", str(out)), "up")
    assert ("dataset_version", f"customers/{dataset.version}") in graph.upstream()
    assert ("model_version", "clf/1") in graph.upstream()
    with pytest.raises(NotFoundError):
        fm.serving.predict_batch("models:/clf/1", "datasets:/nothing", tmp_path / "x.parquet")


def test_a_missing_or_mistyped_column_fails_before_scoring(
    clf: Any, data: tuple[pd.DataFrame, Path], tmp_path: Path
) -> None:
    frame, _ = data
    missing = write_parquet(frame.drop(columns=["f3"]), tmp_path / "missing.parquet")
    out = tmp_path / "out.parquet"
    with pytest.raises(RequestError, match=r"missing\.parquet has no column 'f3'") as caught:
        fm.serving.predict_batch("models:/clf/1", missing, out)
    assert caught.value.field == "f3"
    typed = write_parquet(frame.astype({"f2": str}), tmp_path / "typed.parquet")
    with pytest.raises(
        RequestError, match=r"column 'f2' is (large_)?string; model clf/1 needs numbers"
    ):
        fm.serving.predict_batch("models:/clf/1", typed, out)
    # a directory whose second file lacks the column: named before anything is scored
    parts = tmp_path / "parts"
    parts.mkdir()
    write_parquet(frame, parts / "a.parquet")
    write_parquet(frame.drop(columns=["f0"]), parts / "b.parquet")
    with pytest.raises(RequestError, match=r"b\.parquet has no column 'f0'"):
        fm.serving.predict_batch("models:/clf/1", parts, out, workers=2)
    with pytest.raises(InvalidArgumentError, match="no column 'customer' to keep"):
        fm.serving.predict_batch(
            "models:/clf/1", missing.parent / "typed.parquet", out, keep=["customer"]
        )
    assert not out.exists()


def test_bad_uris_and_files_are_named(clf: Any, tmp_path: Path) -> None:
    out = tmp_path / "out.parquet"
    with pytest.raises(InvalidArgumentError, match="not a model URI"):
        fm.serving.predict_batch("model:/clf/1", tmp_path / "x.parquet", out)
    with pytest.raises(NotFoundError):
        fm.serving.predict_batch("models:/other@champion", tmp_path / "x.parquet", out)
    with pytest.raises(DataSourceError, match=r"x\.parquet: no such file"):
        fm.serving.predict_batch("models:/clf/1", tmp_path / "x.parquet", out)
    with pytest.raises(DataSourceError, match="no file matches"):
        fm.serving.predict_batch("models:/clf/1", str(tmp_path / "*.parquet"), out)
    (tmp_path / "text.parquet").write_text("not parquet")
    with pytest.raises(DataSourceError, match=r"text\.parquet is not"):
        fm.serving.predict_batch("models:/clf/1", tmp_path / "text.parquet", out)
    with pytest.raises(InvalidArgumentError, match="method must be one of"):
        fm.serving.predict_batch("models:/clf/1", tmp_path / "text.parquet", out, method="score")
    assert not out.exists()


@pytest.fixture
def counted(home: Path) -> Any:
    """A model with a whole-number column that never held a null."""
    from sklearn.linear_model import LogisticRegression

    frame = scoring_frame(200)[FEATURES[:3]]
    frame["n"] = np.arange(200, dtype=np.int64) % 5
    model = LogisticRegression().fit(frame, (frame.f0 + frame.n > 2).astype(int))
    fm.log_model(model, "counted", example=frame[:5], run_id=None)
    return model


@pytest.mark.parametrize("executor,workers", [("local", 1), ("local", 2), ("ray", 1)])
def test_a_bad_value_mid_file_leaves_no_output_and_the_old_one_untouched(
    request: pytest.FixtureRequest, counted: Any, tmp_path: Path, executor: str, workers: int
) -> None:
    if executor == "ray":
        request.getfixturevalue("ray_runtime")
    frame = scoring_frame()[["id", *FEATURES[:3]]]
    frame["n"] = pd.array(np.arange(ROWS) % 5, dtype="Int64")
    frame.loc[700, "n"] = None  # the 6th chunk of 128 rows
    path = write_parquet(frame, tmp_path / "rows.parquet")
    out = tmp_path / "scores.parquet"
    out.write_bytes(b"yesterday's scores")
    with pytest.raises(RequestError, match=r"row 701: column 'n' is null"):
        fm.serving.predict_batch(
            "models:/counted/1",
            path,
            out,
            keep=["id"],
            chunk_rows=CHUNK,
            workers=workers,
            executor=executor,
        )
    assert out.read_bytes() == b"yesterday's scores"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "home",
        "rows.parquet",
        "scores.parquet",
        "work",
    ]

    if (executor, workers) != ("local", 1):
        return
    fractions = frame.astype({"n": "float64"}).fillna({"n": 2.5})
    write_parquet(fractions, path)
    with pytest.raises(RequestError, match=r"row 701: column 'n' must be a whole number .* 2\.5"):
        fm.serving.predict_batch("models:/counted/1", path, out, chunk_rows=CHUNK)
    fixed = frame.fillna({"n": 1})
    write_parquet(fixed, path)
    fm.serving.predict_batch("models:/counted/1", path, out, chunk_rows=CHUNK)
    expected = counted.predict(fixed[[*FEATURES[:3], "n"]].astype({"n": "int64"}))
    np.testing.assert_array_equal(pq.read_table(out).column("prediction").to_numpy(), expected)


def test_an_empty_input_writes_the_columns(clf: Any, tmp_path: Path) -> None:
    path = write_parquet(scoring_frame(0), tmp_path / "empty.parquet")
    out = tmp_path / "out.parquet"
    done = fm.serving.predict_batch("models:/clf/1", path, out, keep=["id"], method="predict_proba")
    result = pq.read_table(out)
    assert done.rows == 0 and result.num_rows == 0
    assert result.column_names == ["id", "proba_0", "proba_1"]


def test_the_cli_scores_end_to_end(
    clf: Any, data: tuple[pd.DataFrame, Path], tmp_path: Path
) -> None:
    frame, path = data
    out = tmp_path / "cli.parquet"
    args = ["predict", "-m", "models:/clf@champion", "-i", str(path), "-o", str(out)]
    summary = json.loads(cli(*args, "--keep", "id", "--chunk-rows", "300", "--json").stdout)
    assert summary["rows"] == ROWS and summary["version"] == 1 and summary["output"] == str(out)
    result = pq.read_table(out)
    np.testing.assert_array_equal(
        result.column("prediction").to_numpy(), clf.predict(frame[FEATURES])
    )

    missing = write_parquet(frame.drop(columns=["f1"]), tmp_path / "missing.parquet")
    failed = cli("predict", "-m", "models:/clf/1", "-i", str(missing), "-o", str(out), check=False)
    assert failed.returncode == 2
    assert "has no column 'f1'" in failed.stderr and "Traceback" not in failed.stderr


def test_ray_actors_score_in_order(
    request: pytest.FixtureRequest, clf: Any, data: tuple[pd.DataFrame, Path], tmp_path: Path
) -> None:
    request.getfixturevalue("ray_runtime")
    frame, path = data
    out = tmp_path / "ray.parquet"
    done = fm.serving.predict_batch(
        "models:/clf/1", path, out, keep=["id"], chunk_rows=CHUNK, workers=2, executor="ray"
    )
    assert done.executor == "ray"
    result = pq.read_table(out)
    assert result.column("id").to_pylist() == frame.id.tolist()
    np.testing.assert_array_equal(
        result.column("prediction").to_numpy(), clf.predict(frame[FEATURES])
    )
    with pytest.raises(RequestError, match=r"has no column 'f3'"):
        fm.serving.predict_batch(
            "models:/clf/1",
            write_parquet(frame.drop(columns=["f3"]), tmp_path / "m.parquet"),
            out,
            executor="ray",
        )
