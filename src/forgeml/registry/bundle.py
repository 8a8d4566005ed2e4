"""Model bundles: a flavor's files plus a manifest, all content-addressed.

The manifest (JSON) lists every file with its sha256 and size, the flavor and its
options, the signature and the package versions the model was saved with. The
registry stores the manifest's own digest, so one hash pins the whole bundle: loading
checks the manifest against the registry, each file against the manifest, and only
then lets a flavor read anything.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson

from forgeml.artifacts import ArtifactStore, file_digest
from forgeml.errors import ArtifactCorruptedError, ModelFlavorError
from forgeml.registry.flavors import get_flavor

FORMAT = "forgeml.model/1"
MANIFEST = "forgeml-model.json"


@dataclass(frozen=True)
class SavedBundle:
    manifest_digest: str
    size: int
    manifest: dict[str, Any]


def _package_versions(names: tuple[str, ...]) -> dict[str, str]:
    versions = {}
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions


def save_bundle(
    store: ArtifactStore,
    model: Any,
    flavor: str,
    options: dict[str, Any],
    signature: dict[str, Any] | None,
) -> SavedBundle:
    """Save ``model`` with its flavor and put every file and the manifest in the store."""
    module = get_flavor(flavor)
    with tempfile.TemporaryDirectory(prefix="forgeml-model-") as scratch:
        directory = Path(scratch)
        flavor_options = module.save(model, directory, options)
        files: dict[str, dict[str, Any]] = {}
        for path in sorted(p for p in directory.rglob("*") if p.is_file()):
            blob = store.put_file(path)
            files[path.relative_to(directory).as_posix()] = {
                "digest": blob.digest,
                "size": blob.size,
            }
    manifest = {
        "format": FORMAT,
        "flavor": flavor,
        "flavor_options": flavor_options,
        "files": files,
        "signature": signature,
        "requirements": _package_versions(module.PACKAGES),
        "python": platform.python_version(),
        "created_at": time.time(),
    }
    body = orjson.dumps(manifest, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)
    blob = store.put_bytes(body)
    size = blob.size + sum(f["size"] for f in files.values())
    return SavedBundle(blob.digest, size, manifest)


def read_manifest(store: ArtifactStore, manifest_digest: str) -> dict[str, Any]:
    """The manifest, checked against the digest the registry holds for it."""
    manifest: dict[str, Any] = orjson.loads(store.read_bytes(manifest_digest))
    if manifest.get("format") != FORMAT:
        raise ModelFlavorError(
            f"model bundle {manifest_digest[:12]} has format {manifest.get('format')!r}; "
            f"this forgeml reads {FORMAT}"
        )
    return manifest


def materialize(
    store: ArtifactStore, manifest_digest: str, cache_dir: Path
) -> tuple[Path, dict[str, Any]]:
    """A local directory holding the verified bundle, reused if already cached and intact.

    Every cached file is hashed again on each call: a copy changed on disk after it was
    cached is detected and fetched anew rather than loaded. Fetches go to a staging
    directory renamed into place, so concurrent loaders never see a half-filled cache.
    """
    manifest = read_manifest(store, manifest_digest)
    files: dict[str, Any] = manifest["files"]
    for relative in files:
        if Path(relative).is_absolute() or ".." in Path(relative).parts:
            raise ArtifactCorruptedError(
                f"model bundle {manifest_digest[:12]} names an unsafe path {relative!r}"
            )
    directory = cache_dir / "models" / manifest_digest
    for _attempt in range(3):
        if _intact(directory, files):
            return directory, manifest
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".fetch-", dir=directory.parent))
        try:
            for relative, entry in files.items():
                store.get_file(entry["digest"], staging / relative)
            (staging / MANIFEST).write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
            try:
                if _intact(directory, files):
                    return directory, manifest  # another loader placed it meanwhile
                if directory.exists():
                    trash = Path(tempfile.mkdtemp(prefix=".old-", dir=directory.parent))
                    with contextlib.suppress(FileNotFoundError):
                        os.replace(directory, trash / "bundle")
                    shutil.rmtree(trash, ignore_errors=True)
                os.replace(staging, directory)
            except OSError:
                continue  # another process put its copy in place first: check that one
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    if _intact(directory, files):
        return directory, manifest
    raise ArtifactCorruptedError(
        f"model bundle {manifest_digest[:12]} could not be placed intact in {directory}"
    )


def _intact(directory: Path, files: dict[str, Any]) -> bool:
    return all(
        (directory / relative).is_file() and file_digest(directory / relative) == entry["digest"]
        for relative, entry in files.items()
    )


def load_bundle(store: ArtifactStore, manifest_digest: str, cache_dir: Path) -> Any:
    directory, manifest = materialize(store, manifest_digest, cache_dir)
    module = get_flavor(manifest["flavor"])
    return module.load(directory, manifest["flavor_options"])
