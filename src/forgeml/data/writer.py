"""Write a record-batch stream to one Parquet file whose bytes depend only on the rows.

Row groups always hold ``ROW_GROUP_ROWS`` rows (the last one fewer), whatever batch
sizes the source produced, so the same rows read from a CSV file today or tomorrow give
the same file, the same sha256 and therefore the same dataset version. Only one row
group is held in memory at a time.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

ROW_GROUP_ROWS = 131_072
COMPRESSION = "zstd"


@dataclass(frozen=True)
class Written:
    path: Path
    rows: int
    schema: pa.Schema


def write_parquet(
    reader: pa.RecordBatchReader,
    directory: Path,
    on_rows: Callable[[int], None] | None = None,
) -> Written:
    """Stream ``reader`` into a new Parquet file in ``directory``; nothing is left on error."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    fd, name = tempfile.mkstemp(prefix="dataset-", suffix=".parquet", dir=directory)
    os.close(fd)
    path = Path(name)
    rows = 0
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    try:
        schema = reader.schema
        with pq.ParquetWriter(
            path, schema, compression=COMPRESSION, write_statistics=True, store_schema=True
        ) as writer:

            def flush(count: int) -> None:
                nonlocal pending, pending_rows
                table = pa.Table.from_batches(pending, schema=schema)
                writer.write_table(table.slice(0, count), row_group_size=ROW_GROUP_ROWS)
                rest = table.slice(count)
                pending = rest.to_batches() if rest.num_rows else []
                pending_rows = rest.num_rows

            for batch in reader:
                if batch.num_rows == 0:
                    continue
                pending.append(batch)
                pending_rows += batch.num_rows
                rows += batch.num_rows
                while pending_rows >= ROW_GROUP_ROWS:
                    flush(ROW_GROUP_ROWS)
                if on_rows is not None:
                    on_rows(rows)
            if pending_rows:
                flush(pending_rows)
        return Written(path, rows, schema)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        raise
