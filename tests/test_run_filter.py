"""The filter language: what parses, to what, and where errors point."""

from __future__ import annotations

import pytest

from forgeml.errors import FilterSyntaxError
from forgeml.store.run_filter import And, Comparison, Field, Not, Or, parse_filter, parse_order_by


def test_precedence_and_binds_tighter_than_or() -> None:
    expr = parse_filter("metrics.a > 1 or metrics.b < 2 and params.c = 'x'")
    assert isinstance(expr, Or)
    assert isinstance(expr.parts[1], And)


def test_parentheses_not_and_values() -> None:
    expr = parse_filter('not (tags.`my team` = "it\'s" or params.lr in (0.1, 1e-3))')
    assert isinstance(expr, Not)
    inner = expr.part
    assert isinstance(inner, Or)
    assert inner.parts[0] == Comparison(Field("tag", "my team"), "=", "it's")
    assert inner.parts[1] == Comparison(Field("param", "lr"), "in", (0.1, 0.001))


def test_names_with_slashes_and_dashes() -> None:
    assert parse_filter("metrics.val/loss-avg <= -0.5") == Comparison(
        Field("metric", "val/loss-avg"), "<=", -0.5
    )


def test_attributes_and_aliases() -> None:
    assert parse_filter("run_name = 'x'") == Comparison(Field("attribute", "name"), "=", "x")
    assert parse_filter("attributes.status != 'FAILED'") == Comparison(
        Field("attribute", "status"), "!=", "FAILED"
    )
    assert parse_filter("tags.x is not null") == Comparison(Field("tag", "x"), "is not null", None)
    assert parse_filter("params.m not like 'g%'") == Comparison(
        Field("param", "m"), "not like", "g%"
    )


def test_blank_filter_means_everything() -> None:
    assert parse_filter("   ") is None


@pytest.mark.parametrize(
    ("text", "column", "reason"),
    [
        ("metrics.auc > and x", 15, "expected a number or a quoted string, found 'and'"),
        ("metrics.auc 0.9", 13, "expected an operator"),
        ("metrics.auc > 'high'", 15, "compares with a number"),
        ("colour = 'red'", 1, "unknown field 'colour'"),
        ("metrics.auc > 0.9 and", 22, "expected a field"),
        ("(metrics.auc > 0.9", 19, "expected ')' to close the '(' at column 1"),
        ("metrics.auc > 0.9 params.x = 1", 19, "expected 'and', 'or' or the end"),
        ("metrics.auc ~ 1", 13, "unexpected character '~'"),
        ("params.x in (1, 2", 18, "expected ',' or ')'"),
        ("params.x = null", 12, "use 'is null'"),
        ("metrics auc > 1", 9, "expected '.' and a name after 'metrics'"),
    ],
)
def test_errors_point_at_the_offending_token(text: str, column: int, reason: str) -> None:
    with pytest.raises(FilterSyntaxError) as info:
        parse_filter(text)
    assert info.value.position + 1 == column
    assert reason in str(info.value)
    assert f"column {column}" in str(info.value)


def test_order_by() -> None:
    order = parse_order_by("metrics.auc DESC")
    assert order.field == Field("metric", "auc")
    assert order.descending
    assert not parse_order_by("start_time").descending
    with pytest.raises(FilterSyntaxError, match="expected 'asc', 'desc' or the end"):
        parse_order_by("metrics.auc downwards")
