"""The content-addressed store: atomic writes, verified reads, streaming, remote backends."""

from __future__ import annotations

import hashlib
import os
import socket
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from forgeml.artifacts import ArtifactStore
from forgeml.errors import (
    ArtifactCorruptedError,
    ArtifactError,
    ArtifactNotFoundError,
    InvalidArgumentError,
)


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(str(tmp_path / "artifacts"))


def stored_path(store: ArtifactStore, digest: str) -> Path:
    return Path(store.location(digest))


def test_round_trip_and_deduplication(store: ArtifactStore, tmp_path: Path) -> None:
    blob = store.put_bytes(b"hello")
    assert blob.digest == hashlib.sha256(b"hello").hexdigest()
    assert blob.size == 5
    assert store.read_bytes(blob.digest) == b"hello"
    source = tmp_path / "hello.txt"
    source.write_bytes(b"hello")
    assert store.put_file(source) == blob
    files = [p for p in (tmp_path / "artifacts" / "sha256").rglob("*") if p.is_file()]
    assert files == [stored_path(store, blob.digest)]
    assert not os.access(files[0], os.W_OK) or os.geteuid() == 0
    assert list((tmp_path / "artifacts" / ".tmp").iterdir()) == []


def test_get_file_and_open_give_verified_copies(store: ArtifactStore, tmp_path: Path) -> None:
    blob = store.put_bytes(b"x" * 1000)
    target = store.get_file(blob.digest, tmp_path / "out" / "copy.bin")
    assert target.read_bytes() == b"x" * 1000
    with store.open(blob.digest) as handle:
        assert handle.read() == b"x" * 1000


@pytest.mark.parametrize("damage", ["flip", "truncate", "append"])
def test_damaged_artifacts_are_reported_and_never_handed_out(
    store: ArtifactStore, tmp_path: Path, damage: str
) -> None:
    blob = store.put_bytes(b"model weights " * 10_000)
    path = stored_path(store, blob.digest)
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[100] ^= 0xFF
    elif damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data += b"!"
    path.write_bytes(bytes(data))
    with pytest.raises(
        ArtifactCorruptedError, match=f"artifact {blob.digest[:12]} .* is corrupted"
    ):
        store.read_bytes(blob.digest)
    destination = tmp_path / "loaded.bin"
    with pytest.raises(ArtifactCorruptedError):
        store.get_file(blob.digest, destination)
    assert not destination.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".partial")] == []
    # Writing the same content again heals the stored copy.
    store.put_bytes(b"model weights " * 10_000)
    assert store.verify(blob.digest) == blob.size


def test_missing_and_malformed_digests(store: ArtifactStore) -> None:
    with pytest.raises(ArtifactNotFoundError):
        store.read_bytes("0" * 64)
    with pytest.raises(InvalidArgumentError, match="not a sha256 digest"):
        store.read_bytes("../../etc/passwd")
    with pytest.raises(ArtifactError, match="cannot read"):
        store.put_file("/no/such/file")


def test_a_failed_write_leaves_nothing_visible(store: ArtifactStore, tmp_path: Path) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"partial data"
        raise OSError("disk went away")

    with pytest.raises(OSError, match="disk went away"):
        store.put_stream(chunks())
    assert list((tmp_path / "artifacts" / ".tmp").iterdir()) == []
    assert not (tmp_path / "artifacts" / "sha256").exists() or not any(
        p.is_file() for p in (tmp_path / "artifacts" / "sha256").rglob("*")
    )


def test_large_files_stream_through_a_fixed_buffer(store: ArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    block = os.urandom(1 << 20)
    with open(source, "wb") as handle:
        for _ in range(64):
            handle.write(block)
    tracemalloc.start()
    try:
        blob = store.put_file(source)
        store.verify(blob.digest)
        store.get_file(blob.digest, tmp_path / "copy.bin")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert blob.size == 64 << 20
    assert peak < 8 << 20, f"peak Python allocation {peak} bytes for a 64 MiB file"


def test_memory_filesystem_backend() -> None:
    store = ArtifactStore("memory://forgeml-test-artifacts")
    blob = store.put_bytes(b"in memory")
    assert store.exists(blob.digest)
    assert store.read_bytes(blob.digest) == b"in memory"
    assert store.location(blob.digest).startswith("memory://")


@pytest.fixture
def s3_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A local S3-compatible endpoint (moto's server), reached over HTTP by s3fs."""
    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    for key, value in {
        "AWS_ACCESS_KEY_ID": "forgeml",
        "AWS_SECRET_ACCESS_KEY": "forgeml-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
    }.items():
        monkeypatch.setenv(key, value)
    import boto3

    boto3.client("s3").create_bucket(Bucket="models")
    try:
        yield endpoint
    finally:
        server.stop()


def test_s3_backend_over_http(s3_endpoint: str, tmp_path: Path) -> None:
    store = ArtifactStore("s3://models/forgeml")
    source = tmp_path / "weights.bin"
    source.write_bytes(os.urandom(3 << 20))
    blob = store.put_file(source)
    assert store.exists(blob.digest)
    assert (
        store.location(blob.digest)
        == f"s3://models/forgeml/sha256/{blob.digest[:2]}/{blob.digest[2:4]}/{blob.digest}"
    )
    copy = store.get_file(blob.digest, tmp_path / "copy.bin")
    assert copy.read_bytes() == source.read_bytes()
    import boto3

    key = f"forgeml/sha256/{blob.digest[:2]}/{blob.digest[2:4]}/{blob.digest}"
    boto3.client("s3").put_object(Bucket="models", Key=key, Body=b"tampered")
    with pytest.raises(ArtifactCorruptedError):
        ArtifactStore("s3://models/forgeml").read_bytes(blob.digest)
