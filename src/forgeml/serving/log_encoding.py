"""How the prediction log turns buffered requests into Arrow columns of JSON text.

The encoding runs in the log's writer thread, next to the model's thread and the event
loop of the same process, so it keeps the interpreter lock as little as it can: values
become Arrow arrays through numpy, and the JSON texts come from DuckDB's ``to_json``,
which runs without the lock. Inputs of float signatures are taken whole from the
micro-batches' matrices the model was called with.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from itertools import chain, repeat
from operator import itemgetter
from typing import Any

import orjson

Block = tuple[tuple[str, ...], Any, int]  # column names, the batch's matrix, first row


def repeat_rows(values: list[Any], counts: list[int], single: bool) -> list[Any]:
    """Each request's value once per row it carried (one-row requests: the list itself)."""
    if single:
        return values
    return list(chain.from_iterable(map(repeat, values, counts)))


def row_texts(columns: dict[str, list[Any]] | None, tensor: Any, count: int) -> Any:
    """One request's rows as JSON texts, made when the request ends: a string for one
    row, a list of strings for several, None for nothing."""
    if columns is not None:
        if count == 1:
            return json_text({name: values[0] for name, values in columns.items()})
        names = list(columns)
        rows = zip(*columns.values(), strict=True)
        return [json_text(dict(zip(names, values, strict=True))) for values in rows]
    if tensor is not None:
        values = tensor.tolist()
        return json_text(values[0]) if count == 1 else [json_text(row) for row in values]
    return None


def inputs_json(items: list[Any], counts: list[int]) -> Any:
    """The ``inputs`` column from each request's block (see Block) or JSON texts, with
    the blocks of one signature encoded together; rows in request order."""
    import numpy as np
    import pyarrow as pa

    groups: dict[tuple[str, ...] | None, list[int]] = {}
    for position, item in enumerate(items):
        groups.setdefault(item[0] if type(item) is tuple else None, []).append(position)
    single = counts.count(1) == len(counts)
    starts = np.cumsum([0, *counts])
    pieces = []
    order: list[Any] = []
    for names, positions in groups.items():
        chosen = [items[p] for p in positions]
        sizes = [counts[p] for p in positions]
        encoded = None
        if names is not None:
            matrix = rows_of_blocks(chosen, sizes)
            arrays = [pa.array(column, from_pandas=True) for column in matrix]  # NaN: null
            encoded = json_of_arrays(arrays, names, bare=False)
            if encoded is None:  # DuckDB refused: the same texts, one row at a time
                texts = [json_text(dict(zip(names, row, strict=True))) for row in matrix.T.tolist()]
                encoded = pa.array(texts, pa.string())
        else:
            encoded = pa.array(flat_texts(chosen, sizes), pa.string())
        pieces.append(encoded)
        if single:
            order.append(np.asarray(positions, np.int64))
        else:
            order.extend(np.arange(starts[p], starts[p] + counts[p]) for p in positions)
    if len(pieces) == 1:
        return pieces[0]
    where = np.empty(int(starts[-1]), np.int64)  # row k of the pieces goes to order[k]
    where[np.concatenate(order)] = np.arange(int(starts[-1]))
    return pa.concat_arrays(pieces).take(pa.array(where))


def flat_texts(items: list[Any], counts: list[int]) -> list[str | None]:
    """Per-row texts from per-request ones (a string, a list of strings, or None)."""
    flat: list[str | None] = []
    for item, count in zip(items, counts, strict=True):
        if item is None:
            flat.extend([None] * count)
        elif type(item) is str:
            flat.append(item)
        else:
            flat.extend(item)
    return flat


def flat_values(items: list[Any], counts: list[int], single: bool) -> list[Any]:
    """Per-row outputs from per-request ones (one-row requests keep the value itself)."""
    if single:
        return items
    flat: list[Any] = []
    for item, count in zip(items, counts, strict=True):
        if item is None:
            flat.extend([None] * count)
        elif count == 1:
            flat.append(item)
        else:
            flat.extend(item)
    return flat


def rows_of_blocks(blocks: list[Block], counts: list[int]) -> Any:
    """The logged rows as one column-major matrix, taken from the batches' matrices."""
    import numpy as np

    bases: dict[int, int] = {}
    matrices = []
    total = 0
    for _names, matrix, _start in blocks:
        if id(matrix) not in bases:
            bases[id(matrix)] = total
            matrices.append(matrix)
            total += len(matrix)
    firsts = np.fromiter(
        (bases[id(matrix)] + start for _names, matrix, start in blocks), np.int64, len(blocks)
    )
    if all(count == 1 for count in counts):
        index = firsts
    else:
        sizes = np.asarray(counts, np.int64)
        ends = np.cumsum(sizes)
        index = np.repeat(firsts - (ends - sizes), sizes) + np.arange(int(ends[-1]))
    stacked = matrices[0] if len(matrices) == 1 else np.concatenate(matrices)
    return np.ascontiguousarray(stacked[index].T)


def json_rows(
    parts: list[dict[str, list[Any]] | None], counts: list[int], bare: bool = False
) -> Any:
    """One JSON text per row, as an Arrow string array: an object of the part's columns,
    or the value itself (``bare``).

    Encoding row by row in Python held the interpreter lock for microseconds a row, and
    at thousands of rows a second that starved the model thread of the same process.
    When every part has the same columns and Arrow can type them, the texts come from
    DuckDB's ``to_json``, which runs without the lock; otherwise, row by row.
    """
    import pyarrow as pa

    present = [p for p in parts if p is not None]
    if not present:
        return pa.nulls(sum(counts), pa.string())
    names = list(present[0])
    if len(present) == len(parts) and all(list(p) == names for p in present):
        encoded = json_by_duckdb(parts, names, bare or names == [""])
        if encoded is not None:
            return encoded
    texts: list[str | None] = []
    for part, count in zip(parts, counts, strict=True):
        if part is None:
            texts.extend([None] * count)
        elif bare or list(part) == [""]:  # null, not "null", as DuckDB gives it
            texts.extend(None if v is None else json_text(v) for v in part[next(iter(part))])
        else:
            keys = list(part)
            texts.extend(
                json_text(dict(zip(keys, values, strict=True)))
                for values in zip(*part.values(), strict=True)
            )
    return pa.array(texts, pa.string())


_DUCKDB: Any = None  # one in-memory connection for every flush: opening one takes ~20 ms
_DUCKDB_LOCK = threading.Lock()


def json_by_duckdb(parts: list[dict[str, list[Any]] | None], names: list[str], bare: bool) -> Any:
    arrays = []
    for name in names:
        array = _arrow(list(chain.from_iterable(map(itemgetter(name), parts))))  # type: ignore[arg-type]
        if array is None:
            return None
        arrays.append(array)
    return json_of_arrays(arrays, names, bare)


def json_of_arrays(arrays: list[Any], names: Sequence[str], bare: bool) -> Any:
    """``to_json`` of each row of the columns ``arrays`` (or of the single value: ``bare``)."""
    global _DUCKDB
    import duckdb
    import pyarrow as pa

    table = pa.table({f"c{position}": array for position, array in enumerate(arrays)})
    fields = ", ".join(f"{_sql_text(name)}: c{position}" for position, name in enumerate(names))
    expression = "to_json(c0)" if bare else f"to_json({{{fields}}})"
    with _DUCKDB_LOCK:
        if _DUCKDB is None:  # one thread: the CPUs are the model's and the event loop's
            _DUCKDB = duckdb.connect(config={"threads": 1})
        try:
            _DUCKDB.register("log_rows", table)
            result = _DUCKDB.sql(f"SELECT {expression} FROM log_rows").to_arrow_table()
        except duckdb.Error:
            return None
        finally:
            _DUCKDB.unregister("log_rows")
    return result.column(0).combine_chunks().cast(pa.string())


def _arrow(values: list[Any]) -> Any:
    """An Arrow array of ``values``, NaN as null (JSON has none); None if Arrow cannot type it.

    Numbers go through numpy, ten times faster than Arrow's reading of Python objects.
    """
    import numpy as np
    import pyarrow as pa

    try:
        numbers = np.asarray(values)
    except (ValueError, TypeError, OverflowError):
        numbers = None
    if numbers is not None and numbers.ndim == 1 and numbers.dtype.kind in "fib":
        return pa.array(numbers, from_pandas=True)
    try:
        return pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        return None


def _sql_text(name: str) -> str:
    """A column name as a DuckDB struct key: a quoted identifier."""
    return '"' + name.replace('"', '""') + '"'


def json_text(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS).decode()
