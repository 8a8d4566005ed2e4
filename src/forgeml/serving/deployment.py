"""A deployment as a server holds it: loaded models, their queues and breakers, routing.

A ``LiveDeployment`` never changes after it is built. A change of spec or of the
versions its URIs resolve to builds a new one beside it; the server swaps the two in
one assignment on the event loop, and the old one's queues are closed only after its
last in-flight request has its answer. That is why a swap drops nothing.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from forgeml.serving.batching import MicroBatcher
from forgeml.serving.breaker import CircuitBreaker
from forgeml.serving.inputs import Rows
from forgeml.serving.runtime import LoadedModel, ResolvedModel
from forgeml.serving.spec import DeploymentSpec

log = logging.getLogger("forgeml.serving")


@dataclass
class ModelHandle:
    """One role (champion, challenger, fallback) of one deployment."""

    role: str
    model: LoadedModel
    batcher: MicroBatcher[Rows]
    breaker: CircuitBreaker
    reuse_key: tuple[Any, ...]

    @property
    def resolved(self) -> ResolvedModel:
        return self.model.resolved


@dataclass
class LiveDeployment:
    spec: DeploymentSpec
    revision: int
    handles: dict[str, ModelHandle]
    inflight: int = 0
    _rng: random.Random = field(default_factory=random.Random)

    @property
    def name(self) -> str:
        return self.spec.name

    def route(self, key: str | None) -> str:
        """The arm this request goes to: "champion" or "challenger"."""
        spec = self.spec
        if "challenger" not in self.handles or spec.policy in ("single", "shadow"):
            return "champion"
        if spec.weight <= 0:
            return "champion"
        if spec.policy == "ab" and key is not None:
            return "challenger" if sticky_bucket(spec.name, key) < spec.weight else "champion"
        return "challenger" if self._rng.random() * 100.0 < spec.weight else "champion"

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "revision": self.revision,
            "spec": self.spec.to_dict(),
            "models": {
                role: {
                    "uri": handle.resolved.uri,
                    "model": handle.resolved.name,
                    "version": handle.resolved.version,
                    "digest": handle.resolved.digest,
                    "breaker": handle.breaker.state,
                    "breaker_reason": handle.breaker.reason,
                    "queued_rows": handle.batcher.queued_rows,
                }
                for role, handle in self.handles.items()
            },
        }


def sticky_bucket(deployment: str, key: str) -> float:
    """A stable point in [0, 100) for ``key``: the same key lands in the same arm."""
    digest = hashlib.blake2b(f"{deployment}\x1f{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 10_000 / 100.0


class ModelCache:
    """Loaded models by (bytes, method), shared by deployments and kept across swaps."""

    def __init__(self) -> None:
        self._models: dict[tuple[str, str], LoadedModel] = {}
        self._lock = threading.Lock()

    def get(self, resolved: ResolvedModel, method: str) -> LoadedModel:
        key = (resolved.digest, method)
        with self._lock:
            found = self._models.get(key)
        if found is not None and found.resolved == resolved:
            return found
        model = LoadedModel(resolved, method)
        model.warm_up()
        with self._lock:
            self._models[key] = model
        return model

    def keep_only(self, used: set[tuple[str, str]]) -> None:
        with self._lock:
            for key in [k for k in self._models if k not in used]:
                del self._models[key]


def handle_key(spec: DeploymentSpec, role: str, resolved: ResolvedModel) -> tuple[Any, ...]:
    """What a handle depends on: when unchanged, a new deployment keeps the old handle."""
    return (
        role,
        resolved,
        spec.method,
        spec.max_batch_size,
        spec.max_wait_ms,
        spec.max_queue,
        spec.breaker,
    )


def build_handles(
    spec: DeploymentSpec,
    models: dict[str, LoadedModel],
    previous: LiveDeployment | None,
    on_breaker: Callable[[str, str, str, str, str], None],
    on_batch: Callable[[str, int], None],
) -> dict[str, ModelHandle]:
    """Handles for ``spec``, reusing the previous deployment's where nothing changed."""
    handles: dict[str, ModelHandle] = {}
    for role, model in models.items():
        key = handle_key(spec, role, model.resolved)
        old = previous.handles.get(role) if previous is not None else None
        if old is not None and old.reuse_key == key:
            handles[role] = old
            continue
        label = f"{spec.name}:{role}"

        def batch_done(rows: int, _label: str = label) -> None:
            on_batch(_label, rows)

        def changed(old_state: str, new_state: str, reason: str, _role: str = role) -> None:
            on_breaker(spec.name, _role, old_state, new_state, reason)

        handles[role] = ModelHandle(
            role=role,
            model=model,
            batcher=MicroBatcher(
                model.predict,
                name=label,
                max_batch_size=spec.max_batch_size,
                max_wait_s=spec.max_wait_ms / 1000.0,
                max_queue_rows=spec.max_queue,
                on_batch=batch_done,
            ),
            breaker=CircuitBreaker(spec.breaker, on_change=changed),
            reuse_key=key,
        )
    return handles
