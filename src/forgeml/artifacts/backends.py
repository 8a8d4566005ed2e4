"""Byte storage under the content-addressed store: where finished files go, nothing more.

Two backends share one small interface. The local one writes through a temporary file,
fsync and rename, so a reader (or a crash) never sees half a file. The fsspec one
spools to a local temporary file first (the digest is only known at the end) and then
uploads it in one piece: object stores (S3, GCS, Azure) publish an object only when its
upload completes; other filesystems get a temporary name and a move.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Protocol

from forgeml.errors import ArtifactError, ArtifactNotFoundError

_ATOMIC_PUT_PROTOCOLS = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "memory"}


class ByteBackend(Protocol):
    """Where committed blobs live, addressed by relative key (``sha256/ab/cd/abcd...``)."""

    location: str

    def exists(self, key: str) -> bool:
        """True if a committed blob is stored under ``key``."""

    def open_read(self, key: str) -> IO[bytes]:
        """Open a committed blob; raises ArtifactNotFoundError if there is none."""

    def commit(self, local_path: Path, key: str) -> None:
        """Publish a finished local file under ``key`` atomically; consumes ``local_path``."""

    def describe(self, key: str) -> str:
        """Where ``key`` lives, for messages."""

    def spool_dir(self) -> Path:
        """A local directory for temporary files (same filesystem as blobs when local)."""


class LocalBackend:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.location = str(root)
        self._tmp = root / ".tmp"
        try:
            self._tmp.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ArtifactError(
                f"cannot create the artifact store at {root}: {exc.strerror}"
            ) from None

    def exists(self, key: str) -> bool:
        return (self.root / key).is_file()

    def open_read(self, key: str) -> IO[bytes]:
        try:
            return open(self.root / key, "rb")
        except FileNotFoundError:
            raise ArtifactNotFoundError(f"no artifact stored at {self.root / key}") from None

    def commit(self, local_path: Path, key: str) -> None:
        final = self.root / key
        final.parent.mkdir(parents=True, exist_ok=True)
        # Replacing an existing blob is harmless (same content) and heals a damaged copy.
        os.chmod(local_path, 0o444)
        os.replace(local_path, final)
        _fsync_directory(final.parent)

    def describe(self, key: str) -> str:
        return str(self.root / key)

    def spool_dir(self) -> Path:
        return self._tmp


class FsspecBackend:
    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        import fsspec

        self.location = url
        self.fs, self.root = fsspec.core.url_to_fs(url, **(storage_options or {}))
        protocol = self.fs.protocol
        self._protocol = protocol if isinstance(protocol, str) else protocol[0]
        self._spool = Path(os.environ.get("TMPDIR", "/tmp")) / "forgeml-spool"
        self._spool.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> str:
        return f"{self.root.rstrip('/')}/{key}"

    def exists(self, key: str) -> bool:
        try:
            return bool(self.fs.isfile(self._path(key)))
        except OSError as exc:
            raise ArtifactError(f"cannot reach {self.describe(key)}: {exc}") from None

    def open_read(self, key: str) -> IO[bytes]:
        try:
            return self.fs.open(self._path(key), "rb")  # type: ignore[no-any-return]
        except FileNotFoundError:
            raise ArtifactNotFoundError(f"no artifact stored at {self.describe(key)}") from None

    def commit(self, local_path: Path, key: str) -> None:
        target = self._path(key)
        try:
            if self.exists(key):
                return
            if self._protocol in _ATOMIC_PUT_PROTOCOLS:
                self.fs.put_file(str(local_path), target)
            else:
                staging = self._path(f".tmp/{uuid.uuid4().hex}")
                self.fs.put_file(str(local_path), staging)
                self.fs.mv(staging, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                local_path.unlink()

    def describe(self, key: str) -> str:
        return f"{self._protocol}://{self._path(key).removeprefix(self._protocol + '://')}"

    def spool_dir(self) -> Path:
        return self._spool


def _fsync_directory(path: Path) -> None:
    """Make a rename durable: the directory entry must reach the disk too."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_backend(url: str) -> ByteBackend:
    """A backend for a local path or an fsspec URL (settings have normalised it already)."""
    if "://" not in url:
        return LocalBackend(Path(url))
    return FsspecBackend(url)


def iter_file(handle: IO[bytes], chunk_size: int) -> Iterator[bytes]:
    while chunk := handle.read(chunk_size):
        yield chunk
