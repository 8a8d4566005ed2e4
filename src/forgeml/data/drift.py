"""Distribution distances between a reference and a current sample, on shared bins.

Both sides are counted on the reference's bins (quantile bins for numbers, the
reference's categories plus "other" for categories), so a stored profile is enough to
compare against: the reference rows need not be kept. Zero counts are smoothed with a
small epsilon so log ratios stay finite.

Methods and what their threshold means:

==============  =======================================  ===================
method          statistic                                drift when
==============  =======================================  ===================
``psi``         population stability index               statistic > 0.2
``js``          Jensen-Shannon distance (base 2, 0..1)   statistic > 0.1
``ks``          Kolmogorov-Smirnov D on the bins         statistic > 0.1
``wasserstein`` earth mover's distance / reference std   statistic > 0.1
``chi2``        chi-square goodness of fit               p-value < 0.05
==============  =======================================  ===================
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

METHODS = ("psi", "js", "ks", "wasserstein", "chi2")
DEFAULT_THRESHOLDS = {"psi": 0.2, "js": 0.1, "ks": 0.1, "wasserstein": 0.1, "chi2": 0.05}
_EPSILON = 1e-6


@dataclass(frozen=True)
class DriftStatistic:
    method: str
    statistic: float
    p_value: float | None
    threshold: float
    drifted: bool


def _proportions(counts: list[int] | np.ndarray) -> np.ndarray:
    values = np.asarray(counts, dtype=float)
    total = values.sum()
    if total <= 0:
        return np.full(len(values), 1.0 / max(len(values), 1))
    smoothed = values / total + _EPSILON
    return np.asarray(smoothed / smoothed.sum())


def psi(reference: list[int], current: list[int]) -> float:
    p, q = _proportions(reference), _proportions(current)
    return float(np.sum((q - p) * np.log(q / p)))


def jensen_shannon(reference: list[int], current: list[int]) -> float:
    p, q = _proportions(reference), _proportions(current)
    middle = (p + q) / 2
    divergence = 0.5 * np.sum(p * np.log2(p / middle)) + 0.5 * np.sum(q * np.log2(q / middle))
    return float(math.sqrt(max(divergence, 0.0)))


def kolmogorov_smirnov(reference: list[int], current: list[int]) -> tuple[float, float]:
    """D over the bin boundaries, and its asymptotic two-sample p-value."""
    from scipy.special import kolmogorov

    n, m = float(np.sum(reference)), float(np.sum(current))
    p = np.cumsum(np.asarray(reference, dtype=float)) / max(n, 1.0)
    q = np.cumsum(np.asarray(current, dtype=float)) / max(m, 1.0)
    d = float(np.max(np.abs(p - q))) if len(p) else 0.0
    effective = math.sqrt(n * m / (n + m)) if n and m else 0.0
    return d, float(kolmogorov(d * effective)) if effective else 1.0


def wasserstein(
    edges: list[float], reference: list[int], current: list[int], scale: float | None
) -> float:
    """Earth mover's distance between two histograms on the same finite edges, divided
    by ``scale`` (the reference's standard deviation) so the threshold has no unit."""
    from scipy.stats import wasserstein_distance

    centers = [(low + high) / 2 for low, high in itertools.pairwise(edges)]
    if not centers or sum(reference) == 0 or sum(current) == 0:
        return 0.0
    distance = float(wasserstein_distance(centers, centers, reference, current))
    return distance / scale if scale else distance


def chi_square(reference: list[int], current: list[int]) -> tuple[float, float]:
    """Goodness of fit of the current counts to the reference's proportions."""
    from scipy.stats import chisquare

    observed = np.asarray(current, dtype=float)
    expected = _proportions(reference) * observed.sum()
    if observed.sum() == 0:
        return 0.0, 1.0
    statistic, p_value = chisquare(observed, expected)
    return float(statistic), float(p_value)


def compare(
    method: str,
    reference: list[int],
    current: list[int],
    threshold: float | None = None,
    edges: list[float] | None = None,
    scale: float | None = None,
) -> DriftStatistic:
    """Apply ``method`` and decide whether the difference counts as drift."""
    limit = DEFAULT_THRESHOLDS[method] if threshold is None else threshold
    p_value: float | None = None
    if method == "psi":
        statistic = psi(reference, current)
    elif method == "js":
        statistic = jensen_shannon(reference, current)
    elif method == "ks":
        statistic, p_value = kolmogorov_smirnov(reference, current)
    elif method == "wasserstein":
        statistic = wasserstein(edges or [], reference, current, scale)
    elif method == "chi2":
        statistic, p_value = chi_square(reference, current)
        return DriftStatistic(method, statistic, p_value, limit, p_value < limit)
    else:  # pragma: no cover - checked where the method is chosen
        raise ValueError(method)
    return DriftStatistic(method, statistic, p_value, limit, statistic > limit)
