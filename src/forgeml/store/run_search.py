"""Compile a parsed run filter and ordering into one SQL query over the run tables.

Metric conditions read ``latest_metrics`` (the value at the highest step), so a filter
over ten thousand runs is an index lookup per condition, not a scan of every history.
Params are text; compared with a number they are read as numbers where they parse as
one (``params.max_depth > 4`` matches "6" and "6.0", never "deep").
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    Select,
    and_,
    exists,
    false,
    func,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from forgeml.store import schema
from forgeml.store.run_filter import And, Comparison, Expr, Field, Not, Or, OrderBy

_NUMBER_PATTERN = r"^\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?\s*$"


class param_number(FunctionElement[float]):
    """The text as a number when it is one, else NULL (never an error, on any backend)."""

    type = Float()
    inherit_cache = True


@compiles(param_number, "postgresql")
def _param_number_pg(element: param_number, compiler: Any, **kw: Any) -> str:
    (arg,) = list(element.clauses)
    text = compiler.process(arg, **kw)
    return f"(CASE WHEN {text} ~ '{_NUMBER_PATTERN}' THEN CAST({text} AS DOUBLE PRECISION) END)"


@compiles(param_number)
def _param_number_default(element: param_number, compiler: Any, **kw: Any) -> str:
    # SQLite: the connection registers forgeml_number() (see database.py).
    return f"forgeml_number({compiler.process(element.clauses, **kw)})"


_ATTRIBUTE_COLUMNS = {
    "id": schema.runs.c.id,
    "name": schema.runs.c.name,
    "status": schema.runs.c.status,
    "user": schema.runs.c.user,
    "start_time": schema.runs.c.start_time,
    "end_time": schema.runs.c.end_time,
    "parent_id": schema.runs.c.parent_id,
    "git_sha": schema.runs.c.git_sha,
    "host": schema.runs.c.host,
}


def _compare(column: Any, op: str, value: Any) -> ColumnElement[bool]:
    if op == "=":
        return column == value  # type: ignore[no-any-return]
    if op == "!=":
        return column != value  # type: ignore[no-any-return]
    if op == "<":
        return column < value  # type: ignore[no-any-return]
    if op == "<=":
        return column <= value  # type: ignore[no-any-return]
    if op == ">":
        return column > value  # type: ignore[no-any-return]
    if op == ">=":
        return column >= value  # type: ignore[no-any-return]
    if op == "like":
        return column.like(value)  # type: ignore[no-any-return]
    if op == "not like":
        return column.not_like(value)  # type: ignore[no-any-return]
    if op == "ilike":
        return column.ilike(value)  # type: ignore[no-any-return]
    if op == "not ilike":
        return column.not_ilike(value)  # type: ignore[no-any-return]
    if op == "in":
        return column.in_(value)  # type: ignore[no-any-return]
    if op == "not in":
        return column.not_in(value)  # type: ignore[no-any-return]
    raise ValueError(f"unknown operator {op!r}")  # pragma: no cover - the parser checks


def _key_value_condition(comparison: Comparison) -> ColumnElement[bool]:
    """A condition on one metric, param or tag of the run being filtered."""
    field, op, value = comparison.field, comparison.op, comparison.value
    table = {
        "metric": schema.latest_metrics,
        "param": schema.params,
        "tag": schema.run_tags,
    }[field.entity]
    keyed = and_(table.c.run_id == schema.runs.c.id, table.c.key == field.key)
    if op in ("is null", "is not null"):
        present = exists().where(keyed)
        return ~present if op == "is null" else present
    column: Any = table.c.value
    values = value if isinstance(value, tuple) else (value,)
    numeric = all(isinstance(v, float) for v in values)
    if field.entity != "metric":
        if numeric and op not in ("like", "ilike", "not like", "not ilike"):
            column = param_number(table.c.value)
        else:
            value = (
                tuple(_as_text(v) for v in values) if isinstance(value, tuple) else _as_text(value)
            )
    negative = op in ("!=", "not in", "not like", "not ilike")
    if negative:
        # "x != 3" holds for runs that have x with another value, not for runs without x.
        positive_op = {"!=": "=", "not in": "in", "not like": "like", "not ilike": "ilike"}[op]
        return and_(
            exists().where(keyed),
            ~exists().where(keyed, _compare(column, positive_op, value)),
        )
    if field.entity == "metric":
        # A set of run ids from the (key, value) index, rather than a probe per run.
        matching = select(table.c.run_id).where(
            table.c.key == field.key, _compare(column, op, value)
        )
        return schema.runs.c.id.in_(matching)
    return exists().where(keyed, _compare(column, op, value))


def _as_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def compile_filter(expr: Expr | None) -> ColumnElement[bool]:
    if expr is None:
        return true()
    if isinstance(expr, And):
        return and_(*(compile_filter(part) for part in expr.parts))
    if isinstance(expr, Or):
        return or_(*(compile_filter(part) for part in expr.parts))
    if isinstance(expr, Not):
        return not_(compile_filter(expr.part))
    if expr.field.entity == "attribute":
        column = _ATTRIBUTE_COLUMNS[expr.field.key]
        if expr.op == "is null":
            return column.is_(None)
        if expr.op == "is not null":
            return column.is_not(None)
        if expr.field.key in ("start_time", "end_time"):
            return _compare(column, expr.op, expr.value)
        values = expr.value if isinstance(expr.value, tuple) else (expr.value,)
        texts = [_as_text(v) for v in values]
        if expr.field.key == "status":
            texts = [t.upper() for t in texts]  # statuses are stored upper-case
        return _compare(
            column, expr.op, tuple(texts) if isinstance(expr.value, tuple) else texts[0]
        )
    return _key_value_condition(expr)


_POSITIVE_OPS = ("=", "<", "<=", ">", ">=", "in", "like", "ilike")


def _requires_metric(expr: Expr, key: str) -> bool:
    """True if ``expr`` can only hold for runs that have a (non-NaN) value of metric ``key``."""
    return (
        isinstance(expr, Comparison)
        and expr.field.entity == "metric"
        and expr.field.key == key
        and expr.op in _POSITIVE_OPS
    )


def build_query(
    expr: Expr | None,
    experiment_ids: list[int] | None,
    order_by: list[OrderBy],
) -> Select[Any]:
    """SELECT runs.id matching ``expr`` in ``experiment_ids``, ordered, ties broken stably.

    When the filter already requires the metric the results are sorted by, that metric
    is joined (not outer-joined) and filtered on the join: the database can then walk
    the ``(key, value)`` index in order and stop at the page size instead of testing
    every run.
    """
    runs = schema.runs
    conjuncts: list[Expr] = (
        list(expr.parts) if isinstance(expr, And) else ([] if expr is None else [expr])
    )
    query: Select[Any] = select(runs.c.id)
    ordering: list[Any] = []
    joined_metrics: dict[str, Any] = {}
    for index, order in enumerate(order_by):
        field = order.field
        if field.entity == "attribute":
            column = _ATTRIBUTE_COLUMNS[field.key]
            ordering.append(
                column.desc().nulls_last() if order.descending else column.asc().nulls_last()
            )
            continue
        table, values = _order_column(field, index)
        on = and_(table.c.run_id == runs.c.id, table.c.key == field.key)
        if (
            field.entity == "metric"
            and field.key not in joined_metrics
            and any(_requires_metric(part, field.key) for part in conjuncts)
        ):
            query = query.join(table, on)
            joined_metrics[field.key] = table
        else:
            query = query.outerjoin(table, on)
        ordering.extend(
            value.desc().nulls_last() if order.descending else value.asc().nulls_last()
            for value in values
        )
    conditions = []
    for part in conjuncts:
        if (
            isinstance(part, Comparison)
            and part.field.key in joined_metrics
            and _requires_metric(part, part.field.key)
        ):
            conditions.append(_compare(joined_metrics[part.field.key].c.value, part.op, part.value))
        else:
            conditions.append(compile_filter(part))
    query = query.where(*conditions)
    if experiment_ids is not None:
        query = query.where(runs.c.experiment_id.in_(experiment_ids) if experiment_ids else false())
    ordering.extend([runs.c.start_time.desc(), runs.c.id.asc()])
    return query.order_by(*ordering)


def _order_column(field: Field, index: int) -> tuple[Any, tuple[Any, ...]]:
    """The aliased key/value table to join for ordering by ``field``, and its sort keys."""
    base = {
        "metric": schema.latest_metrics,
        "param": schema.params,
        "tag": schema.run_tags,
    }[field.entity]
    table = base.alias(f"order_{index}")
    if field.entity == "param":
        # Values that are numbers sort as numbers, the rest after them as text.
        return table, (param_number(table.c.value), table.c.value)
    return table, (table.c.value,)


def count_query(expr: Expr | None, experiment_ids: list[int] | None) -> Select[Any]:
    query = select(func.count()).select_from(schema.runs).where(compile_filter(expr))
    if experiment_ids is not None:
        query = query.where(
            schema.runs.c.experiment_id.in_(experiment_ids) if experiment_ids else false()
        )
    return query
