"""Request inputs: read from JSON or Arrow, checked against the model's signature.

Checking happens per request, on the event loop, in plain Python over the few values a
request carries; turning rows into the DataFrame or array a model wants happens once
per micro-batch, in the inference thread. Every refusal names the field and the row,
so a caller can fix the request without reading server logs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from forgeml.errors import InvalidArgumentError

FLOAT_TYPES = {"float16", "float32", "float64"}
INT_TYPES = {"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"}


class RequestError(InvalidArgumentError):
    """The request cannot be scored as sent; ``field`` names the part at fault."""

    def __init__(self, message: str, field: str | None = None, status: int = 422) -> None:
        super().__init__(message)
        self.field = field
        self.status = status


@dataclass
class Rows:
    """One request's rows: named columns (lists of equal length) or one tensor."""

    count: int
    columns: dict[str, list[Any]] | None = None
    tensor: np.ndarray | None = None
    # The request these checked rows came from, when they hold all of its fields.
    origin: Rows | None = None
    # Where the rows sit in the float matrix of the micro-batch that scored them:
    # (column names, matrix, first row). The prediction log takes whole matrices from
    # here instead of gathering 30 Python floats per request a second time.
    block: tuple[tuple[str, ...], np.ndarray, int] | None = None

    def value_rows(self) -> list[Any]:
        """The rows as JSON-ready objects, for the prediction log."""
        if self.columns is not None:
            names = list(self.columns)
            return [{name: self.columns[name][i] for name in names} for i in range(self.count)]
        assert self.tensor is not None
        return list(self.tensor.tolist())


def rows_from_json(inputs: Any) -> Rows:
    """Rows from the ``inputs`` of a JSON request.

    ``[{"x": 1}, ...]`` (records), ``{"x": [1, 2]}`` (columns), ``{"x": 1}`` (one
    record) or ``[[...], ...]`` (a batch for a tensor model).
    """
    if isinstance(inputs, dict):
        if not inputs:
            raise RequestError('"inputs" is empty', "inputs")
        lists = [isinstance(v, list) for v in inputs.values()]
        if all(lists):
            lengths = {len(v) for v in inputs.values()}
            if len(lengths) != 1:
                sizes = ", ".join(f"{k}: {len(v)}" for k, v in inputs.items())
                raise RequestError(f"columns have different lengths ({sizes})", "inputs")
            columns = {str(k): v for k, v in inputs.items()}
            return Rows(lengths.pop(), columns=columns)
        if any(lists):
            name = next(k for k, v in inputs.items() if isinstance(v, list))
            raise RequestError(
                f"field {name!r} is a list while others are single values: send columns "
                "(all lists) or one record (no lists)",
                name,
            )
        return Rows(1, columns={str(k): [v] for k, v in inputs.items()})
    if isinstance(inputs, list):
        if not inputs:
            raise RequestError('"inputs" has no rows', "inputs")
        if all(isinstance(r, dict) for r in inputs):
            return _records(inputs)
        if any(isinstance(r, dict) for r in inputs):
            raise RequestError('mix of records and non-records in "inputs"', "inputs")
        return Rows(len(inputs), tensor=_tensor(inputs))
    raise RequestError(
        '"inputs" must be a list of records, an object of columns or one record', "inputs"
    )


def _records(records: list[dict[str, Any]]) -> Rows:
    first = records[0]
    columns: dict[str, list[Any]] = {str(k): [v] for k, v in first.items()}
    for index, record in enumerate(records[1:], start=1):
        if len(record) != len(columns) or any(k not in columns for k in record):
            missing = [k for k in columns if k not in record]
            if missing:
                raise RequestError(f"row {index}: field {missing[0]!r} is missing", missing[0])
            extra = next(k for k in record if k not in columns)
            raise RequestError(f"row {index}: field {extra!r} is not in row 0", extra)
        for key, value in record.items():
            columns[key].append(value)
    return Rows(len(records), columns=columns)


def _tensor(values: list[Any]) -> np.ndarray:
    try:
        array = np.asarray(values)
    except ValueError as exc:
        raise RequestError(f'"inputs" is not a rectangular array: {exc}', "inputs") from None
    if array.dtype == object:
        raise RequestError('"inputs" is not a rectangular array of numbers', "inputs")
    return array


def rows_from_arrow(body: bytes) -> Rows:
    """Rows from an Arrow IPC stream (``application/vnd.apache.arrow.stream``)."""
    import pyarrow as pa

    try:
        table = pa.ipc.open_stream(body).read_all()
    except (pa.ArrowInvalid, OSError) as exc:
        raise RequestError(f"the body is not an Arrow IPC stream: {exc}", "body", 400) from None
    if table.num_rows == 0:
        raise RequestError("the Arrow table has no rows", "body")
    return Rows(table.num_rows, columns=table.to_pydict())


# --- checking against a signature -----------------------------------------------------


def _is_float(value: Any) -> bool:
    kind = type(value)
    return kind is float or kind is int


def _is_int(value: Any) -> bool:
    kind = type(value)
    return kind is int or (kind is float and value.is_integer())


def _is_bool(value: Any) -> bool:
    return type(value) is bool


def _is_str(value: Any) -> bool:
    return type(value) is str


def _is_time(value: Any) -> bool:
    kind = type(value)
    return kind is str or kind is int or kind is float


_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "float": (_is_float, "a number"),
    "int": (_is_int, "a whole number"),
    "bool": (_is_bool, "true or false"),
    "string": (_is_str, "a string"),
    "category": (_is_str, "a string"),
    "datetime": (_is_time, "an ISO time string or epoch seconds"),
}


_PLAIN_TYPES: dict[str, frozenset[type]] = {
    "float": frozenset({float, int}),
    "int": frozenset({int}),
    "bool": frozenset({bool}),
    "string": frozenset({str}),
    "category": frozenset({str}),
}


def _family(kind: str) -> str:
    if kind in FLOAT_TYPES:
        return "float"
    if kind in INT_TYPES:
        return "int"
    if kind in _CHECKS:
        return kind
    return "any"


@dataclass(frozen=True)
class _Column:
    name: str
    kind: str
    family: str
    nullable: bool

    # Value types that pass without a look at the value (None: look at every one):
    # checking the set of types a column holds runs in C, and the loop over the values
    # then only runs to find and name what is wrong.
    accepted: frozenset[type] | None = None


def _accepted(family: str, nullable: bool) -> frozenset[type] | None:
    types = _PLAIN_TYPES.get(family)
    if types is None:
        return None
    if nullable or family == "float":  # a float column reads null as NaN
        return types | {type(None)}
    return types


class InputSchema:
    """A model's input signature, ready to check requests and build model input."""

    def __init__(self, schema: Mapping[str, Any] | None) -> None:
        self.schema = dict(schema) if schema else None
        self.kind = self.schema.get("type") if self.schema else None
        self.columns: list[_Column] = []
        if self.kind == "columns":
            for column in self.schema["columns"] if self.schema else []:
                kind = str(column["type"])
                family, nullable = _family(kind), bool(column.get("nullable"))
                self.columns.append(
                    _Column(
                        str(column["name"]), kind, family, nullable, _accepted(family, nullable)
                    )
                )
        self.names = [c.name for c in self.columns]
        self.by_name = {c.name: c for c in self.columns}
        self.int_kinds = {c.name: c.kind for c in self.columns if c.family == "int"}
        self.narrow_floats = {
            c.name: c.kind for c in self.columns if c.kind in ("float32", "float16")
        }
        self.all_float = bool(self.columns) and all(
            c.family == "float" or (c.family == "int" and not c.nullable) for c in self.columns
        )
        # Only then does the model's matrix hold the values exactly as the request sent them.
        self.only_float = bool(self.columns) and all(c.family == "float" for c in self.columns)
        self.names_key = tuple(self.names)
        self._column_index: Any = None
        tensor = self.schema if self.kind == "tensor" and self.schema else {}
        self.tensor_dtype = str(tensor["dtype"]) if "dtype" in tensor else None
        self.tensor_shape = list(tensor.get("shape", []))

    def check(self, rows: Rows) -> Rows:
        """The rows the model needs, in signature order; RequestError names what is wrong."""
        if self.kind == "columns":
            return self._check_columns(rows)
        if self.kind == "tensor":
            return self._check_tensor(rows)
        return rows

    def _check_columns(self, rows: Rows) -> Rows:
        if rows.columns is None:
            raise RequestError(
                f"this model takes named fields ({', '.join(self.names[:8])}"
                f"{', ...' if len(self.names) > 8 else ''}), not an array",
                "inputs",
            )
        given = rows.columns
        checked: dict[str, list[Any]] = {}
        for column in self.columns:
            values = given.get(column.name)
            if values is None:
                raise RequestError(f"field {column.name!r} is missing", column.name)
            if column.accepted is not None and set(map(type, values)) <= column.accepted:
                checked[column.name] = values  # every value of a type that needs no look
                continue
            check, expected = _CHECKS.get(column.family, (lambda v: True, "any value"))
            for index, value in enumerate(values):
                if value is None or (type(value) is float and math.isnan(value)):
                    # A float column reads null as NaN: a 5-row example rarely shows that a
                    # column can be missing, and the model, not the server, knows NaN.
                    if not column.nullable and column.family != "float":
                        raise RequestError(
                            f"row {index}: field {column.name!r} must not be null "
                            "(the model was trained without missing values there)",
                            column.name,
                        )
                    continue
                if not check(value):
                    raise RequestError(
                        f"row {index}: field {column.name!r} must be {expected} "
                        f"({column.kind}), got {_show(value)}",
                        column.name,
                    )
            checked[column.name] = values
        origin = rows if len(given) == len(checked) else None
        return Rows(rows.count, columns=checked, origin=origin)

    def _check_tensor(self, rows: Rows) -> Rows:
        if rows.tensor is None:
            assert rows.columns is not None
            raise RequestError(
                f"this model takes an array of shape {self.tensor_shape}, not named fields",
                "inputs",
            )
        tensor = rows.tensor
        expected = self.tensor_shape[1:]
        actual = list(tensor.shape[1:])
        if len(actual) != len(expected) or any(
            e not in (-1, None) and e != a for e, a in zip(expected, actual, strict=False)
        ):
            raise RequestError(
                f"inputs have shape {list(tensor.shape)}; the model expects "
                f"[n, {', '.join(str(e) for e in expected)}]",
                "inputs",
            )
        try:
            tensor = tensor.astype(self.tensor_dtype or tensor.dtype, copy=False)
        except (TypeError, ValueError) as exc:
            raise RequestError(f"inputs are not {self.tensor_dtype}: {exc}", "inputs") from None
        return Rows(rows.count, tensor=tensor)

    def model_input(self, parts: Sequence[Rows]) -> Any:
        """The model's input for a micro-batch: one DataFrame or array for all parts."""
        if self.kind == "tensor" or (self.kind is None and parts[0].tensor is not None):
            tensors = [p.tensor for p in parts if p.tensor is not None]
            return tensors[0] if len(tensors) == 1 else np.concatenate(tensors)
        import pandas as pd

        names = self.names or list(parts[0].columns or {})
        merged: dict[str, list[Any]] = {}
        for name in names:
            if len(parts) == 1:
                merged[name] = parts[0].columns[name]  # type: ignore[index]
            else:
                merged[name] = [v for p in parts for v in p.columns[name]]  # type: ignore[index]
        if self.all_float:
            matrix = np.array([merged[n] for n in names], dtype=np.float64).T
            if self._column_index is None:  # built once: pandas takes ~50 us to build it
                self._column_index = pd.Index(names)
            frame = pd.DataFrame(matrix, columns=self._column_index, copy=False)
            if self.only_float:
                _mark_blocks(parts, self.names_key, matrix)
            if self.int_kinds:
                frame = frame.astype(self.int_kinds)
            return frame.astype(self.narrow_floats) if self.narrow_floats else frame
        return pd.DataFrame({name: _series(merged[name], self.by_name.get(name)) for name in names})


def _mark_blocks(parts: Sequence[Rows], names: tuple[str, ...], matrix: np.ndarray) -> None:
    start = 0
    for part in parts:
        if part.origin is not None:
            part.origin.block = (names, matrix, start)
        start += part.count


def _series(values: list[Any], column: _Column | None) -> Any:
    import pandas as pd

    if column is None:
        return values
    if column.family == "float":
        return np.array(values, dtype=column.kind)
    if column.family == "int":
        if column.nullable:
            nullable_kind: Any = column.kind.capitalize().replace("Uint", "UInt")
            return pd.array(values, dtype=nullable_kind)
        return np.array(values, dtype=column.kind)
    if column.family == "bool":
        return pd.array(values, dtype="boolean") if column.nullable else np.array(values, bool)
    if column.family == "category":
        return pd.Categorical(values)
    if column.family == "datetime":
        return utc_times(values)
    return np.array(values, dtype=object)


def utc_times(values: Sequence[Any]) -> Any:
    """Times in UTC from ISO strings and epoch seconds (pandas alone reads numbers as ns)."""
    import pandas as pd

    numeric = [type(v) is int or type(v) is float for v in values]
    if all(numeric):
        return pd.to_datetime(values, unit="s", utc=True)
    if any(numeric):
        values = [
            pd.Timestamp(v, unit="s", tz="UTC") if number else v
            for v, number in zip(values, numeric, strict=True)
        ]
    return pd.to_datetime(values, utc=True, format="mixed")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
