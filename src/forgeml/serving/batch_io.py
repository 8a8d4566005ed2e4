"""Where batch scoring reads rows from and writes answers to.

Input is a Parquet file, a directory or glob of Parquet files, a CSV file, or a stored
dataset version (``datasets:/NAME`` or ``datasets:/NAME/VERSION``), always read through
``pyarrow.dataset`` in chunks of a fixed number of rows with little read-ahead, so
memory stays the size of a few chunks whatever the size of the table.

Output is one Parquet file written chunk by chunk to a temporary file beside the target
and renamed over it only once every row is written: a failure part-way leaves no
partial file and whatever was at the target before, untouched.
"""

from __future__ import annotations

import glob
import os
import re
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forgeml.errors import DataSourceError, InvalidArgumentError

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.dataset as pads
    import pyarrow.parquet as pq

_DATASET_URI = re.compile(r"^datasets:/(?P<name>[^/@]+)(?:[/@](?P<version>\d+))?/?$")
_GLOB_CHARS = set("*?[")
_CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".tsv")


@dataclass
class BatchInput:
    """An opened input: its Arrow schema, its size when the files say it, and its rows."""

    description: str  # what the input is, for messages, metadata and lineage
    dataset: pads.Dataset
    total_rows: int | None
    dataset_version: tuple[str, int] | None = None  # (name, version) of a stored dataset

    @property
    def schema(self) -> pa.Schema:
        return self.dataset.schema

    def chunks(self, columns: Sequence[str], chunk_rows: int) -> Iterator[pa.Table]:
        """Tables of exactly ``chunk_rows`` rows (the last may be shorter), in file order.

        Files cut batches at row-group boundaries; small batches are joined (zero-copy,
        as chunks of one table) so the model is called on full chunks.
        """
        import pyarrow as pa

        schema = pa.schema([self.schema.field(name) for name in columns])
        pending: list[pa.RecordBatch] = []
        held = 0
        for batch in self._batches(schema, min(chunk_rows, 1 << 20)):
            while batch.num_rows:
                take = min(batch.num_rows, chunk_rows - held)
                pending.append(batch.slice(0, take))
                held += take
                batch = batch.slice(take)
                if held == chunk_rows:
                    yield pa.Table.from_batches(pending, schema)
                    pending, held = [], 0
        if held:
            yield pa.Table.from_batches(pending, schema)

    def _batches(self, schema: pa.Schema, batch_size: int) -> Iterator[pa.RecordBatch]:
        """Each file's batches, read only as fast as they are taken.

        The dataset scanner reads ahead without bound while the model is slower than
        the disk (half a gigabyte and growing on a 3 GB file), so files are read here
        one batch at a time, in the dataset's types, with its partition columns added.
        """
        import pyarrow as pa
        import pyarrow.dataset as pads

        for fragment in self.dataset.get_fragments():
            keys = pads.get_partition_keys(fragment.partition_expression) or {}
            stored = [name for name in schema.names if name not in keys]
            try:
                for batch in self._file_batches(fragment.path, stored, batch_size):
                    arrays = [
                        batch.column(name)
                        if name not in keys
                        else pa.repeat(
                            pa.scalar(keys[name], schema.field(name).type), batch.num_rows
                        )
                        for name in schema.names
                    ]
                    batch = pa.RecordBatch.from_arrays(arrays, names=schema.names)
                    yield batch if batch.schema.equals(schema) else batch.cast(schema)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
                raise DataSourceError(f"cannot read {fragment.path}: {exc}") from None

    def _file_batches(
        self, path: str, columns: list[str], batch_size: int
    ) -> Iterator[pa.RecordBatch]:
        import pyarrow.csv as pacsv
        import pyarrow.dataset as pads
        import pyarrow.parquet as pq

        file_format = self.dataset.format
        if isinstance(file_format, pads.CsvFileFormat):
            types = {name: self.schema.field(name).type for name in self.schema.names}
            reader = pacsv.open_csv(
                path,
                read_options=file_format.default_fragment_scan_options.read_options,
                parse_options=file_format.parse_options,
                convert_options=pacsv.ConvertOptions(column_types=types, include_columns=columns),
            )
            yield from reader
            return
        # Pre-buffering holds every column chunk read until the file is closed.
        with pq.ParquetFile(path, pre_buffer=False, filesystem=self.dataset.filesystem) as file:
            yield from file.iter_batches(batch_size=batch_size, columns=columns, use_threads=True)

    def parts(self, chunk_rows: int) -> list[FilePart] | None:
        """Whole row groups of about ``chunk_rows`` rows, for workers that read for
        themselves; None where only this process can read the input (CSV, partitions)."""
        import pyarrow.dataset as pads

        if not isinstance(self.dataset.format, pads.ParquetFileFormat):
            return None
        parts: list[FilePart] = []
        offset = 0
        for fragment in self.dataset.get_fragments():
            if pads.get_partition_keys(fragment.partition_expression):
                return None
            groups: list[int] = []
            rows = 0
            metadata = fragment.metadata
            for index in range(metadata.num_row_groups):
                groups.append(index)
                rows += metadata.row_group(index).num_rows
                if rows >= chunk_rows or index == metadata.num_row_groups - 1:
                    parts.append(FilePart(fragment.path, tuple(groups), offset, rows))
                    offset += rows
                    groups, rows = [], 0
        return parts


@dataclass(frozen=True)
class FilePart:
    """Row groups of one Parquet file; ``offset`` is the input row its first row is."""

    path: str
    row_groups: tuple[int, ...]
    offset: int
    rows: int

    def batches(self, schema: pa.Schema, batch_size: int) -> Iterator[pa.RecordBatch]:
        """The part's rows in ``schema``'s columns and types, ``batch_size`` at a time."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            with pq.ParquetFile(self.path, pre_buffer=False) as file:
                for batch in file.iter_batches(
                    batch_size=batch_size,
                    row_groups=list(self.row_groups),
                    columns=schema.names,
                    use_threads=True,
                ):
                    arrays = [batch.column(name) for name in schema.names]
                    batch = pa.RecordBatch.from_arrays(arrays, names=schema.names)
                    yield batch if batch.schema.equals(schema) else batch.cast(schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            raise DataSourceError(f"cannot read {self.path}: {exc}") from None


def open_input(source: str | os.PathLike[str]) -> BatchInput:
    """Open ``source`` for reading; DataSourceError names the file that cannot be read."""
    text = str(source)
    match = _DATASET_URI.match(text)
    if match:
        return _open_dataset_version(match.group("name"), match.group("version"))
    if text.startswith("datasets:"):
        raise InvalidArgumentError(
            f"{text!r} is not a dataset URI: use datasets:/NAME or datasets:/NAME/VERSION"
        )
    if "://" in text:
        raise InvalidArgumentError(
            f"input {text!r}: batch scoring reads local files (a Parquet file, directory or "
            "glob, a CSV file) or datasets:/NAME[/VERSION]"
        )
    if _GLOB_CHARS & set(text):
        files = sorted(p for p in glob.glob(text, recursive=True) if Path(p).is_file())  # noqa: PTH207
        if not files:
            raise DataSourceError(f"input {text}: no file matches this pattern")
        return _open_files(text, files)
    path = Path(text)
    if path.is_dir():
        return _open_files(str(path.resolve()), [str(path)], directory=True)
    if not path.exists():
        raise DataSourceError(f"input {path}: no such file or directory")
    return _open_files(str(path.resolve()), [str(path)])


def _open_dataset_version(name: str, version: str | None) -> BatchInput:
    from forgeml.data.dataset import Dataset

    stored = Dataset.get(name, int(version) if version else None)
    opened = _open_files(stored.uri, [str(stored.path())])
    opened.dataset_version = (stored.name, stored.version)
    return opened


def _open_files(description: str, paths: list[str], directory: bool = False) -> BatchInput:
    import pyarrow as pa
    import pyarrow.dataset as pads

    csv = [p for p in paths if p.lower().endswith(_CSV_SUFFIXES)]
    if csv and len(csv) != len(paths):
        raise DataSourceError(f"input {description}: mixes CSV and Parquet files; use one format")
    target: str | list[str] = paths[0] if len(paths) == 1 else paths
    try:
        if csv:
            dataset = pads.dataset(target, format=_csv_format(csv[0]))
        else:
            # A directory's key=value sub-directories become columns, as Spark writes them.
            partitioning = "hive" if directory else None
            dataset = pads.dataset(target, format="parquet", partitioning=partitioning)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataSourceError(f"input {description} is not readable as Parquet: {exc}") from None
    if not dataset.files:
        raise DataSourceError(f"input {description}: the directory holds no data files")
    return BatchInput(description, dataset, None if csv else _parquet_rows(dataset, description))


def _csv_format(path: str) -> pads.CsvFileFormat:
    import pyarrow.csv as pacsv
    import pyarrow.dataset as pads

    delimiter = "\t" if path.lower().endswith(".tsv") else ","
    return pads.CsvFileFormat(
        parse_options=pacsv.ParseOptions(delimiter=delimiter),
        read_options=pacsv.ReadOptions(block_size=8 << 20),
    )


def _parquet_rows(dataset: pads.Dataset, description: str) -> int:
    """Rows of every file from its footer, which also proves each file is Parquet."""
    import pyarrow as pa

    total = 0
    for fragment in dataset.get_fragments():
        try:
            total += fragment.metadata.num_rows
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataSourceError(f"input {fragment.path} is not a Parquet file: {exc}") from None
    return total


def fragment_schemas(opened: BatchInput) -> Iterator[tuple[str, pa.Schema]]:
    """Each file's own schema (a file may lack a column the first one has), with the
    columns its directory names (``region=north/``) added."""
    import pyarrow.dataset as pads

    if len(opened.dataset.files) < 2:
        yield opened.description, opened.schema
        return
    for fragment in opened.dataset.get_fragments():
        schema = fragment.physical_schema
        for name in pads.get_partition_keys(fragment.partition_expression) or {}:
            if name not in schema.names:
                schema = schema.append(opened.schema.field(name))
        yield fragment.path, schema


class ParquetOutput:
    """A Parquet file written chunk by chunk, appearing at ``target`` only when complete."""

    def __init__(self, target: str | os.PathLike[str], metadata: Mapping[str, str]) -> None:
        self.target = Path(target).absolute()
        if self.target.is_dir():
            raise InvalidArgumentError(f"output {self.target} is a directory; give a file name")
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.temporary = self.target.with_name(f".{self.target.name}.{uuid.uuid4().hex[:12]}.tmp")
        self.metadata = dict(metadata)
        self.writer: pq.ParquetWriter | None = None
        self.schema: pa.Schema | None = None
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        """Append ``table`` as one row group; later tables are cast to the first's types."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self.writer is None:
            self.schema = table.schema.with_metadata(self.metadata)
            self.writer = pq.ParquetWriter(self.temporary, self.schema, compression="zstd")
        assert self.schema is not None
        if not table.schema.equals(self.schema, check_metadata=False):
            try:
                table = table.cast(self.schema)
            except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError) as exc:
                raise DataSourceError(
                    f"output {self.target}: rows {self.rows + 1:,} on have types "
                    f"({_types(table.schema)}) that differ from the first rows' "
                    f"({_types(self.schema)}): {exc}"
                ) from None
        self.writer.write_table(table, row_group_size=max(table.num_rows, 1))
        self.rows += table.num_rows

    def commit(self, extra: Mapping[str, str] | None = None) -> None:
        """Finish the file and rename it over the target (atomic on one filesystem)."""
        if self.writer is None:
            raise DataSourceError(f"output {self.target}: nothing was written")
        if extra:
            self.writer.add_key_value_metadata(dict(extra))
        self.writer.close()
        with open(self.temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(self.temporary, self.target)

    def abort(self) -> None:
        """Forget everything written: the target keeps what it had."""
        if self.writer is not None:
            try:
                self.writer.close()
            except Exception:  # the file is removed either way
                pass
        self.temporary.unlink(missing_ok=True)


def _types(schema: pa.Schema) -> str:
    return ", ".join(f"{f.name}: {f.type}" for f in schema)


def metadata_text(values: Mapping[str, Any]) -> dict[str, str]:
    """Parquet key-value metadata under a ``forgeml.`` prefix."""
    return {f"forgeml.{k}": str(v) for k, v in values.items() if v is not None}
