"""Verdicts that survive many comparisons and a power that is not a coin flip.

A page compares every condition with alpha = 0; each verdict ("loss" / "no loss") is a test
of H0: difference = -margin, decided when the Welch 95% CI excludes -margin, i.e. when the
two-sided Welch p-value against -margin is below 0.05. Over a page's m comparisons the
chance that some verdict is wrong grows with m, so the verdict words use Holm's step-down
correction (family-wise error 0.05, valid under any dependence between the comparisons):
sort the p-values p_(1) <= ... <= p_(m), adjusted p_(i) = max_{j <= i} min(1, (m - j + 1) p_(j));
a verdict stands when its adjusted p < 0.05, else it reads "undetermined". The uncorrected
CI is shown beside it.

`seeds_for_power` answers "how many seeds per condition would decide it with 80% chance"
(normal approximation: n = (z_0.975 + z_0.80)^2 (v_alpha + v_0) / (difference + margin)^2),
where the older `seeds_needed` is the n at which the *observed* difference would just be
decided, a roughly 50% chance.
"""
import math

import numpy as np
from scipy import stats

from selectivity.report.comparison import LOSS, NO_LOSS, UNDETERMINED

FAMILY_ALPHA = 0.05
POWER = 0.80


def margin_p_value(difference: float, ci_low: float, ci_high: float, df: float, margin: float) -> float:
    """Two-sided Welch p-value of H0: difference = -margin, from the 95% CI and its df (NaN without a CI)."""
    if any(math.isnan(value) for value in (ci_low, ci_high, df)):
        return math.nan
    half_width = (ci_high - ci_low) / 2
    distance = abs(difference + margin)
    if half_width == 0:  # both spreads 0: the point is certain
        return 0.0 if distance > 0 else 1.0
    standard_error = half_width / float(stats.t.ppf(0.975, df))
    return float(2 * stats.t.sf(distance / standard_error, df))


def holm_adjusted(p_values) -> np.ndarray:
    """Holm step-down adjusted p-values, in the input order; NaN stays NaN and is not counted in m."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(p.shape, np.nan)
    finite = np.flatnonzero(~np.isnan(p))
    m = len(finite)
    running = 0.0
    for rank, index in enumerate(finite[np.argsort(p[finite], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted


def corrected_verdict(verdict: str, adjusted_p: float) -> str:
    """The verdict if it survives the family-wise correction, else UNDETERMINED."""
    if verdict in (LOSS, NO_LOSS) and adjusted_p < FAMILY_ALPHA:
        return verdict
    return UNDETERMINED


def seeds_for_power(difference: float, variance_alpha: float, variance_baseline: float, margin: float,
                    power: float = POWER, level: float = FAMILY_ALPHA) -> float:
    """Seeds per condition for `power` chance that a two-sided test at `level` rejects difference =
    -margin, if the true difference and spreads are the observed ones (normal approximation:
    n = (z_{1 - level/2} + z_power)^2 (v_alpha + v_0) / (difference + margin)^2); inf at the margin,
    NaN without spreads."""
    total = variance_alpha + variance_baseline
    if math.isnan(total):
        return math.nan
    distance = abs(difference + margin)
    if distance == 0:
        return math.inf
    z = stats.norm.ppf(1 - level / 2) + stats.norm.ppf(power)
    return float(max(2, math.ceil(z * z * total / distance**2 - 1e-9)))  # 1e-9: an exact integer stays


def likely_verdict(difference: float, margin: float) -> str:
    """The verdict more seeds would most likely give: the side of -margin the estimate is on."""
    return LOSS if difference < -margin else NO_LOSS
