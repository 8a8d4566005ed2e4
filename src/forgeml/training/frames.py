"""Turning the tables users train on into what estimators accept, the same way everywhere.

Polars frames and Arrow tables become pandas frames, so column names survive into the
fitted model (scikit-learn records ``feature_names_in_``) and evaluation later feeds
the model the same kind of input it was fitted on. NumPy arrays and SciPy sparse
matrices pass through untouched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from forgeml.errors import InvalidArgumentError

if TYPE_CHECKING:
    import numpy as np


def _root(value: Any) -> str:
    return type(value).__module__.split(".")[0]


def is_frame(value: Any) -> bool:
    """A pandas or polars DataFrame, or an Arrow table or record batch."""
    root = _root(value)
    name = type(value).__name__
    if root == "pandas":
        return name == "DataFrame"
    if root == "polars":
        return name in ("DataFrame", "LazyFrame")
    if root == "pyarrow":
        return name in ("Table", "RecordBatch")
    return False


def features(X: Any) -> Any:
    """``X`` as a pandas DataFrame (from any frame), a sparse matrix, or a NumPy array."""
    root = _root(X)
    if root == "pandas":
        name = type(X).__name__
        if name == "DataFrame":
            return X
        if name == "Series":
            return X.to_frame()
    if root == "polars":
        if type(X).__name__ == "LazyFrame":
            X = X.collect()
        return X.to_pandas()
    if root == "pyarrow" and hasattr(X, "to_pandas"):
        return X.to_pandas()
    if root == "scipy":
        return X
    import numpy as np

    return np.asarray(X)


def target(y: Any) -> np.ndarray[Any, Any]:
    """``y`` as a 1-d NumPy array (a single-column frame counts as one column)."""
    import numpy as np

    if y is None:
        raise InvalidArgumentError("y is required: pass the targets, or a column name of X")
    root = _root(y)
    if root == "torch":
        array = np.asarray(y.detach().cpu().numpy())
    elif root == "pyarrow" and hasattr(y, "to_numpy") and not is_frame(y):
        array = np.asarray(y.to_numpy(zero_copy_only=False))
    elif root in ("pandas", "polars", "pyarrow"):
        frame = features(y) if is_frame(y) else None
        if frame is not None:
            if frame.shape[1] != 1:
                raise InvalidArgumentError(
                    f"y must be one column, got a frame with {frame.shape[1]} columns"
                )
            array = frame.iloc[:, 0].to_numpy()
        else:
            array = np.asarray(y.to_numpy())
    else:
        array = np.asarray(y)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array.ravel()
    if array.ndim != 1:
        raise InvalidArgumentError(f"y must be one target per row, got shape {array.shape}")
    return array


def split_target(X: Any, column: str, name: str = "y") -> tuple[Any, Any]:
    """Take column ``column`` out of frame ``X``: (the other columns, that column).

    ``name`` is what the caller calls the argument that named the column, for errors.
    """
    if not is_frame(X):
        raise InvalidArgumentError(
            f"{name}={column!r} names a column, but its table is a {type(X).__name__}, "
            "not a DataFrame"
        )
    frame = features(X)
    if column not in frame.columns:
        shown = ", ".join(map(str, list(frame.columns)[:20]))
        raise InvalidArgumentError(
            f"{name}={column!r} is not a column of its table (columns: {shown})"
        )
    return frame.drop(columns=[column]), frame[column]


def rows(X: Any) -> int:
    return int(X.shape[0])


def head(X: Any, n: int) -> Any:
    """The first ``n`` rows, keeping the kind of table (a pandas frame stays one)."""
    if _root(X) == "pandas":
        return X.iloc[:n]
    return X[:n]
