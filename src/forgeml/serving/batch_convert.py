"""Arrow chunks in, model input out, answers back to Arrow: the columnar half of batch scoring.

The model server checks each request value by value in Python; a batch of 100,000 rows
cannot afford that. Here every check is one Arrow compute call per column (nulls,
whole numbers), and the model's input is built straight from Arrow buffers into NumPy
and pandas, with the same column order, dtypes and null handling as
:meth:`InputSchema.model_input`, so a row scores the same in a batch as over HTTP.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from forgeml.errors import ServingError
from forgeml.serving.inputs import InputSchema, RequestError

if TYPE_CHECKING:
    import pyarrow as pa

_EXPECTED = {
    "float": "numbers",
    "int": "whole numbers",
    "bool": "booleans",
    "string": "strings",
    "category": "strings",
    "datetime": "timestamps, dates, ISO strings or epoch numbers",
}


def _accepts(family: str, kind: pa.DataType) -> bool:
    import pyarrow as pa

    if pa.types.is_null(kind) or family == "any":
        return True
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    numeric = pa.types.is_integer(kind) or pa.types.is_floating(kind)
    text = pa.types.is_string(kind) or pa.types.is_large_string(kind) or _is_view(kind)
    if family in ("float", "int"):
        return bool(numeric)
    if family == "bool":
        return bool(pa.types.is_boolean(kind))
    if family in ("string", "category"):
        return bool(text)
    if family == "datetime":
        return bool(pa.types.is_timestamp(kind) or pa.types.is_date(kind) or text or numeric)
    return True


def _is_view(kind: pa.DataType) -> bool:
    import pyarrow as pa

    check = getattr(pa.types, "is_string_view", None)
    return bool(check(kind)) if check is not None else False


def check_schema(schema: pa.Schema, inputs: InputSchema, where: str, model: str) -> None:
    """Every column the signature names is present with a usable type; else RequestError."""
    names = set(schema.names)
    for column in inputs.columns:
        if column.name not in names:
            shown = ", ".join(schema.names[:12]) + (", ..." if len(schema.names) > 12 else "")
            raise RequestError(
                f"{where} has no column {column.name!r}, which model {model} needs "
                f"(its columns: {shown})",
                column.name,
            )
        kind = schema.field(column.name).type
        if not _accepts(column.family, kind):
            raise RequestError(
                f"{where}: column {column.name!r} is {kind}; model {model} needs "
                f"{_EXPECTED.get(column.family, column.kind)} ({column.kind}) there",
                column.name,
            )
    if inputs.kind == "tensor":
        tensor_columns(schema, inputs, (), where, model)


def tensor_columns(
    schema: pa.Schema, inputs: InputSchema, keep: Sequence[str], where: str, model: str
) -> list[str]:
    """A tensor model reads the numeric columns (other than ``keep``) in file order."""
    import pyarrow as pa

    names = [
        f.name
        for f in schema
        if f.name not in keep and (pa.types.is_integer(f.type) or pa.types.is_floating(f.type))
    ]
    width = inputs.tensor_shape[1] if len(inputs.tensor_shape) == 2 else None
    if len(inputs.tensor_shape) != 2:
        raise RequestError(
            f"model {model} takes a tensor of shape {inputs.tensor_shape}; batch scoring "
            "builds only 2-d tensors, one numeric column per feature",
            "inputs",
        )
    if isinstance(width, int) and width > 0 and len(names) != width:
        raise RequestError(
            f"{where} has {len(names)} numeric columns besides the kept ones; model {model} "
            f"takes {width} features per row",
            "inputs",
        )
    return names


def check_values(table: pa.Table, inputs: InputSchema, offset: int, where: str) -> None:
    """Nulls where the model had none, fractions where it wants whole numbers.

    Rows are counted from 1 over the whole input, so the message points at the row.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    for column in inputs.columns:
        values = table.column(column.name)
        if values.null_count and not column.nullable and column.family != "float":
            row = pc.index(values.is_null(), True).as_py()
            raise RequestError(
                f"{where}, row {offset + row + 1:,}: column {column.name!r} is null; the "
                "model was trained without missing values there",
                column.name,
            )
        if column.family == "int" and pa.types.is_floating(values.type):
            whole = pc.equal(pc.floor(values), values)
            if pc.any(pc.invert(whole)).as_py():
                row = pc.index(whole, False).as_py()
                raise RequestError(
                    f"{where}, row {offset + row + 1:,}: column {column.name!r} must be a "
                    f"whole number ({column.kind}), got {values[row].as_py()!r}",
                    column.name,
                )


def model_input(
    table: pa.Table,
    inputs: InputSchema,
    tensor: Sequence[str] = (),
    passthrough: Sequence[str] = (),
) -> Any:
    """The DataFrame or array the model takes, built column by column from Arrow."""
    import pandas as pd

    rows = table.num_rows
    if inputs.kind == "tensor":
        matrix = np.empty((rows, len(tensor)), dtype=inputs.tensor_dtype or "float32")
        for i, name in enumerate(tensor):
            matrix[:, i] = _numbers(table.column(name))
        return matrix
    if inputs.kind != "columns":  # no signature: every column but the passed-through ones
        return table.drop_columns([n for n in passthrough if n in table.column_names]).to_pandas()
    names = inputs.names
    if inputs.all_float:
        matrix = np.empty((len(names), rows), dtype=np.float64)
        for i, name in enumerate(names):
            matrix[i] = _numbers(table.column(name))
        frame = pd.DataFrame(matrix.T, columns=names, copy=False)
        if inputs.int_kinds:
            frame = frame.astype(inputs.int_kinds)
        return frame.astype(inputs.narrow_floats) if inputs.narrow_floats else frame
    data = {
        c.name: _series(table.column(c.name), c.family, c.kind, c.nullable) for c in inputs.columns
    }
    return pd.DataFrame(data, copy=False)


def _numbers(values: pa.ChunkedArray) -> np.ndarray:
    """Floats with NaN for nulls (the NumPy view when Arrow's buffer allows)."""
    import pyarrow as pa

    if pa.types.is_null(values.type):
        return np.full(len(values), np.nan)
    array: np.ndarray = values.to_numpy()
    return array


def _series(values: pa.ChunkedArray, family: str, kind: str, nullable: bool) -> Any:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(values.type):
        values = values.cast(values.type.value_type)
    if family == "float":
        return _numbers(values).astype(kind, copy=False)
    if family == "int":
        if nullable:
            nullable_kind: Any = kind.capitalize().replace("Uint", "UInt")
            return pd.array(_numbers(values), dtype=nullable_kind)
        return values.to_numpy().astype(kind, copy=False)
    if family == "bool":
        if nullable:
            return values.to_pandas(types_mapper={pa.bool_(): pd.BooleanDtype()}.get).array
        return values.to_numpy()
    if family == "category":
        return pd.Categorical(values.to_numpy())
    if family == "datetime":
        if pa.types.is_date(values.type):
            values = pc.cast(values, pa.timestamp("s"))
        if pa.types.is_timestamp(values.type):
            return pd.to_datetime(values.to_pandas(), utc=True)
        if pa.types.is_integer(values.type) or pa.types.is_floating(values.type):
            return pd.to_datetime(values.to_numpy(), unit="s", utc=True)  # epoch seconds
        return pd.to_datetime(values.to_numpy(zero_copy_only=False), utc=True, format="mixed")
    if family == "string":
        return values.to_numpy()
    return values.to_pandas()


def output_columns(output: Any, method: str, classes: Sequence[Any] | None) -> dict[str, Any]:
    """The answer columns: ``prediction``, ``prediction_<i>`` or one ``proba_<class>`` each."""
    import pyarrow as pa

    if hasattr(output, "to_numpy"):
        output = output.to_numpy()
    if isinstance(output, list | tuple):
        output = np.asarray(output)
    if not isinstance(output, np.ndarray):
        raise ServingError(f"the model answered a {type(output).__name__}, not an array")
    if method == "predict_proba":
        if output.ndim != 2:
            raise ServingError(f"predict_proba answered shape {list(output.shape)}, not 2-d")
        labels = [str(c) for c in classes] if classes is not None else []
        if len(labels) != output.shape[1] or len(set(labels)) != len(labels):
            labels = [str(i) for i in range(output.shape[1])]
        return {f"proba_{label}": pa.array(output[:, i]) for i, label in enumerate(labels)}
    if output.ndim == 2 and output.shape[1] == 1:
        output = output[:, 0]
    if output.ndim == 1:
        return {"prediction": pa.array(output)}
    if output.ndim == 2:
        return {f"prediction_{i}": pa.array(output[:, i]) for i in range(output.shape[1])}
    raise ServingError(f"the model answered shape {list(output.shape)}; batch output is 1-d or 2-d")
