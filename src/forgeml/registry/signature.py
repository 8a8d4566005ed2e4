"""Model signatures: the input and output schema, inferred from an example.

A schema is plain JSON, so it can be stored, diffed and read by a server in another
language. Two shapes exist: ``columns`` (named, typed fields: DataFrames, Arrow
tables, dicts of arrays, lists of records) and ``tensor`` (one array with a dtype and a
shape whose first dimension, the batch, is -1).
"""

from __future__ import annotations

from typing import Any

from forgeml.errors import InvalidArgumentError

Schema = dict[str, Any]


def _dtype_name(dtype: Any) -> str:
    name = str(dtype)
    aliases = {"object": "string", "str": "string", "large_string": "string", "utf8": "string"}
    return aliases.get(name, name)


def _column_schema(name: str, values: Any) -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    series = values if isinstance(values, pd.Series) else pd.Series(values)
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        kind = "category"
    elif pd.api.types.is_bool_dtype(dtype):
        kind = "bool"
    elif pd.api.types.is_integer_dtype(dtype) or pd.api.types.is_float_dtype(dtype):
        numpy_dtype: Any = getattr(dtype, "numpy_dtype", dtype)  # nullable Int64 -> int64
        kind = _dtype_name(np.dtype(numpy_dtype))
    elif pd.api.types.is_datetime64_any_dtype(dtype):
        kind = "datetime"
    elif pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype):
        kind = "string"
    else:
        kind = _dtype_name(dtype)
    return {"name": str(name), "type": kind, "nullable": bool(series.isna().any())}


def infer_schema(data: Any) -> Schema:
    """Schema of one example batch of model input or output."""
    import numpy as np

    module = type(data).__module__
    if module.startswith("pandas"):
        import pandas as pd

        if isinstance(data, pd.DataFrame):
            return {
                "type": "columns",
                "columns": [_column_schema(str(c), data[c]) for c in data.columns],
            }
        if isinstance(data, pd.Series):
            return {"type": "columns", "columns": [_column_schema(str(data.name or 0), data)]}
    if module.startswith("pyarrow"):
        return infer_schema(data.to_pandas())
    if module.startswith("polars"):
        return infer_schema(data.to_pandas())
    if module.startswith("torch"):
        return {
            "type": "tensor",
            "dtype": str(data.dtype).removeprefix("torch."),
            "shape": [-1, *list(data.shape[1:])],
        }
    if isinstance(data, dict):
        import pandas as pd

        return infer_schema(pd.DataFrame({str(k): np.asarray(v) for k, v in data.items()}))
    if isinstance(data, list) and data and all(isinstance(r, dict) for r in data):
        import pandas as pd

        return infer_schema(pd.DataFrame.from_records(data))
    if isinstance(data, (list, tuple)):
        data = np.asarray(data)
    if isinstance(data, np.ndarray):
        if data.ndim == 0:
            raise InvalidArgumentError("an example must be a batch, not a single scalar")
        return {"type": "tensor", "dtype": _dtype_name(data.dtype), "shape": [-1, *data.shape[1:]]}
    if hasattr(data, "num_row") and hasattr(data, "num_col"):  # xgboost.DMatrix
        return {"type": "tensor", "dtype": "float32", "shape": [-1, int(data.num_col())]}
    raise InvalidArgumentError(
        f"cannot infer a schema from a {type(data).__name__}; give a DataFrame, Arrow table, "
        "NumPy array, dict of arrays or list of records"
    )


def infer_signature(example: Any, output: Any = None) -> dict[str, Any]:
    signature: dict[str, Any] = {"inputs": infer_schema(example)}
    if output is not None:
        signature["outputs"] = infer_schema(output)
    return signature


def describe(schema: Schema | None) -> str:
    """One line a person can read: ``x1:float64, x2:int64`` or ``tensor float32[-1, 30]``."""
    if not schema:
        return "-"
    if schema.get("type") == "tensor":
        shape = ", ".join(str(d) for d in schema.get("shape", []))
        return f"tensor {schema.get('dtype')}[{shape}]"
    columns = schema.get("columns", [])
    text = ", ".join(f"{c['name']}:{c['type']}" for c in columns[:12])
    if len(columns) > 12:
        text += f", ... ({len(columns)} columns)"
    return text
