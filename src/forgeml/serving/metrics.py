"""Prometheus metrics of a model server, summed over its worker processes.

With ``--workers N`` each worker counts into memory-mapped files of a directory shared
by all of them (prometheus_client's multiprocess mode), so ``/metrics`` answered by any
worker reports the whole server, and so do the A/B figures computed from the counters.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25,
    0.5, 1.0, 2.5, 5.0,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServingMetrics:
    def __init__(self) -> None:
        self.multiprocess = bool(os.environ.get(MULTIPROCESS_ENV))
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "forgeml_serving_requests",
            "Requests answered, by deployment, arm, model version and HTTP status.",
            ["deployment", "arm", "version", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "forgeml_serving_request_seconds",
            "Time from reading a request to answering it.",
            ["deployment", "arm", "version"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.rows = Counter(
            "forgeml_serving_rows", "Rows scored.", ["deployment", "arm", "version"], registry=r
        )
        self.errors = Counter(
            "forgeml_serving_errors",
            "Failed calls by kind: invalid, timeout, model, overloaded, unavailable.",
            ["deployment", "arm", "kind"],
            registry=r,
        )
        self.fallbacks = Counter(
            "forgeml_serving_fallbacks",
            "Requests answered by the fallback model or the default answer.",
            ["deployment", "reason"],
            registry=r,
        )
        self.queue_rows = Gauge(
            "forgeml_serving_queue_rows",
            "Rows waiting for a model call.",
            ["model"],
            multiprocess_mode="livesum",
            registry=r,
        )
        self.batch_rows = Histogram(
            "forgeml_serving_batch_rows",
            "Rows per model call (micro-batch size).",
            ["model"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.breaker_state = Gauge(
            "forgeml_serving_breaker_state",
            "Circuit state per deployment arm: 0 closed, 1 half-open, 2 open (worst worker).",
            ["deployment", "arm"],
            multiprocess_mode="livemax",
            registry=r,
        )
        self.breaker_changes = Counter(
            "forgeml_serving_breaker_transitions",
            "Circuit state changes, by the state entered.",
            ["deployment", "arm", "state"],
            registry=r,
        )
        self.shadow = Counter(
            "forgeml_serving_shadow_requests",
            "Requests mirrored to a shadow challenger, by outcome: same, different, failed.",
            ["deployment", "outcome"],
            registry=r,
        )
        self.outcomes = Counter(
            "forgeml_serving_ab_outcomes",
            "Outcomes reported for A/B arms.",
            ["deployment", "arm"],
            registry=r,
        )
        self.outcome_sum = Gauge(
            "forgeml_serving_ab_outcome_sum",
            "Sum of outcome values (may be negative, hence a gauge).",
            ["deployment", "arm"],
            multiprocess_mode="sum",
            registry=r,
        )
        self.outcome_squares = Gauge(
            "forgeml_serving_ab_outcome_squares",
            "Sum of squared outcome values.",
            ["deployment", "arm"],
            multiprocess_mode="sum",
            registry=r,
        )
        self.log_rows = Counter(
            "forgeml_serving_prediction_log_rows",
            "Rows written to the prediction log.",
            registry=r,
        )
        self.log_dropped = Counter(
            "forgeml_serving_prediction_log_dropped",
            "Rows not logged because the log's buffer was full.",
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self._collecting_registry())

    def _collecting_registry(self) -> CollectorRegistry:
        if not self.multiprocess:
            return self.registry
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return registry

    def samples(self, metric: str) -> Iterator[tuple[dict[str, str], float]]:
        """(labels, value) of every sample named ``metric``, over all workers."""
        for family in self._collecting_registry().collect():
            for sample in family.samples:
                if sample.name == metric:
                    yield dict(sample.labels), float(sample.value)


def ab_summary(metrics: ServingMetrics, deployment: str) -> dict[str, Any]:
    """Per-arm requests and outcomes, and Welch's t-test of the outcome means."""
    arms: dict[str, dict[str, float]] = {}
    for labels, value in metrics.samples("forgeml_serving_requests_total"):
        if labels.get("deployment") == deployment and labels.get("status") == "200":
            arm = arms.setdefault(labels["arm"], {"requests": 0.0, "n": 0.0, "sum": 0.0, "sq": 0.0})
            arm["requests"] += value
    for metric, slot in (
        ("forgeml_serving_ab_outcomes_total", "n"),
        ("forgeml_serving_ab_outcome_sum", "sum"),
        ("forgeml_serving_ab_outcome_squares", "sq"),
    ):
        for labels, value in metrics.samples(metric):
            if labels.get("deployment") == deployment:
                arm = arms.setdefault(
                    labels["arm"], {"requests": 0.0, "n": 0.0, "sum": 0.0, "sq": 0.0}
                )
                arm[slot] += value
    summary: dict[str, Any] = {"deployment": deployment, "arms": {}}
    for name, arm in sorted(arms.items()):
        n = arm["n"]
        mean = arm["sum"] / n if n else None
        variance = (arm["sq"] - n * mean * mean) / (n - 1) if n > 1 and mean is not None else None
        summary["arms"][name] = {
            "requests": int(arm["requests"]),
            "outcomes": int(n),
            "mean": mean,
            "variance": max(variance, 0.0) if variance is not None else None,
        }
    summary["test"] = _welch(summary["arms"].get("champion"), summary["arms"].get("challenger"))
    return summary


def _welch(a: dict[str, Any] | None, b: dict[str, Any] | None) -> dict[str, Any] | None:
    """Welch's two-sample t-test from counts, means and variances (None until both have 2)."""
    if not a or not b or a["outcomes"] < 2 or b["outcomes"] < 2:
        return None
    from scipy import stats

    result = stats.ttest_ind_from_stats(
        a["mean"], max(a["variance"], 0.0) ** 0.5, a["outcomes"],
        b["mean"], max(b["variance"], 0.0) ** 0.5, b["outcomes"],
        equal_var=False,
    )  # fmt: skip
    statistic, p_value = float(result.statistic), float(result.pvalue)
    return {
        "method": "welch_t",
        "difference": b["mean"] - a["mean"],
        "statistic": statistic if statistic == statistic else None,
        "p_value": p_value if p_value == p_value else None,
    }
