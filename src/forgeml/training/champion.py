"""Champion/challenger: move an alias to a new version only when its run measured better.

The comparison uses the metric as the producing runs logged it (each version's
``run_id``, then that run's latest value), so the decision rests on recorded evidence,
and the alias move records both values in the registry's audit trail.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from forgeml.errors import InvalidArgumentError, NotFoundError


@dataclass(frozen=True)
class PromotionDecision:
    """Whether the challenger took the alias, the values compared, and why."""

    promoted: bool
    challenger_value: float
    champion_version: int | None
    champion_value: float | None
    reason: str


def promote_if_better(
    name: str,
    version: int,
    *,
    metric: str,
    greater_is_better: bool = True,
    alias: str = "champion",
    min_delta: float = 0.0,
) -> PromotionDecision:
    """Point ``alias`` of model ``name`` at ``version`` if it beats the current holder.

    The challenger wins when no version holds the alias yet, or when its ``metric`` is
    better than the champion's by more than ``min_delta`` (higher is better unless
    ``greater_is_better`` is False). ``champion_version`` and ``champion_value`` in the
    decision describe the holder before the decision. Raises NotFoundError when either
    version's run did not log ``metric`` (a comparison without evidence is refused).
    """
    from forgeml.registry.api import get_model_version, set_alias

    if not isinstance(metric, str) or not metric:
        raise InvalidArgumentError(f"metric must be a metric name, got {metric!r}")
    if not isinstance(min_delta, int | float) or not min_delta >= 0:
        raise InvalidArgumentError(f"min_delta must be a number >= 0, got {min_delta!r}")
    challenger_value = _metric_of(name, version, metric)
    try:
        champion = get_model_version(name, alias=alias)
    except NotFoundError:
        champion = None
    if champion is None:
        reason = f"first {alias}: v{version} with {metric}={challenger_value:.6g}"
        set_alias(name, alias, version, reason=reason)
        return PromotionDecision(True, challenger_value, None, None, reason)
    if champion.version == version:
        reason = f"v{version} already holds {alias!r} ({metric}={challenger_value:.6g})"
        return PromotionDecision(False, challenger_value, version, challenger_value, reason)
    champion_value = _metric_of(name, champion.version, metric)
    gain = (
        challenger_value - champion_value
        if greater_is_better
        else champion_value - challenger_value
    )
    direction = "higher" if greater_is_better else "lower"
    values = (
        f"challenger v{version} {metric}={challenger_value:.6g}, "
        f"{alias} v{champion.version} {metric}={champion_value:.6g} "
        f"({direction} is better, min_delta={min_delta:g})"
    )
    if gain > min_delta:
        reason = f"promoted: {values}"
        set_alias(name, alias, version, reason=reason)
        return PromotionDecision(True, challenger_value, champion.version, champion_value, reason)
    return PromotionDecision(
        False, challenger_value, champion.version, champion_value, f"kept {alias}: {values}"
    )


def _metric_of(name: str, version: int, metric: str) -> float:
    """The latest value of ``metric`` in the run that produced ``name`` v``version``."""
    from forgeml.registry.api import get_model_version
    from forgeml.tracking.fluent import get_run

    found = get_model_version(name, version=version)
    if found.run_id is None:
        raise NotFoundError(
            f"{name} v{version} was not logged from a run, so it has no {metric!r} to compare"
        )
    run = get_run(found.run_id)
    value = run.metrics.get(metric)
    if value is None:
        known = ", ".join(sorted(run.metrics)) or "none"
        raise NotFoundError(
            f"run {found.run_id[:8]} that produced {name} v{version} has no metric "
            f"{metric!r} (its metrics: {known})"
        )
    if math.isnan(value):
        raise InvalidArgumentError(
            f"{metric} of {name} v{version} (run {found.run_id[:8]}) is NaN and cannot be compared"
        )
    return float(value)
