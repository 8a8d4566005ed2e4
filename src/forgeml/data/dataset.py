"""Datasets: named, versioned tables stored as Parquet in the artifact store.

``Dataset.ingest`` streams a source into one Parquet file, profiles it, and registers a
version named by the file's sha256: ingesting the same rows again returns the existing
version. The database row is written last, so a failure at any step registers nothing.
``Dataset.get`` returns a version that reads as Arrow, pandas, polars or a lazy DuckDB
relation, after checking its bytes against the digest.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forgeml import backend, config
from forgeml.data.profiling import profile_relation
from forgeml.data.schema import describe_columns
from forgeml.data.sources import duckdb_connection, open_source
from forgeml.data.writer import write_parquet
from forgeml.errors import DataSourceError, InvalidArgumentError
from forgeml.registry.uri import check_model_name
from forgeml.store.datasets import NewDatasetVersion
from forgeml.store.records import DatasetSummary, DatasetVersionRecord

if TYPE_CHECKING:
    import duckdb
    import pandas as pd
    import polars as pl
    import pyarrow as pa

    from forgeml.data.suite import Suite, ValidationResult

_verified: dict[str, tuple[int, int]] = {}
_verified_lock = threading.Lock()


@dataclass(frozen=True)
class Dataset:
    """One immutable version of a named dataset."""

    record: DatasetVersionRecord

    # -- identity -----------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.record.name

    @property
    def version(self) -> int:
        return self.record.version

    @property
    def digest(self) -> str:
        return self.record.digest

    @property
    def row_count(self) -> int:
        return self.record.row_count

    @property
    def columns(self) -> list[dict[str, Any]]:
        """Per column: name, Arrow type, semantic type and whether it holds nulls."""
        return self.record.columns

    @property
    def source(self) -> dict[str, Any]:
        return self.record.source

    @property
    def profile(self) -> dict[str, Any]:
        if self.record.profile is None:  # pragma: no cover - ingest always profiles
            return compute_profile(self)
        return self.record.profile

    @property
    def uri(self) -> str:
        return f"datasets:/{self.name}/{self.version}"

    def __lineage_node__(self) -> tuple[str, str]:
        return ("dataset_version", f"{self.name}/{self.version}")

    def __repr__(self) -> str:
        return (
            f"<Dataset {self.name} v{self.version}: {self.row_count:,} rows x "
            f"{len(self.columns)} columns, {self.digest[:12]}>"
        )

    # -- creating and finding -----------------------------------------------------------
    @classmethod
    def ingest(
        cls,
        source: Any,
        name: str,
        *,
        description: str | None = None,
        types: Mapping[str, str] | None = None,
        csv: Mapping[str, Any] | None = None,
        on_rows: Callable[[int], None] | None = None,
    ) -> Dataset:
        """Store ``source`` as a version of ``name`` (the existing one if the rows are the same).

        ``source`` is a pandas or polars DataFrame, an Arrow table or stream, a CSV or
        Parquet path (a file, a glob or a directory), or ``fm.data.SQL(query, url)``.
        ``types`` fixes CSV column types (``{"id": "BIGINT"}``); ``csv`` passes reader
        options such as ``{"delim": ";", "header": True}``.
        """
        check_model_name(name)
        store = backend.artifact_store()
        with open_source(source, types=types, csv_options=csv) as opened:
            written = write_parquet(opened.reader, store.scratch_dir(), on_rows)
        if written.rows == 0:
            written.path.unlink(missing_ok=True)
            raise DataSourceError(f"{_where(opened.description)}: no rows to store (empty source)")
        from forgeml.artifacts import file_digest
        from forgeml.tracking.session import current_run

        run = current_run.get()
        try:
            digest = file_digest(written.path)
            existing = backend.datasets().find_digest(name, digest)
            if existing is not None:  # the same rows again: nothing new to store or profile
                written.path.unlink(missing_ok=True)
                dataset = cls(existing)
                if run is not None:
                    from forgeml.lineage_graph import record as record_edge
                    from forgeml.tracking.fluent import flush

                    flush()
                    record_edge(run, dataset, "ingested")
                return dataset
            profile = _profile_file(written.path)
        except BaseException:
            written.path.unlink(missing_ok=True)
            raise
        blob = store.adopt(written.path, digest)
        if run is not None:
            from forgeml.tracking.fluent import flush

            flush()  # the run's row must exist before a version refers to it
        record, created = backend.datasets().add_version(
            name,
            NewDatasetVersion(
                digest=blob.digest,
                size=blob.size,
                row_count=written.rows,
                columns=describe_columns(written.schema, profile),
                source=opened.description,
                profile=profile,
                run_id=run.id if run is not None else None,
                created_by=config.settings().user,
            ),
            description,
        )
        dataset = cls(record)
        if created:  # schedules that wait for new data fire on this event
            backend.events().add(
                "dataset_version", name, {"version": record.version}, record.created_by
            )
        if run is not None:
            from forgeml.lineage_graph import record as record_edge

            record_edge(run, dataset, "produced" if created else "ingested")
        return dataset

    @classmethod
    def get(cls, name: str, version: int | None = None) -> Dataset:
        """A version by number, or the newest. Reading it inside a run records it as an input."""
        return cls(backend.datasets().get_version(name, version))

    @classmethod
    def all(cls) -> list[DatasetSummary]:
        """Every dataset, with its newest version number and how many versions it has."""
        return backend.datasets().list_datasets()

    @classmethod
    def versions(cls, name: str) -> list[Dataset]:
        """Every version of ``name``, newest first."""
        return [cls(record) for record in backend.datasets().list_versions(name)]

    # -- reading ------------------------------------------------------------------------
    def path(self) -> Path:
        """A local Parquet file with this version's bytes, verified against its digest.

        Verification reads the whole file once per process (and again if the file
        changes on disk); remote stores are copied into the local cache first. Every
        way of reading comes through here, so this is where a run's use is recorded.
        """
        _record_use(self)
        store = backend.artifact_store()
        local = store.local_path(self.digest)
        if local is None:
            local = config.settings().cache_dir / "datasets" / f"{self.digest}.parquet"
            if not local.is_file():
                store.get_file(self.digest, local)
                _remember(local, self.digest)
                return local
        if not local.is_file():
            from forgeml.errors import ArtifactNotFoundError

            raise ArtifactNotFoundError(f"the Parquet file of {self.uri} is missing at {local}")
        stat = local.stat()
        with _verified_lock:
            seen = _verified.get(str(local))
        if seen != (stat.st_size, stat.st_mtime_ns):
            _verify_file(local, self.digest, self.uri)
            _remember(local, self.digest)
        return local

    def relation(
        self, connection: duckdb.DuckDBPyConnection | None = None
    ) -> duckdb.DuckDBPyRelation:
        """A lazy DuckDB relation: filters and projections run in DuckDB, not in Python."""
        connection = connection or duckdb_connection()
        return connection.read_parquet(str(self.path()))

    def to_arrow(self, columns: Sequence[str] | None = None) -> pa.Table:
        import pyarrow.parquet as pq

        self._check_columns(columns)
        return pq.read_table(self.path(), columns=list(columns) if columns else None)

    def to_pandas(self, columns: Sequence[str] | None = None) -> pd.DataFrame:
        frame: pd.DataFrame = self.to_arrow(columns).to_pandas()
        return frame

    def to_polars(self, columns: Sequence[str] | None = None) -> pl.DataFrame:
        import polars as pl

        frame = pl.from_arrow(self.to_arrow(columns))
        assert isinstance(frame, pl.DataFrame)
        return frame

    def _check_columns(self, columns: Sequence[str] | None) -> None:
        known = [c["name"] for c in self.columns]
        for column in columns or []:
            if column not in known:
                raise InvalidArgumentError(
                    f"{self.uri} has no column {column!r} (columns: {', '.join(known[:20])})"
                )

    # -- checking -----------------------------------------------------------------------
    def validate(
        self, suite: Suite, reference: Any = None, *, record: bool = True
    ) -> ValidationResult:
        """Run ``suite`` on this version; the result is stored with it unless ``record=False``."""
        result = suite.validate(self, reference=reference)
        if record:
            from forgeml.tracking.session import current_run

            run = current_run.get()
            if run is not None:
                from forgeml.tracking.fluent import flush

                flush()
            backend.datasets().add_validation(
                self.record,
                suite.name,
                result.success,
                result.errors,
                result.warnings,
                result.to_dict(),
                run.id if run is not None else None,
                config.settings().user,
            )
        return result


_used: set[tuple[str, str, int]] = set()


def _record_use(dataset: Dataset) -> None:
    """Inside a run, a read makes the version an input of the run (once per pair)."""
    from forgeml.tracking.session import current_run

    run = current_run.get()
    if run is None or (run.id, dataset.name, dataset.version) in _used:
        return
    from forgeml.lineage_graph import record as record_edge

    record_edge(dataset, run, "used")
    _used.add((run.id, dataset.name, dataset.version))


def _where(description: Mapping[str, Any]) -> str:
    files = description.get("files")
    if files:
        return files[0] if len(files) == 1 else f"{files[0]} (+{len(files) - 1} files)"
    if description.get("kind") == "sql":
        return f"SQL source {description.get('url')}"
    return str(description.get("kind", "source"))


def _profile_file(path: Path) -> dict[str, Any]:
    connection = duckdb_connection()
    try:
        return profile_relation(connection, connection.read_parquet(str(path)))
    finally:
        connection.close()


def compute_profile(dataset: Dataset) -> dict[str, Any]:
    """Profile a stored version again (after the profile format changed, say) and keep it."""
    profile = _profile_file(dataset.path())
    backend.datasets().set_profile(dataset.record.id, profile)
    return profile


def _verify_file(path: Path, digest: str, uri: str) -> None:
    from forgeml.artifacts import file_digest
    from forgeml.errors import ArtifactCorruptedError

    actual = file_digest(path)
    if actual != digest:
        raise ArtifactCorruptedError(
            f"the Parquet file of {uri} at {path} is corrupted: it hashes to {actual[:12]}, "
            f"not {digest[:12]}; it was not read"
        )


def _remember(path: Path, digest: str) -> None:
    with contextlib.suppress(OSError):
        stat = path.stat()
        with _verified_lock:
            _verified[str(path)] = (stat.st_size, stat.st_mtime_ns)
