"""Content-addressed artifact store: bytes are named by their sha256 and checked on read.

Writes stream in chunks (a file of any size passes through a fixed buffer), hash as
they go, and become visible only when complete. Reads hash again and refuse bytes that
no longer match, so a corrupted or truncated artifact is reported and never handed to
a loader.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from forgeml.artifacts.backends import ByteBackend, LocalBackend, iter_file, open_backend
from forgeml.errors import ArtifactCorruptedError, ArtifactError, InvalidArgumentError

CHUNK_SIZE = 1 << 20
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Blob:
    digest: str
    size: int


def _key(digest: str) -> str:
    if not _DIGEST.match(digest):
        raise InvalidArgumentError(f"{digest!r} is not a sha256 digest (64 lowercase hex digits)")
    return f"sha256/{digest[:2]}/{digest[2:4]}/{digest}"


class ArtifactStore:
    """Blobs by sha256 over a local directory or any fsspec filesystem."""

    def __init__(self, url: str, backend: ByteBackend | None = None) -> None:
        self.url = url
        self.backend = backend or open_backend(url)

    # -- writing ------------------------------------------------------------------------
    def put_stream(self, chunks: Iterable[bytes]) -> Blob:
        """Store bytes from an iterable of chunks; visible only once all are written."""
        spool = self.backend.spool_dir()
        fd, temp_name = tempfile.mkstemp(prefix="blob-", dir=spool)
        temp = Path(temp_name)
        hasher = hashlib.sha256()
        size = 0
        try:
            with os.fdopen(fd, "wb") as handle:
                for chunk in chunks:
                    hasher.update(chunk)
                    handle.write(chunk)
                    size += len(chunk)
                handle.flush()
                os.fsync(handle.fileno())
            digest = hasher.hexdigest()
            self.backend.commit(temp, _key(digest))
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
            raise
        return Blob(digest, size)

    def put_file(self, path: str | os.PathLike[str]) -> Blob:
        try:
            with open(path, "rb") as handle:
                return self.put_stream(iter_file(handle, CHUNK_SIZE))
        except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
            raise ArtifactError(f"cannot read {os.fspath(path)}: {exc.strerror}") from None

    def adopt(self, path: str | os.PathLike[str], digest: str | None = None) -> Blob:
        """Store a finished local file by moving it in rather than copying it.

        For large files written just for the store (a dataset's Parquet): one read to
        hash, then a rename on the local backend. The file must live in
        :meth:`scratch_dir` (same filesystem); it is consumed. ``digest``, when the caller
        has just computed it, saves a second read.
        """
        local = Path(path)
        digest = digest or file_digest(local)
        size = local.stat().st_size
        try:
            self.backend.commit(local, _key(digest))
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                local.unlink()
            raise
        return Blob(digest, size)

    def scratch_dir(self) -> Path:
        """Where to write a file meant for :meth:`adopt`."""
        return self.backend.spool_dir()

    def local_path(self, digest: str) -> Path | None:
        """The stored file itself when the backend is a local directory, else None."""
        if isinstance(self.backend, LocalBackend):
            return self.backend.root / _key(digest)
        return None

    def put_bytes(self, data: bytes) -> Blob:
        return self.put_stream([data])

    # -- reading ------------------------------------------------------------------------
    def exists(self, digest: str) -> bool:
        return self.backend.exists(_key(digest))

    def location(self, digest: str) -> str:
        return self.backend.describe(_key(digest))

    def iter_verified(self, digest: str) -> Iterator[bytes]:
        """Yield the blob's chunks; raise ArtifactCorruptedError at the end on a mismatch.

        Consumers that act on bytes before the end must not trust them until the
        iterator is exhausted: use :meth:`read_bytes` or :meth:`get_file` for that.
        """
        key = _key(digest)
        hasher = hashlib.sha256()
        size = 0
        with self.backend.open_read(key) as handle:
            for chunk in iter_file(handle, CHUNK_SIZE):
                hasher.update(chunk)
                size += len(chunk)
                yield chunk
        actual = hasher.hexdigest()
        if actual != digest:
            raise ArtifactCorruptedError(
                f"artifact {digest[:12]} at {self.backend.describe(key)} is corrupted: its "
                f"{size} bytes hash to {actual[:12]}; it was not loaded"
            )

    def verify(self, digest: str) -> int:
        """Read the whole blob and check its hash; returns its size."""
        return sum(len(chunk) for chunk in self.iter_verified(digest))

    def read_bytes(self, digest: str) -> bytes:
        return b"".join(self.iter_verified(digest))

    def get_file(self, digest: str, destination: str | os.PathLike[str]) -> Path:
        """Copy a verified blob to ``destination``, which appears only if the hash matched."""
        target = Path(destination)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(prefix=".partial-", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                for chunk in self.iter_verified(digest):
                    handle.write(chunk)
            os.replace(temp_name, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp_name)
            raise
        return target

    @contextlib.contextmanager
    def open(self, digest: str) -> Iterator[IO[bytes]]:
        """A verified local file handle: the blob is checked in full before it is opened."""
        with tempfile.TemporaryDirectory(prefix="forgeml-") as scratch:
            path = self.get_file(digest, Path(scratch) / digest)
            with open(path, "rb") as handle:
                yield handle


def file_digest(path: str | os.PathLike[str]) -> str:
    """sha256 of a local file, read in chunks."""
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter_file(handle, CHUNK_SIZE):
            hasher.update(chunk)
    return hasher.hexdigest()
