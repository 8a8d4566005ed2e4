"""What steps hand each other: values stored by content, described by small JSON records.

A step's return value is stored once in the artifact store and described by a record
``{"kind": ..., "digest": ...}`` that goes into the metadata store and into the cache
keys of the steps that read it. The digest is of the stored bytes, so two runs that
produce the same table produce the same digest and downstream steps stay cached.

Kinds: ``json`` (plain values, kept inline when small), ``table`` (pandas, polars or
Arrow, as Parquet), ``ndarray`` (numpy, as .npy), ``dataset`` (a forgeml Dataset, by
name and version) and ``object`` (anything else, pickled; read back only through the
artifact store, which checks the bytes against their sha256 first).
"""

from __future__ import annotations

import hashlib
import io
import pickle
from typing import Any

import orjson

from forgeml import backend
from forgeml.errors import PipelineError

Stored = dict[str, Any]
_INLINE_BYTES = 64 * 1024  # JSON values up to this size live in the record itself


def store(value: Any) -> Stored:
    """Put ``value`` in the artifact store (or inline) and describe it."""
    json_bytes = _as_json(value)
    if json_bytes is not None:
        digest = hashlib.sha256(json_bytes).hexdigest()
        if len(json_bytes) <= _INLINE_BYTES:
            return {"kind": "json", "digest": digest, "value": orjson.loads(json_bytes)}
        blob = backend.artifact_store().put_bytes(json_bytes)
        return {"kind": "json", "digest": blob.digest, "size": blob.size}
    module = type(value).__module__.split(".")[0]
    if module in ("pandas", "polars", "pyarrow") and _is_table(value):
        return _store_table(value, module)
    if module == "numpy" and type(value).__name__ == "ndarray":
        return _store_ndarray(value)
    if type(value).__name__ == "Dataset" and type(value).__module__ == "forgeml.data.dataset":
        return {
            "kind": "dataset",
            "digest": value.digest,
            "name": value.name,
            "version": value.version,
        }
    try:
        data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise PipelineError(
            f"cannot store a {type(value).__name__} returned by a step: {exc}"
        ) from exc
    blob = backend.artifact_store().put_bytes(data)
    return {
        "kind": "object",
        "digest": blob.digest,
        "size": blob.size,
        "type": f"{type(value).__module__}.{type(value).__qualname__}",
    }


def load(stored: Stored) -> Any:
    """The value a record describes (verified against its digest when read from storage)."""
    kind = stored["kind"]
    if kind == "json":
        if "value" in stored:
            return stored["value"]
        return orjson.loads(backend.artifact_store().read_bytes(stored["digest"]))
    if kind == "table":
        return _load_table(stored)
    if kind == "ndarray":
        import numpy as np

        data = backend.artifact_store().read_bytes(stored["digest"])
        return np.load(io.BytesIO(data), allow_pickle=False)
    if kind == "dataset":
        from forgeml.data.dataset import Dataset

        return Dataset.get(stored["name"], stored["version"])
    if kind == "object":
        # The bytes are read through the store, which refuses them unless their sha256
        # is the digest this record (from the metadata store) names.
        return pickle.loads(backend.artifact_store().read_bytes(stored["digest"]))
    raise PipelineError(f"unknown kind of stored value {kind!r}")


def available(stored: Stored) -> bool:
    """Whether the bytes a record names are still in the artifact store."""
    if stored["kind"] == "dataset":
        return True
    if stored["kind"] == "json" and "value" in stored:
        return True
    return backend.artifact_store().exists(stored["digest"])


def describe(stored: Stored) -> str:
    """A short human description: ``table 1,000 x 5``, ``json 42``, ``object Model``."""
    kind = stored["kind"]
    if kind == "json":
        if "value" in stored:
            text = orjson.dumps(stored["value"]).decode()
            return "json " + (text if len(text) <= 40 else text[:37] + "...")
        return f"json ({stored.get('size', 0):,} bytes)"
    if kind == "table":
        return f"table {stored['rows']:,} x {len(stored['columns'])} ({stored['format']})"
    if kind == "ndarray":
        return f"ndarray {stored['dtype']} {tuple(stored['shape'])}"
    if kind == "dataset":
        return f"dataset {stored['name']} v{stored['version']}"
    return f"object {stored.get('type', '?')}"


def _as_json(value: Any) -> bytes | None:
    """Canonical JSON (sorted keys) for plain values; None for anything else."""
    if not _plain(value, 0):
        return None
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return None


def _plain(value: Any, depth: int) -> bool:
    if depth > 50:
        return False
    if value is None or type(value) in (bool, int, str):
        return True
    if type(value) is float:
        return value == value and value not in (float("inf"), float("-inf"))
    if type(value) in (list, tuple):
        return all(_plain(v, depth + 1) for v in value)
    if type(value) is dict:
        return all(type(k) is str and _plain(v, depth + 1) for k, v in value.items())
    return False


def _is_table(value: Any) -> bool:
    name = type(value).__name__
    return name in ("DataFrame", "Table", "RecordBatch")


def _store_table(value: Any, module: str) -> Stored:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if module == "pandas":
        table = pa.Table.from_pandas(value, preserve_index=_keeps_index(value))
        fmt = "pandas"
    elif module == "polars":
        table = value.to_arrow()
        fmt = "polars"
    else:
        table = value if isinstance(value, pa.Table) else pa.Table.from_batches([value])
        fmt = "arrow"
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    blob = backend.artifact_store().put_bytes(sink.getvalue())
    return {
        "kind": "table",
        "digest": blob.digest,
        "size": blob.size,
        "format": fmt,
        "rows": table.num_rows,
        "columns": table.column_names,
    }


def _keeps_index(frame: Any) -> bool:
    """A default RangeIndex carries nothing; any other index is data worth keeping."""
    import pandas as pd

    index = frame.index
    return not (
        isinstance(index, pd.RangeIndex)
        and index.start == 0
        and index.step == 1
        and index.name is None
    )


def _load_table(stored: Stored) -> Any:
    import pyarrow.parquet as pq

    data = backend.artifact_store().read_bytes(stored["digest"])
    table = pq.read_table(io.BytesIO(data))
    if stored["format"] == "pandas":
        return table.to_pandas()
    if stored["format"] == "polars":
        import polars as pl

        return pl.from_arrow(table)
    return table


def _store_ndarray(value: Any) -> Stored:
    import numpy as np

    if value.dtype == object:
        raise PipelineError("cannot store a numpy array of Python objects returned by a step")
    sink = io.BytesIO()
    np.save(sink, value, allow_pickle=False)
    blob = backend.artifact_store().put_bytes(sink.getvalue())
    return {
        "kind": "ndarray",
        "digest": blob.digest,
        "size": blob.size,
        "dtype": str(value.dtype),
        "shape": list(value.shape),
    }
