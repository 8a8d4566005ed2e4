"""Column descriptions: the Arrow type, and what the column means for modelling.

The semantic type (numeric, categorical, datetime, text, identifier) decides which
checks a suggested suite gets and how drift is measured: identifiers get uniqueness
rather than drift, categories get allowed values and chi-square, numbers get ranges
and binned distances.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

SEMANTIC_TYPES = ("numeric", "categorical", "datetime", "text", "identifier")
_ID_NAME = re.compile(r"(^|[_\-\s])(id|uuid|guid|key|code|number|no)$|^id[_\-]|_id_", re.IGNORECASE)
_ISO_DATETIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$"
)


def semantic_type(name: str, arrow_type: pa.DataType, column: dict[str, Any]) -> str:
    """Classify one column from its Arrow type and its profile."""
    import pyarrow as pa

    kind = column.get("kind")
    count = column.get("count") or 0
    distinct = column.get("distinct") or 0
    unique_ratio = distinct / count if count else 0.0
    if kind == "temporal":
        return "datetime"
    if kind == "boolean" or pa.types.is_dictionary(arrow_type):
        return "categorical"
    if kind == "integer":
        if count >= 20 and unique_ratio >= 0.98 and _ID_NAME.search(name):
            return "identifier"
        return "categorical" if distinct <= 2 else "numeric"
    if kind == "float":
        return "numeric"
    if kind == "string":
        top = [str(entry["value"]) for entry in column.get("top", [])[:10]]
        if top and all(_ISO_DATETIME.match(value) for value in top):
            return "datetime"
        mean_length = column.get("mean_length") or 0.0
        if count >= 20 and unique_ratio >= 0.95 and (_ID_NAME.search(name) or mean_length <= 40):
            return "identifier" if mean_length <= 64 else "text"
        if mean_length > 50 or (distinct > 1000 and unique_ratio > 0.5):
            return "text"
        return "categorical"
    return (
        "text"
        if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)
        else "categorical"
    )


def describe_columns(schema: pa.Schema, profile: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per column: name, Arrow type, semantic type, whether nulls occur."""
    columns = profile.get("columns", {})
    described = []
    for field in schema:
        stats = columns.get(field.name, {})
        described.append(
            {
                "name": field.name,
                "type": str(field.type),
                "semantic": semantic_type(field.name, field.type, stats),
                "nullable": bool(stats.get("nulls", 0)),
            }
        )
    return described
