"""What a rollout judges by: each arm's live error rate and latency, from the prediction log.

The prediction log is written by every worker of every server that hosts a deployment,
so the figures read here describe the whole fleet, not one process that happened to
be asked. A request counts once however many rows it carried; it failed when it was
answered with a 5xx status or by a fallback (the arm it was routed to did not answer).
Shadow copies are left out: they were never anybody's answer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

ARMS = ("champion", "challenger")


@dataclass(frozen=True)
class ArmEvidence:
    """One arm's answers over a window of time."""

    requests: int = 0
    errors: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "error_rate": round(self.error_rate, 6)}

    def describe(self) -> str:
        if not self.requests:
            return "no requests"
        latency = f", p99 {self.p99_ms:.1f} ms" if self.p99_ms is not None else ""
        return f"{self.requests} requests, {self.error_rate:.1%} failed{latency}"


def gather(deployment: str, since: float, until: float | None = None) -> dict[str, ArmEvidence]:
    """Each arm's evidence from the rows logged for ``deployment`` in [since, until]."""
    from forgeml.serving.prediction_log import predictions

    return summarize(predictions(deployment, since, until))


def summarize(table: Any) -> dict[str, ArmEvidence]:
    """Per-arm evidence from prediction-log rows (an Arrow table of the log's schema)."""
    import pyarrow.compute as pc

    found = {arm: ArmEvidence() for arm in ARMS}
    if table.num_rows == 0:
        return found
    table = table.filter(pc.invert(table["shadow"]))
    per_request = table.group_by(["arm", "request_id"]).aggregate(
        [("latency_ms", "max"), ("status", "max"), ("fallback", "any")]
    )
    arms = per_request["arm"].to_numpy(zero_copy_only=False)
    latency = per_request["latency_ms_max"].to_numpy()
    failed = (per_request["status_max"].to_numpy() >= 500) | per_request["fallback_any"].to_numpy(
        zero_copy_only=False
    )
    for arm in ARMS:
        mask = arms == arm
        count = int(mask.sum())
        if not count:
            continue
        p50, p99 = (float(v) for v in np.percentile(latency[mask], [50, 99]))
        found[arm] = ArmEvidence(count, int(failed[mask].sum()), p50, p99)
    return found
