"""The paper's three headline numbers, computed from the per-alpha summary.

Only constant-alpha conditions take part (schedules are reported in the summary table).
Definitions (also in docs/report.md):
  (a) si_reduction_at_iso_accuracy: the largest mean_SI(0) / mean_SI(alpha) over alpha < 0
      with mean_acc(alpha) >= mean_acc(0) - ci95(0), where ci95(0) is the 95% t-CI half-width
      of alpha = 0's accuracy across seeds; with a single alpha = 0 seed there is no CI and the
      tolerance is 0 (mean_acc(alpha) >= acc(0)).
  (b) accuracy_change_at_lowest_si: 100 * (mean_acc(alpha*) - mean_acc(0)) in percentage
      points, alpha* = the alpha != 0 with the lowest mean SI.
  (c) accuracy_at_largest_positive_alpha: mean_acc at the largest alpha > 0 vs alpha = 0.
"""
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

HEADLINE_COLUMNS = ["key", "alpha", "value", "unit", "statement"]


@dataclass(frozen=True)
class Headline:
    key: str
    alpha: float  # NaN when the headline could not be computed
    value: float  # NaN when the headline could not be computed
    unit: str
    statement: str  # one sentence a reader can quote


def _missing(key: str, unit: str, reason: str) -> Headline:
    return Headline(key, float("nan"), float("nan"), unit, reason)


def _percent(fraction: float) -> str:
    return f"{100 * fraction:.2f}%"


def si_reduction_at_iso_accuracy(baseline: pd.Series, conditions: pd.DataFrame) -> Headline:
    """Headline (a): largest SI reduction factor keeping accuracy within alpha=0's CI."""
    key, unit = "si_reduction_at_iso_accuracy", "x (SI(0) / SI(alpha))"
    negative = conditions[conditions["alpha"] < 0]
    if negative.empty:
        return _missing(key, unit, "No alpha < 0 runs in the table: no SI reduction to report.")
    tolerance = baseline["test_accuracy_ci95"]
    tolerance_text = f"alpha=0's 95% CI half-width ({100 * tolerance:.2f} points)"
    if np.isnan(tolerance):
        tolerance, tolerance_text = 0.0, "0 points (one alpha=0 seed: no CI)"
    threshold = baseline["test_accuracy_mean"] - tolerance
    keeping = negative[negative["test_accuracy_mean"] >= threshold]
    if keeping.empty:
        return _missing(key, unit, f"No alpha < 0 keeps mean test accuracy >= {_percent(threshold)} "
                                   f"(alpha=0 mean minus {tolerance_text}).")
    factors = baseline["mean_si_mean"] / keeping["mean_si_mean"]
    best = keeping.loc[factors.idxmax()]
    factor = float(factors.max())
    return Headline(key, float(best["alpha"]), factor, unit,
                    f"alpha={best['alpha_label']} cuts mean SI {factor:.2f}x "
                    f"({baseline['mean_si_mean']:.3f} -> {best['mean_si_mean']:.3f}) with mean test accuracy "
                    f"{_percent(best['test_accuracy_mean'])}, within {tolerance_text} of alpha=0's "
                    f"{_percent(baseline['test_accuracy_mean'])}.")


def accuracy_change_at_lowest_si(baseline: pd.Series, conditions: pd.DataFrame) -> Headline:
    """Headline (b): accuracy change (points) at the alpha with the lowest mean SI."""
    key, unit = "accuracy_change_at_lowest_si", "percentage points"
    others = conditions[conditions["alpha"] != 0]
    if others.empty:
        return _missing(key, unit, "No alpha != 0 runs in the table.")
    lowest = others.loc[others["mean_si_mean"].idxmin()]
    change = 100 * (lowest["test_accuracy_mean"] - baseline["test_accuracy_mean"])
    return Headline(key, float(lowest["alpha"]), float(change), unit,
                    f"The lowest mean SI ({lowest['mean_si_mean']:.3f}, alpha={lowest['alpha_label']}) "
                    f"changes mean test accuracy by {change:+.2f} points "
                    f"({_percent(baseline['test_accuracy_mean'])} -> {_percent(lowest['test_accuracy_mean'])}).")


def accuracy_at_largest_positive_alpha(baseline: pd.Series, conditions: pd.DataFrame) -> Headline:
    """Headline (c): mean accuracy at the largest alpha > 0 (value in %), vs alpha = 0."""
    key, unit = "accuracy_at_largest_positive_alpha", "test accuracy (%)"
    positive = conditions[conditions["alpha"] > 0]
    if positive.empty:
        return _missing(key, unit, "No alpha > 0 runs in the table.")
    largest = positive.loc[positive["alpha"].idxmax()]
    change = 100 * (largest["test_accuracy_mean"] - baseline["test_accuracy_mean"])
    return Headline(key, float(largest["alpha"]), float(100 * largest["test_accuracy_mean"]), unit,
                    f"At alpha={largest['alpha_label']} mean test accuracy is "
                    f"{_percent(largest['test_accuracy_mean'])} vs {_percent(baseline['test_accuracy_mean'])} "
                    f"at alpha=0 ({change:+.2f} points).")


def headline_table(conditions: pd.DataFrame) -> pd.DataFrame:
    """The three headline rows (columns HEADLINE_COLUMNS); explains rather than fails on gaps.

    Args:
        conditions: `tables.condition_summary` output.
    Returns:
        One row per headline; value/alpha are NaN and the statement says why when a headline
        cannot be computed (e.g. no alpha = 0 runs).
    """
    constant = conditions[conditions["constant"]]
    baseline_rows = constant[constant["alpha"] == 0]
    builders = (si_reduction_at_iso_accuracy, accuracy_change_at_lowest_si,
                accuracy_at_largest_positive_alpha)
    if baseline_rows.empty:
        units = ("x (SI(0) / SI(alpha))", "percentage points", "test accuracy (%)")
        reason = "No alpha=0 runs in the table: every headline compares against the unregularized baseline."
        rows = [_missing(builder.__name__, unit, reason) for builder, unit in zip(builders, units)]
    else:
        baseline = baseline_rows.iloc[0]
        rows = [builder(baseline, constant) for builder in builders]
    return pd.DataFrame([asdict(row) for row in rows], columns=HEADLINE_COLUMNS)
