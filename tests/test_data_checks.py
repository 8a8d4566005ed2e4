"""Every check type on data that passes and data that fails; suites in Python and YAML."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from forgeml.data import Dataset, Suite, checks as c, suggest_suite
from forgeml.data.profiling import profile_data
from forgeml.errors import InvalidArgumentError, ValidationFailedError

NOW = dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.UTC)


def good() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    rows = 1000
    return pd.DataFrame(
        {
            "id": np.arange(rows),
            "carrier": rng.choice(["AA", "DL", "UA"], rows),
            "delay": rng.normal(10, 5, rows),
            "code": [f"N{i:04d}" for i in range(rows)],
            "at": pd.date_range(end=NOW - dt.timedelta(hours=1), periods=rows, freq="min"),
            "flag": rng.choice([True, False], rows),
        }
    )


def bad() -> pd.DataFrame:
    data = good()
    data.loc[3, "carrier"] = "ZZ"  # unseen category
    data.loc[[5, 6], "id"] = 7  # duplicated ids (7 appears three times)
    data.loc[9, "delay"] = 500.0  # out of range
    data.loc[10:14, "delay"] = np.nan  # nulls
    data.loc[20, "code"] = "x-12"  # breaks the pattern
    data["constant"] = 1
    data.loc[0, "constant"] = 2
    data["at"] = data["at"] - dt.timedelta(days=30)  # stale
    return pd.concat([data, data.iloc[[30, 31]]], ignore_index=True)  # duplicate rows


# Each check type: (check, what the good data gives, what the bad data gives).
# A check type added to CHECKS without a case here fails test_every_check_type_is_covered.
CASES: list[tuple[c.Check, dict[str, Any], dict[str, Any]]] = [
    (c.ColumnsPresent(["id", "carrier", "constant"]), {"passed": False}, {"passed": True}),
    (c.ColumnsPresent(["id", "carrier"]), {"passed": True}, {"passed": True}),
    (c.ColumnType("delay", "float"), {"passed": True}, {"passed": True}),
    (c.ColumnType("id", "string"), {"passed": False, "observed": "BIGINT"}, {"passed": False}),
    (c.ColumnType("at", "datetime"), {"passed": True}, {"passed": True}),
    (c.NotNull("delay"), {"passed": True}, {"passed": False, "failing_count": 5}),
    (c.NotNull("delay", max_fraction=0.01), {"passed": True}, {"passed": True}),
    (c.InRange("delay", min=-50, max=70), {"passed": True}, {"passed": False, "failing_count": 1}),
    (
        c.InSet("carrier", ["AA", "DL", "UA"]),
        {"passed": True},
        {"passed": False, "failing_count": 1, "message": "unexpected values: ZZ"},
    ),
    (c.Unique("id"), {"passed": True}, {"passed": False, "failing_count": 4}),
    (c.NoDuplicateRows(), {"passed": True}, {"passed": False, "failing_count": 2}),
    (c.NotConstant("constant", max_fraction=0.99), {"passed": False}, {"passed": False}),
    (c.NotConstant("carrier"), {"passed": True}, {"passed": True}),
    (c.Matches("code", r"N\d{4}"), {"passed": True}, {"passed": False, "failing_count": 1}),
    (c.RowCount(min=1000, max=1000), {"passed": True, "observed": 1000}, {"passed": False}),
    (c.Fresh("at", max_age="2h"), {"passed": True}, {"passed": False}),
    (c.Drift("delay", method="psi"), {"passed": True}, {"passed": True}),
]


def outcome(result: Any) -> dict[str, Any]:
    return {
        "passed": result.passed,
        "observed": result.observed,
        "failing_count": result.failing_count,
        "message": result.message,
    }


@pytest.mark.parametrize(
    ("check", "on_good", "on_bad"), CASES, ids=lambda x: getattr(x, "title", "")
)
def test_check_on_good_and_bad_data(
    check: c.Check, on_good: dict[str, Any], on_bad: dict[str, Any]
) -> None:
    suite = Suite("one", [check])
    reference = profile_data(good())
    for data, expected in ((good(), on_good), (bad(), on_bad)):
        result = suite.validate(data, reference=reference, now=NOW).results[0]
        found = outcome(result)
        for key, value in expected.items():
            assert found[key] == value, f"{check.title} {key}: {found}"
        column = getattr(check, "column", None)
        if not result.passed and (column is None or column in data) and check.failing(_ctx(data)):
            assert result.failing_rows, f"{check.title} failed without sample rows"


def _ctx(data: pd.DataFrame) -> c.Context:
    import duckdb

    connection = duckdb.connect()
    relation = connection.from_df(data)
    from forgeml.data.profiling import kind_of

    return c.Context(
        connection,
        {n: kind_of(str(t)) for n, t in zip(relation.columns, relation.types, strict=True)},
        {n: str(t) for n, t in zip(relation.columns, relation.types, strict=True)},
    )


def test_failing_rows_are_the_failing_ones() -> None:
    data = bad()
    results = {
        r.name: r
        for r in Suite(
            "s",
            [c.InSet("carrier", ["AA", "DL", "UA"]), c.Unique("id"), c.Matches("code", r"N\d{4}")],
        )
        .validate(data)
        .results
    }
    assert [row["carrier"] for row in results["in_set(carrier)"].failing_rows] == ["ZZ"]
    assert {row["id"] for row in results["unique(id)"].failing_rows} == {7, 30, 31}
    assert [row["code"] for row in results["matches(code)"].failing_rows] == ["x-12"]


def test_every_check_type_is_covered_and_round_trips_through_yaml() -> None:
    assert {type(check) for check, *_ in CASES} == set(c.CHECKS.values())
    suite = Suite("all", [check for check, *_ in CASES])
    again = Suite.from_yaml(suite.to_yaml())
    assert again.name == "all"
    assert [ch.to_dict() for ch in again.checks] == [ch.to_dict() for ch in suite.checks]


def test_yaml_suite_with_severities(tmp_path: Path) -> None:
    path = tmp_path / "flights.yaml"
    path.write_text(
        "name: flights\n"
        "checks:\n"
        "  - type: in_set\n    column: carrier\n    values: [AA, DL, UA]\n"
        "  - type: unique\n    column: id\n    severity: warn\n"
        "  - type: in_range\n    column: delay\n    min: -50\n    max: 70\n    name: sane delays\n"
    )
    suite = Suite.from_yaml(path)
    result = suite.validate(bad())
    assert (result.errors, result.warnings, result.success) == (2, 1, False)
    assert [r.name for r in result.failed()] == ["in_set(carrier)", "unique(id)", "sane delays"]
    with pytest.raises(
        ValidationFailedError, match=r"suite 'flights': 2 check\(s\) failed, first in_set"
    ):
        result.raise_for_errors()
    assert Suite.from_yaml(path).validate(good()).raise_for_errors().success


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("checks: [{type: nope}]", r"check 1: unknown check type 'nope' \(known: "),
        ("checks: [{type: unique}]", r"check 1 \(unique\): missing field 'column'"),
        (
            "checks: [{type: unique, column: id, colour: red}]",
            r"check 1 \(unique\): unknown field 'colour'",
        ),
        (
            "checks: [{type: unique, column: id, severity: fatal}]",
            r"severity must be 'error' or 'warn'",
        ),
        ("checks: [{type: in_range, column: x}]", r"in_range\(x\): give min, max or both"),
        ("checks: [{type: drift, column: x, method: magic}]", r"method must be one of psi, js"),
        ("checks: [{type: matches, column: x, pattern: '(['}]", r"matches\(x\): bad pattern"),
        ("checks: [{type: fresh, column: x, max_age: soon}]", r"duration 'soon' is not understood"),
        ("checks: [{type: column_type, column: x, dtype: text}]", r"dtype must be one of integer"),
        ("name: x", r"expected a mapping with 'name' and 'checks'"),
        ("checks: {a: 1}", r"'checks' must be a list"),
        ("checks: [unique]", r"check 1: expected a mapping"),
        ("checks: [", r"not valid YAML"),
    ],
)
def test_bad_suites_name_the_check_and_field(text: str, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        Suite.from_yaml(text)


def test_drift_methods_detect_a_shift_and_accept_the_same_distribution() -> None:
    rng = np.random.default_rng(2)
    reference = pd.DataFrame(
        {"x": rng.normal(0, 1, 20_000), "cat": rng.choice(list("abc"), 20_000, p=[0.6, 0.3, 0.1])}
    )
    same = pd.DataFrame(
        {"x": rng.normal(0, 1, 20_000), "cat": rng.choice(list("abc"), 20_000, p=[0.6, 0.3, 0.1])}
    )
    shifted = pd.DataFrame(
        {"x": rng.normal(0.8, 1, 20_000), "cat": rng.choice(list("abc"), 20_000, p=[0.2, 0.3, 0.5])}
    )
    profile = profile_data(reference)
    numeric = [c.Drift("x", method=m) for m in ("psi", "js", "ks", "wasserstein")]
    categorical = [c.Drift("cat", method=m) for m in ("psi", "js", "chi2")]
    suite = Suite("drift", numeric + categorical)
    assert suite.validate(same, reference=profile).success
    drifted = suite.validate(shifted, reference=profile)
    assert [r.passed for r in drifted.results] == [False] * 7
    psi = drifted.results[0].observed
    assert psi["method"] == "psi" and psi["statistic"] > 0.2
    assert drifted.results[6].observed["p_value"] < 1e-10


def test_drift_without_a_reference_fails_with_a_reason() -> None:
    [result] = Suite("s", [c.Drift("delay")]).validate(good()).results
    assert not result.passed
    assert "no reference" in result.message


def test_suggested_suite_passes_its_own_data_and_catches_the_usual_faults(home: Path) -> None:
    reference = Dataset.ingest(good(), name="flights")
    suite = suggest_suite(reference)
    assert suite.name == "flights-suggested"
    assert reference.validate(suite).success
    result = suite.validate(bad(), reference=reference, now=NOW)
    failed = {r.name for r in result.failed()}
    assert {"in_set(carrier)", "unique(id)"} <= failed
    assert "not_null(delay)" in failed
    assert "no_duplicate_rows" in failed
    kinds = {type(ch).__name__ for ch in suite.checks}
    assert {
        "ColumnsPresent",
        "ColumnType",
        "NotNull",
        "Unique",
        "InSet",
        "InRange",
        "RowCount",
        "NoDuplicateRows",
    } <= kinds


def test_validation_results_are_stored_with_the_version(home: Path) -> None:
    from forgeml import backend

    dataset = Dataset.ingest(good(), name="flights")
    dataset.validate(Suite("strict", [c.RowCount(max=10)]))
    dataset.validate(Suite("loose", [c.RowCount(min=1)]))
    history = backend.datasets().list_validations("flights")
    assert [(v.suite, v.success, v.errors) for v in history] == [
        ("loose", True, 0),
        ("strict", False, 1),
    ]
    assert history[1].result["results"][0]["observed"] == 1000


def test_drift_reference_by_dataset_uri(home: Path) -> None:
    Dataset.ingest(good(), name="reference")
    shifted = good().assign(delay=lambda d: d["delay"] + 20)
    [result] = (
        Suite("s", [c.Drift("delay", reference="datasets:/reference/1")]).validate(shifted).results
    )
    assert not result.passed and result.observed["statistic"] > 1


def test_a_unique_key_settles_duplicate_rows_without_hashing() -> None:
    suite = Suite("keys", [c.NoDuplicateRows(), c.Unique("id")])
    clean = suite.validate(good())
    assert clean.success
    assert clean.results[0].observed == {"duplicate_rows": 0, "key": "id"}
    dirty = suite.validate(bad())
    assert [r.passed for r in dirty.results] == [False, False]
    assert dirty.results[0].observed == {"duplicate_rows": 2}
