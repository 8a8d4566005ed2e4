"""A model loaded for serving: verified bytes, its signature, and one way to call it.

Loading goes through the registry, which checks every file's sha256 before a flavor
reads it, and ends with a warm-up call on a row made from the signature: a model that
cannot answer is found before the server says it is ready, not on the first request.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from forgeml.errors import ForgeMLError, ServingError
from forgeml.serving.inputs import InputSchema, Rows

log = logging.getLogger("forgeml.serving")


@dataclass(frozen=True)
class ResolvedModel:
    """Which bytes a models:/ URI meant when it was resolved."""

    uri: str
    name: str
    version: int
    digest: str

    @property
    def label(self) -> str:
        return f"{self.name}/{self.version}"


def resolve(uri: str) -> ResolvedModel:
    """Ask the registry which version ``uri`` names now (aliases move)."""
    from forgeml.registry.api import get_model_version

    version = get_model_version(uri)
    return ResolvedModel(uri, version.model, version.version, version.manifest_digest)


class LoadedModel:
    """One model version in memory, called with validated rows, answering JSON-ready values."""

    def __init__(self, resolved: ResolvedModel, method: str = "predict") -> None:
        from forgeml import backend, config
        from forgeml.registry import bundle
        from forgeml.registry.flavors import get_flavor

        self.resolved = resolved
        self.method = method
        try:
            directory, manifest = bundle.materialize(
                backend.artifact_store(), resolved.digest, config.settings().cache_dir
            )
            self.flavor = get_flavor(manifest["flavor"])
            self.model = self.flavor.load(directory, manifest["flavor_options"])
        except ForgeMLError as exc:
            raise ServingError(f"model {resolved.label} cannot be loaded: {exc}") from exc
        self.manifest = manifest
        self.signature: dict[str, Any] = manifest.get("signature") or {}
        self.inputs = InputSchema(self.signature.get("inputs"))
        if method == "predict_proba" and not hasattr(self.model, "predict_proba"):
            raise ServingError(
                f"model {resolved.label} ({type(self.model).__name__}) has no predict_proba"
            )

    @property
    def label(self) -> str:
        return self.resolved.label

    def predict(self, parts: Sequence[Rows]) -> list[list[Any]]:
        """Answers for a micro-batch: one list of per-row outputs per part, in order."""
        features = self.inputs.model_input(parts)
        if self.method == "predict_proba":
            output = self.model.predict_proba(features)
        else:
            output = self.flavor.predict(self.model, features)
        values = _to_list(output)
        total = sum(p.count for p in parts)
        if len(values) != total:
            raise ServingError(
                f"model {self.label} returned {len(values)} answers for {total} rows"
            )
        answers: list[list[Any]] = []
        start = 0
        for part in parts:
            answers.append(values[start : start + part.count])
            start += part.count
        return answers

    def warm_up(self) -> None:
        """Call the model once on a made-up row of the right types."""
        row = example_rows(self.inputs)
        if row is None:
            return
        try:
            self.predict([row])
        except Exception as exc:
            raise ServingError(f"model {self.label} fails on a warm-up row: {exc}") from exc


def example_rows(schema: InputSchema) -> Rows | None:
    """One row of zeros, empty strings and false values shaped like the signature."""
    if schema.kind == "columns":
        values: dict[str, list[Any]] = {}
        for column in schema.columns:
            if column.family in ("string", "category"):
                values[column.name] = [""]
            elif column.family == "bool":
                values[column.name] = [False]
            elif column.family == "datetime" or column.family == "int":
                values[column.name] = [0]
            else:
                values[column.name] = [0.0]
        return Rows(1, columns=values)
    if schema.kind == "tensor":
        shape = [1, *[d if isinstance(d, int) and d > 0 else 1 for d in schema.tensor_shape[1:]]]
        return Rows(1, tensor=np.zeros(shape, dtype=schema.tensor_dtype or "float32"))
    return None


def _to_list(output: Any) -> list[Any]:
    if hasattr(output, "to_numpy"):
        output = output.to_numpy()
    if isinstance(output, np.ndarray):
        return list(output.tolist())
    if isinstance(output, list | tuple):
        return list(output)
    raise ServingError(f"cannot turn a {type(output).__name__} answer into JSON")
