"""Content-addressed artifact storage (sha256 over a local directory or fsspec)."""

from forgeml.artifacts.store import CHUNK_SIZE, ArtifactStore, Blob, file_digest

__all__ = ["CHUNK_SIZE", "ArtifactStore", "Blob", "file_digest"]
