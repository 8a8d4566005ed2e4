"""What a deployment declares: the models it hosts, how traffic is split, how it fails.

A spec is plain JSON in the metadata store (``forgeml deployments apply`` writes it,
servers read it), so every field is checked here, once, with a message that names the
field: a server never finds out at request time that its deployment made no sense.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from forgeml.errors import InvalidArgumentError

POLICIES = ("single", "canary", "shadow", "ab")
METHODS = ("predict", "predict_proba")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class BreakerSpec:
    """When a model's circuit opens and how it recovers.

    It opens after ``failures`` failures in a row (errors, or timeouts of a model call
    that had begun), or when at least ``slo_ratio`` of the last ``slo_window`` model calls
    took longer than ``latency_slo_ms``. Time spent queued behind other requests is load,
    not a sick model: it is met by shedding (503), never by opening the circuit.
    After ``open_seconds`` it lets ``probes`` requests through (half-open); all of them
    succeeding closes it, any failing opens it again.
    """

    failures: int = 5
    latency_slo_ms: float | None = None
    slo_window: int = 20
    slo_ratio: float = 0.5
    open_seconds: float = 10.0
    probes: int = 3

    def check(self, where: str) -> None:
        _positive_int(self.failures, f"{where}.failures")
        _positive_int(self.slo_window, f"{where}.slo_window")
        _positive_int(self.probes, f"{where}.probes")
        if self.latency_slo_ms is not None:
            _positive(self.latency_slo_ms, f"{where}.latency_slo_ms")
        if not 0 < self.slo_ratio <= 1:
            raise InvalidArgumentError(f"{where}.slo_ratio must be in (0, 1], got {self.slo_ratio}")
        _positive(self.open_seconds, f"{where}.open_seconds")


@dataclass(frozen=True)
class DeploymentSpec:
    """One deployment. ``model`` is the champion; ``challenger`` takes part by ``policy``.

    - single: every request goes to ``model``.
    - canary: ``weight`` percent of requests, drawn at random, go to the challenger.
    - shadow: every request also goes to the challenger; its answer is logged, the
      champion's returned.
    - ab: ``weight`` percent of request keys (the ``sticky_key`` field, or the
      ``X-Forgeml-Key`` header) go to the challenger, the same key always to the same arm.
    """

    name: str
    model: str
    policy: str = "single"
    challenger: str | None = None
    weight: float = 0.0
    sticky_key: str | None = None
    method: str = "predict"
    fallback: str | None = None
    default_answer: Any = None
    has_default_answer: bool = False
    timeout_ms: float = 1000.0
    max_batch_size: int = 256
    max_wait_ms: float = 0.0
    max_queue: int = 10_000
    features: tuple[str, ...] = ()
    log_predictions: bool = True
    breaker: BreakerSpec = field(default_factory=BreakerSpec)

    def __post_init__(self) -> None:
        where = f"deployment {self.name!r}"
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise InvalidArgumentError(
                f"deployment name {self.name!r} must be 1-128 letters, digits, '_', '.', '-'"
            )
        _model_uri(self.model, f"{where}: model")
        if self.policy not in POLICIES:
            raise InvalidArgumentError(
                f"{where}: policy must be one of {', '.join(POLICIES)}, got {self.policy!r}"
            )
        if self.policy != "single" and self.challenger is None:
            raise InvalidArgumentError(f"{where}: policy {self.policy!r} needs a challenger")
        if self.challenger is not None:
            _model_uri(self.challenger, f"{where}: challenger")
        if self.fallback is not None:
            _model_uri(self.fallback, f"{where}: fallback")
        if isinstance(self.weight, bool) or not isinstance(self.weight, int | float):
            raise InvalidArgumentError(f"{where}: weight must be a number, got {self.weight!r}")
        if not 0 <= self.weight <= 100:
            raise InvalidArgumentError(
                f"{where}: weight is a percentage in [0, 100], got {self.weight}"
            )
        if self.method not in METHODS:
            raise InvalidArgumentError(
                f"{where}: method must be one of {', '.join(METHODS)}, got {self.method!r}"
            )
        _positive(self.timeout_ms, f"{where}: timeout_ms")
        _positive_int(self.max_batch_size, f"{where}: max_batch_size")
        _positive_int(self.max_queue, f"{where}: max_queue")
        if not isinstance(self.max_wait_ms, int | float) or self.max_wait_ms < 0:
            raise InvalidArgumentError(f"{where}: max_wait_ms must be >= 0")
        for ref in self.features:
            if not isinstance(ref, str) or ":" not in ref:
                raise InvalidArgumentError(
                    f"{where}: features are 'view:feature' or 'view:*' strings, got {ref!r}"
                )
        self.breaker.check(f"{where}: breaker")

    @property
    def model_uris(self) -> dict[str, str]:
        """Role -> URI of every model the deployment needs loaded."""
        uris = {"champion": self.model}
        if self.challenger is not None and self.policy != "single":
            uris["challenger"] = self.challenger
        if self.fallback is not None:
            uris["fallback"] = self.fallback
        return uris

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["features"] = list(self.features)
        if not self.has_default_answer:
            data.pop("default_answer")
        data.pop("has_default_answer")
        return data

    @classmethod
    def from_dict(cls, data: Any, where: str = "deployment") -> DeploymentSpec:
        """Build a spec from JSON/YAML; unknown keys are refused by name (typos hide)."""
        if not isinstance(data, dict):
            raise InvalidArgumentError(f"{where} must be a mapping, got {type(data).__name__}")
        known = {f.name for f in fields(cls)} - {"has_default_answer"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidArgumentError(
                f"{where}: unknown field(s) {', '.join(unknown)} "
                f"(known: {', '.join(sorted(known))})"
            )
        values = dict(data)
        if "name" not in values or "model" not in values:
            raise InvalidArgumentError(f"{where}: 'name' and 'model' are required")
        if "default_answer" in values:
            values["has_default_answer"] = True
        breaker = values.pop("breaker", None) or {}
        if not isinstance(breaker, dict):
            raise InvalidArgumentError(f"{where}: breaker must be a mapping")
        unknown = sorted(set(breaker) - {f.name for f in fields(BreakerSpec)})
        if unknown:
            raise InvalidArgumentError(f"{where}: unknown breaker field(s) {', '.join(unknown)}")
        features = values.pop("features", None) or ()
        if isinstance(features, str) or not isinstance(features, list | tuple):
            raise InvalidArgumentError(f"{where}: features must be a list of 'view:feature'")
        try:
            return cls(**values, features=tuple(features), breaker=BreakerSpec(**breaker))
        except TypeError as exc:
            raise InvalidArgumentError(f"{where}: {exc}") from None

    def with_changes(self, **changes: Any) -> DeploymentSpec:
        return replace(self, **changes)


def _model_uri(uri: Any, where: str) -> None:
    from forgeml.registry.uri import parse_model_uri

    if not isinstance(uri, str):
        raise InvalidArgumentError(f"{where} must be a models:/ URI, got {uri!r}")
    try:
        parse_model_uri(uri)
    except InvalidArgumentError as exc:
        raise InvalidArgumentError(f"{where}: {exc}") from None


def _positive(value: Any, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise InvalidArgumentError(f"{where} must be a positive number, got {value!r}")


def _positive_int(value: Any, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidArgumentError(f"{where} must be a positive whole number, got {value!r}")
