"""Is a condition's test accuracy lower than alpha = 0's? A Welch comparison with a margin.

"No accuracy loss" is a claim about the difference between two conditions, so it is judged
on that difference: mean(alpha) - mean(alpha = 0) in accuracy points, with its Welch 95% CI
(Welch-Satterthwaite degrees of freedom, no equal-variance assumption). Given a margin m:

    no loss       CI lower bound > -m     (any loss is smaller than m points)
    loss          CI upper bound < -m     (the loss is larger than m points)
    undetermined  otherwise, or a condition has fewer than 2 seeds (no spread estimate)

Fewer seeds widen the CI, so they make either verdict harder to reach, never easier.
For an undetermined comparison `seeds_needed` estimates how many seeds per condition
would decide it (see `seeds_to_decide`). Definitions: docs/definitions.md#headline-criterion.
"""
import math
from dataclasses import dataclass

import numpy as np
from scipy import stats  # installed with scikit-learn (a pinned dependency)

from selectivity.errors import SelectivityError

DEFAULT_MARGIN_POINTS = 0.5
CONFIDENCE = 0.95
MAX_SEEDS_SEARCHED = 1000
NO_LOSS, LOSS, UNDETERMINED = "no loss", "loss", "undetermined"
AT_MARGIN_TOLERANCE = 1e-9  # points: closer to -margin than this, the words say "at the margin" (float rounding)


@dataclass(frozen=True)
class AccuracyComparison:
    """alpha vs alpha = 0 test accuracy, in percentage points.

    Attributes:
        difference: mean(alpha) - mean(baseline).
        ci_low, ci_high: Welch 95% CI of the difference; NaN when a condition has < 2 seeds.
        degrees_of_freedom: Welch-Satterthwaite df; NaN without a CI, inf when both spreads are 0.
        n_alpha, n_baseline: seeds per condition.
        margin: the loss (points) that still counts as "no loss".
        verdict: NO_LOSS, LOSS or UNDETERMINED.
        seeds_needed: for UNDETERMINED, seeds per condition that would decide it; inf when no
            number up to MAX_SEEDS_SEARCHED does; NaN when decided or no spread is known.
    """

    difference: float
    ci_low: float
    ci_high: float
    degrees_of_freedom: float
    n_alpha: int
    n_baseline: int
    margin: float
    verdict: str
    seeds_needed: float
    # set when the comparison is one of a page's family (report.multiplicity): the verdict above
    # is then Holm-corrected, and these say what it was before and how many comparisons were made
    verdict_uncorrected: str = ""
    holm_p: float = math.nan
    family_size: int = 1
    seeds_needed_80: float = math.nan  # seeds per condition for an 80% chance to decide it
    likely_verdict: str = ""  # what those seeds would most likely decide


def check_margin(margin: float) -> float:
    """The margin as a float, or a one-line error unless it is a finite number >= 0."""
    try:
        value = float(margin)
    except (TypeError, ValueError):
        value = float("nan")
    if not math.isfinite(value) or value < 0:
        raise SelectivityError(f"margin {margin!r} is not allowed: expected accuracy points, a finite number >= 0 "
                               f"(default {DEFAULT_MARGIN_POINTS})")
    return value


def welch_interval(values: np.ndarray, baseline: np.ndarray) -> tuple[float, float, float, float]:
    """(difference of means, CI low, CI high, Welch df) for mean(values) - mean(baseline).

    Both arrays need >= 2 finite values. With both sample variances 0 the CI is the point.
    """
    return welch_contrast([values, baseline], [1.0, -1.0])


def welch_contrast(groups, weights) -> tuple[float, float, float, float]:
    """(estimate, CI low, CI high, df) of sum_i weights[i] * mean(groups[i]) over independent groups.

    The Welch-Satterthwaite interval of a linear contrast: squared standard error
    sum_i w_i^2 s_i^2 / n_i, degrees of freedom (sum_i e_i)^2 / sum_i e_i^2 / (n_i - 1) with
    e_i = w_i^2 s_i^2 / n_i. Two groups with weights (1, -1) give the Welch t-test's interval;
    four with (1, -1, -1, 1) a difference of differences. Each group needs >= 2 finite values;
    with every sample variance 0 the CI is the point (df inf).
    """
    groups = [np.asarray(group, dtype=float) for group in groups]
    shares = [w * w * group.var(ddof=1) / len(group) for w, group in zip(weights, groups)]  # squared SE terms
    estimate = float(sum(w * group.mean() for w, group in zip(weights, groups)))
    standard_error = math.sqrt(sum(shares))
    if standard_error == 0.0:
        return estimate, estimate, estimate, math.inf
    df = sum(shares) ** 2 / sum(share**2 / (len(group) - 1) for share, group in zip(shares, groups))
    half_width = float(stats.t.ppf(0.5 + CONFIDENCE / 2, df)) * standard_error
    return estimate, estimate - half_width, estimate + half_width, float(df)


def welch_difference(values, reference) -> tuple[float, float, float]:
    """(mean(values) - mean(reference), 95% CI low, high); no interval (NaN) when either has < 2 values."""
    values, reference = (np.asarray(v, dtype=float) for v in (values, reference))
    values, reference = values[~np.isnan(values)], reference[~np.isnan(reference)]
    if min(len(values), len(reference)) < 2:
        difference = float(values.mean() - reference.mean()) if len(values) and len(reference) else math.nan
        return difference, math.nan, math.nan
    difference, low, high, _ = welch_interval(values, reference)
    return difference, low, high


def direction_of(ci_low: float, ci_high: float) -> str:
    """"higher" / "lower" when the difference's CI excludes 0, else "undetermined" (also without a CI)."""
    return "higher" if ci_low > 0 else "lower" if ci_high < 0 else "undetermined"


def verdict_of(ci_low: float, ci_high: float, margin: float) -> str:
    """NO_LOSS when ci_low > -margin, LOSS when ci_high < -margin, else UNDETERMINED (also for NaN)."""
    if ci_low > -margin:
        return NO_LOSS
    if ci_high < -margin:
        return LOSS
    return UNDETERMINED


def projected_variances(values: np.ndarray, baseline: np.ndarray) -> tuple[float, float]:
    """Each condition's seed-to-seed variance for a projection; one with < 2 seeds borrows the other's.

    Returns:
        (variance of values, variance of baseline), both NaN when neither has 2 seeds.
    """
    variances = [sample.var(ddof=1) if len(sample) >= 2 else math.nan for sample in (values, baseline)]
    if math.isnan(variances[0]):
        variances[0] = variances[1]
    if math.isnan(variances[1]):
        variances[1] = variances[0]
    return float(variances[0]), float(variances[1])


def seeds_to_decide(difference: float, variance_alpha: float, variance_baseline: float, margin: float,
                    first_n: int) -> float:
    """Smallest n >= first_n seeds per condition whose Welch CI would exclude -margin.

    Assumes the observed difference and each condition's seed-to-seed variance stay as they
    are, with n seeds in both conditions; the CI is then the report's own Welch interval
    (`seeds_to_exclude` with the two variances, at distance |difference + margin|).

    Returns:
        n as a float; inf when the difference sits at -margin (no n decides it) or no
        n <= MAX_SEEDS_SEARCHED does; NaN when the variances are NaN (no spread estimate).
    """
    return seeds_to_exclude(difference + margin, (variance_alpha, variance_baseline), first_n)


def seeds_to_exclude(distance: float, variances, first_n: int) -> float:
    """Smallest n >= first_n seeds in every group whose Welch CI of a +-1 contrast would exclude a
    point `distance` away from the estimate (e.g. 0, for a difference of differences).

    Assumes the estimate and each group's seed-to-seed variance v_i stay as they are, with n
    seeds in every group; the interval is then welch_contrast's with weights of +-1:

        half-width(n) = t_{0.975, df(n)} * sqrt(sum_i v_i / n),
        df(n) = (n - 1) (sum_i v_i)^2 / sum_i v_i^2     (= k (n - 1) for k equal variances)

    and excludes the point once half-width(n) < |distance|.

    Returns:
        n as a float; inf when the distance is 0 or no n <= MAX_SEEDS_SEARCHED is enough; NaN
        when a variance is NaN (no spread estimate).
    """
    variances = np.asarray(variances, dtype=float)
    if np.isnan(variances).any():
        return float("nan")
    distance = abs(distance)  # 0: no half-width is below it
    n = np.arange(max(first_n, 2), MAX_SEEDS_SEARCHED + 1)  # [candidates]
    total = float(variances.sum())
    if total == 0:
        return float(n[0]) if distance > 0 else math.inf
    df = (n - 1) * total**2 / float((variances**2).sum())  # [candidates]
    half_widths = stats.t.ppf(0.5 + CONFIDENCE / 2, df) * np.sqrt(total / n)
    deciding = np.flatnonzero(half_widths < distance)
    return float(n[deciding[0]]) if len(deciding) else math.inf


def compare_accuracy(values, baseline, margin: float = DEFAULT_MARGIN_POINTS) -> AccuracyComparison:
    """Compare a condition's per-seed test accuracies (points) with alpha = 0's.

    Args:
        values: the condition's per-seed test accuracies, in percentage points (NaNs dropped).
        baseline: alpha = 0's per-seed test accuracies, in points.
        margin: loss in points that still counts as "no loss" (>= 0).
    Returns:
        An AccuracyComparison; seeds_needed estimates more seeds than the smaller condition has.
    """
    values, baseline = (np.asarray(v, dtype=float) for v in (values, baseline))
    values, baseline = values[~np.isnan(values)], baseline[~np.isnan(baseline)]
    if len(values) == 0 or len(baseline) == 0:
        raise SelectivityError(f"cannot compare accuracies of {len(values)} and {len(baseline)} seeds: "
                               "expected at least one seed in each condition")
    margin = check_margin(margin)
    if min(len(values), len(baseline)) >= 2:
        difference, ci_low, ci_high, df = welch_interval(values, baseline)
    else:
        difference, ci_low, ci_high, df = float(values.mean() - baseline.mean()), math.nan, math.nan, math.nan
    verdict = verdict_of(ci_low, ci_high, margin)
    seeds_needed = math.nan
    if verdict == UNDETERMINED:
        seeds_needed = seeds_to_decide(difference, *projected_variances(values, baseline), margin,
                                       min(len(values), len(baseline)) + 1)
    return AccuracyComparison(difference, ci_low, ci_high, df, len(values), len(baseline), margin, verdict,
                              seeds_needed)


def describe(comparison: AccuracyComparison) -> str:
    """One phrase: the difference, its CI, the seeds, and the verdict with its reason."""
    c = comparison
    seeds = f"{c.n_alpha} vs {c.n_baseline} seeds"
    if math.isnan(c.ci_low):
        interval = f"{c.difference:+.2f} points (no CI: {seeds})"
    else:
        interval = f"{c.difference:+.2f} points (95% Welch CI {c.ci_low:+.2f} to {c.ci_high:+.2f}; {seeds})"
    corrected = f", Holm-corrected over {c.family_size} comparisons" if c.family_size > 1 else ""
    if c.verdict == NO_LOSS:
        return f"{interval}, verdict no loss (CI lower bound above -{c.margin:g} points{corrected})"
    if c.verdict == LOSS:
        return f"{interval}, verdict loss (CI upper bound below -{c.margin:g} points{corrected})"
    if c.verdict_uncorrected in (LOSS, NO_LOSS):
        why = (f"uncorrected {c.verdict_uncorrected}, but Holm's adjusted p = {c.holm_p:.3f} over "
               f"{c.family_size} comparisons is not below 0.05")
    else:
        why = "no CI" if math.isnan(c.ci_low) else f"the CI contains -{c.margin:g} points"
    return f"{interval}, verdict undetermined ({why}); {needed_phrase(c)}"


def needed_phrase(comparison: AccuracyComparison) -> str:
    """How many seeds per condition would decide an undetermined comparison, in words."""
    needed = comparison.seeds_needed
    if math.isnan(needed):
        return "at least 2 seeds per condition are needed to estimate the seed-to-seed spread"
    if math.isinf(needed):
        if abs(comparison.difference + comparison.margin) < AT_MARGIN_TOLERANCE:
            return "the observed difference equals minus the margin, so no number of seeds decides it"
        return (f"no number of seeds up to {MAX_SEEDS_SEARCHED} per condition decides it "
                "(the observed difference lies near minus the margin)")
    phrase = f"about {needed:.0f} seeds per condition would decide it if the difference and spread stay as observed"
    if not math.isnan(comparison.seeds_needed_80) and comparison.likely_verdict:
        phrase += (f" (a roughly 50% chance); about {comparison.seeds_needed_80:.0f} give an 80% chance of a "
                   f"decision, most likely {comparison.likely_verdict}")
    return phrase
