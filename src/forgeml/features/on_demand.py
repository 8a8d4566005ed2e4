"""On-demand features: one function, run on whole training frames and on single requests."""

from __future__ import annotations

from typing import TYPE_CHECKING

from forgeml.errors import DataSourceError, InvalidArgumentError
from forgeml.features.registry import ViewVersion

if TYPE_CHECKING:
    import pyarrow as pa


def compute_on_demand(
    version: ViewVersion,
    table: pa.Table,
    output_names: dict[tuple[str, str], str],
    where: str,
) -> pa.Table:
    """The view's features for every row of ``table``, as a table with one column each.

    The transform sees its request fields under their own names and each source
    feature under its feature name, whatever the frame calls it.
    """
    import pyarrow as pa

    from forgeml.features.offline import _to_arrow

    definition = version.definition
    label = f"{where}: on-demand view {version.ref}"
    columns: dict[str, pa.ChunkedArray | pa.Array] = {}
    for field in definition["request_fields"]:
        if field not in table.column_names:
            raise InvalidArgumentError(
                f"{label} needs the request field {field!r}, which is missing "
                f"(have: {', '.join(c for c in table.column_names if not c.startswith('__fm_'))})"
            )
        columns[field] = table.column(field)
    for ref in definition["sources"]:
        view, _, feature = ref.partition(":")
        columns[feature] = table.column(output_names[(view, feature)])
    inputs = pa.table(columns) if columns else pa.table({"__fm_rows": [None] * table.num_rows})
    transform = version.transform()
    assert transform is not None  # on-demand views always have one
    if transform.format == "arrow":
        argument: object = inputs
    elif transform.format == "polars":
        import polars as pl

        argument = pl.from_arrow(inputs)
    else:
        argument = inputs.to_pandas()
    try:
        output = transform.function(argument)
    except Exception as exc:
        raise DataSourceError(f"{label}: the transform raised {type(exc).__name__}: {exc}") from exc
    result = _to_arrow(output, f"{label}: the transform")
    if result.num_rows != table.num_rows:
        raise DataSourceError(
            f"{label}: the transform returned {result.num_rows} rows for {table.num_rows} inputs"
        )
    missing = [f for f in definition["features"] if f not in result.column_names]
    if missing:
        raise DataSourceError(
            f"{label}: the transform's result has no column {missing[0]!r} "
            f"(it returned {', '.join(result.column_names)})"
        )
    return result.select(list(definition["features"]))
