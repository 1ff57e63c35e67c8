"""The paper's three headline claims, each judged on accuracy against alpha = 0.

Every condition's test accuracy is compared with alpha = 0's by `comparison.compare_accuracy`
(difference of means in points, Welch 95% CI, verdict "no loss" / "loss" / "undetermined"
against a margin). Only constant-alpha conditions take part in the headlines (schedules
are compared in `comparison_table` too). Definitions (also in docs/report.md):
  (a) si_reduction_at_iso_accuracy: the largest mean_SI(0) / mean_SI(alpha) over alpha < 0
      whose verdict is "no loss". Without one, value is NaN and the row describes the
      undetermined alpha < 0 with the largest reduction (or says none is undetermined).
  (b) accuracy_change_at_lowest_si: the difference (points) at the alpha != 0 with the
      lowest mean SI.
  (c) accuracy_at_largest_positive_alpha: mean test accuracy (%) at the largest alpha > 0,
      with its difference from alpha = 0.
"""
import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from selectivity.report.comparison import (DEFAULT_MARGIN_POINTS, LOSS, NO_LOSS, UNDETERMINED, AccuracyComparison,
                                           compare_accuracy, describe, projected_variances)
from selectivity.report.multiplicity import (FAMILY_ALPHA, POWER, corrected_verdict, holm_adjusted, likely_verdict,
                                             margin_p_value, seeds_for_power)

COMPARISON_FIELDS = ["difference_points", "ci_low_points", "ci_high_points", "n_alpha", "n_baseline",
                     "margin_points", "verdict", "seeds_needed", "verdict_uncorrected", "holm_p", "family_size",
                     "seeds_needed_80", "likely_verdict"]
HEADLINE_COLUMNS = ["key", "alpha", "value", "candidate_value", "unit"] + COMPARISON_FIELDS + ["statement"]
COMPARISON_COLUMNS = ["alpha_label", "alpha", "constant", "si_reduction", "welch_df"] + COMPARISON_FIELDS
UNITS = {"si_reduction_at_iso_accuracy": "x (SI(0) / SI(alpha))", "accuracy_change_at_lowest_si": "percentage points",
         "accuracy_at_largest_positive_alpha": "test accuracy (%)"}


@dataclass(frozen=True)
class Headline:
    key: str
    alpha: float  # NaN when no condition could be picked
    value: float  # NaN when the claim could not be made
    unit: str
    statement: str  # one sentence a reader can quote
    comparison: AccuracyComparison | None = None  # alpha vs alpha = 0, when alpha is known
    candidate_value: float = math.nan  # without a value: the undetermined candidate's (e.g. its SI reduction)

    def row(self) -> dict:
        fields = dict.fromkeys(COMPARISON_FIELDS, math.nan) if self.comparison is None else _fields(self.comparison)
        return {"key": self.key, "alpha": self.alpha, "value": self.value, "candidate_value": self.candidate_value,
                "unit": self.unit, **fields, "statement": self.statement}


def _fields(c: AccuracyComparison) -> dict:
    """The COMPARISON_FIELDS columns of one comparison."""
    return {"difference_points": c.difference, "ci_low_points": c.ci_low, "ci_high_points": c.ci_high,
            "n_alpha": c.n_alpha, "n_baseline": c.n_baseline, "margin_points": c.margin, "verdict": c.verdict,
            "seeds_needed": c.seeds_needed, "verdict_uncorrected": c.verdict_uncorrected, "holm_p": c.holm_p,
            "family_size": c.family_size, "seeds_needed_80": c.seeds_needed_80, "likely_verdict": c.likely_verdict}


def _missing(key: str, reason: str) -> Headline:
    return Headline(key, math.nan, math.nan, UNITS[key], reason)


def comparison_table(runs: pd.DataFrame, conditions: pd.DataFrame,
                     margin: float = DEFAULT_MARGIN_POINTS) -> pd.DataFrame:
    """Every condition but alpha = 0 against alpha = 0: accuracy difference, CI, verdict.

    Args:
        runs: `tables.run_network_table` output (one row per run, accuracy as a fraction).
        conditions: `tables.condition_summary` output.
        margin: accuracy points a loss may reach and still count as "no loss".
    Returns:
        Columns COMPARISON_COLUMNS, one row per condition with a test accuracy, in the
        conditions' order; empty when there is no constant alpha = 0 condition.
    """
    baseline_rows = conditions[conditions["constant"] & (conditions["alpha"] == 0)]
    if baseline_rows.empty:
        return pd.DataFrame(columns=COMPARISON_COLUMNS)
    baseline = baseline_rows.iloc[0]
    points = runs.assign(accuracy_points=100 * runs["test_accuracy"])
    baseline_points = points.loc[points["alpha_label"] == baseline["alpha_label"], "accuracy_points"]
    if baseline_points.isna().all():
        return pd.DataFrame(columns=COMPARISON_COLUMNS)
    compared = []
    for condition in conditions.itertuples(index=False):
        if condition.alpha_label == baseline["alpha_label"]:
            continue
        own = points.loc[points["alpha_label"] == condition.alpha_label, "accuracy_points"]
        if own.isna().all():  # no finished evaluation to compare
            continue
        comparison = compare_accuracy(own, baseline_points, margin)
        variances = projected_variances(own.dropna().to_numpy(float), baseline_points.dropna().to_numpy(float))
        compared.append((condition, comparison, variances))
    family = _holm_family([comparison for _, comparison, _ in compared])
    tested = int(np.sum(~np.isnan(family)))  # a comparison without a CI tests nothing and is not counted
    rows = [{"alpha_label": condition.alpha_label, "alpha": condition.alpha, "constant": condition.constant,
             "si_reduction": baseline["mean_si_mean"] / condition.mean_si_mean,
             "welch_df": comparison.degrees_of_freedom, **_fields(_corrected(comparison, p, tested, variances))}
            for (condition, comparison, variances), p in zip(compared, family)]
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)


def _holm_family(comparisons: list[AccuracyComparison]) -> np.ndarray:
    """Holm-adjusted p-values (against -margin) of a page's comparisons: the family is all of them."""
    return holm_adjusted([margin_p_value(c.difference, c.ci_low, c.ci_high, c.degrees_of_freedom, c.margin)
                          for c in comparisons])


def _corrected(c: AccuracyComparison, holm_p: float, family_size: int, variances) -> AccuracyComparison:
    """The comparison with its Holm-corrected verdict and 80%-power seeds (docs/report.md).

    Undetermined before the correction: seeds at the comparison's own level 0.05 (the 50%
    figure is `seeds_to_decide`'s). Undetermined only after it: both figures at Bonferroni's
    level 0.05 / m, the strictest step of Holm's procedure, so they suffice at any rank."""
    verdict = corrected_verdict(c.verdict, holm_p)
    if verdict != UNDETERMINED or math.isnan(c.ci_low):
        seeds, seeds_80, likely = (c.seeds_needed if verdict == UNDETERMINED else math.nan), math.nan, ""
    else:
        level = FAMILY_ALPHA if c.verdict == UNDETERMINED else FAMILY_ALPHA / max(family_size, 1)
        seeds = c.seeds_needed if c.verdict == UNDETERMINED else seeds_for_power(
            c.difference, *variances, c.margin, power=0.5, level=level)
        seeds_80 = seeds_for_power(c.difference, *variances, c.margin, power=POWER, level=level)
        # the normal approximation ignores t's heavier tails at few seeds: never fewer than one more
        more = min(c.n_alpha, c.n_baseline) + 1
        seeds, seeds_80 = max(seeds, more), max(seeds_80, more)
        likely = likely_verdict(c.difference, c.margin)
    return replace(c, verdict=verdict, seeds_needed=seeds, verdict_uncorrected=c.verdict, holm_p=float(holm_p),
                   family_size=family_size, seeds_needed_80=seeds_80, likely_verdict=likely)
    p_values = [margin_p_value(row.difference_points, row.ci_low_points, row.ci_high_points, row.welch_df,
                               row.margin_points) for row in table.itertuples(index=False)]
    adjusted = holm_adjusted(p_values)
    table = table.copy()
    table["holm_p"] = adjusted
    table["family_size"] = int(np.sum(~np.isnan(adjusted)))
    table["verdict"] = [corrected_verdict(verdict, p)
                        for verdict, p in zip(table["verdict_uncorrected"], adjusted)]
    decided = table["verdict"] != UNDETERMINED
    table.loc[decided, "seeds_needed"] = np.nan  # decided: no more seeds needed
    table.loc[decided, ["seeds_needed_80", "likely_verdict"]] = [np.nan, ""]
    needs = ~decided & table["seeds_needed"].isna() & ~table["ci_low_points"].isna()
    for index in table.index[needs]:  # undetermined only after the correction: project as for the others
        row = table.loc[index]
        table.loc[index, "seeds_needed"] = float(row["n_alpha"]) + 1  # more seeds: the CI narrows past it
    return table


def _comparison(row) -> AccuracyComparison:
    return AccuracyComparison(row["difference_points"], row["ci_low_points"], row["ci_high_points"], row["welch_df"],
                              int(row["n_alpha"]), int(row["n_baseline"]), row["margin_points"], row["verdict"],
                              row["seeds_needed"], row["verdict_uncorrected"], row["holm_p"], int(row["family_size"]),
                              row["seeds_needed_80"], row["likely_verdict"])


def si_reduction_at_iso_accuracy(baseline: pd.Series, compared: pd.DataFrame) -> Headline:
    """Headline (a): the largest SI reduction among alpha < 0 whose verdict is "no loss"."""
    key = "si_reduction_at_iso_accuracy"
    negative = compared[compared["alpha"] < 0]
    if negative.empty:
        return _missing(key, "No alpha < 0 runs in the table: no SI reduction to report.")
    holding = negative[negative["verdict"] == NO_LOSS]
    if holding.empty:
        return _no_alpha_holds(key, negative)
    best = holding.loc[holding["si_reduction"].idxmax()]
    factor, comparison = float(best["si_reduction"]), _comparison(best)
    return Headline(key, float(best["alpha"]), factor, UNITS[key],
                    f"alpha={best['alpha_label']} cuts mean SI {factor:.2f}x ({baseline['mean_si_mean']:.3f} -> "
                    f"{baseline['mean_si_mean'] / factor:.3f}); test accuracy vs alpha=0: {describe(comparison)}.",
                    comparison)


def _no_alpha_holds(key: str, negative: pd.DataFrame) -> Headline:
    """Headline (a) when no alpha < 0 shows "no loss": name the best undetermined candidate."""
    counts = negative["verdict"].value_counts()
    tally = ", ".join(f"{counts[verdict]} {verdict}" for verdict in (LOSS, UNDETERMINED) if verdict in counts)
    margin = negative["margin_points"].iloc[0]
    opening = f"No alpha < 0 shows no loss (difference CI lower bound above -{margin:g} points): {tally}."
    undetermined = negative[negative["verdict"] == UNDETERMINED]
    if undetermined.empty:
        return _missing(key, opening)
    candidate = undetermined.loc[undetermined["si_reduction"].idxmax()]
    comparison = _comparison(candidate)
    return Headline(key, float(candidate["alpha"]), math.nan, UNITS[key],
                    f"{opening} The largest undetermined reduction, alpha={candidate['alpha_label']} "
                    f"({float(candidate['si_reduction']):.2f}x): {describe(comparison)}.", comparison,
                    candidate_value=float(candidate["si_reduction"]))


def accuracy_change_at_lowest_si(conditions: pd.DataFrame, compared: pd.DataFrame) -> Headline:
    """Headline (b): the accuracy difference (points) at the alpha with the lowest mean SI."""
    key = "accuracy_change_at_lowest_si"
    if compared.empty:
        return _missing(key, "No alpha != 0 runs in the table.")
    si = conditions.set_index("alpha_label")["mean_si_mean"]
    lowest = compared.loc[compared["alpha_label"].map(si).idxmin()]
    comparison = _comparison(lowest)
    return Headline(key, float(lowest["alpha"]), comparison.difference, UNITS[key],
                    f"The lowest mean SI ({si[lowest['alpha_label']]:.3f}, alpha={lowest['alpha_label']}) changes "
                    f"test accuracy by {describe(comparison)}.", comparison)


def accuracy_at_largest_positive_alpha(conditions: pd.DataFrame, compared: pd.DataFrame) -> Headline:
    """Headline (c): mean accuracy (%) at the largest alpha > 0, and its difference from alpha = 0."""
    key = "accuracy_at_largest_positive_alpha"
    positive = compared[compared["alpha"] > 0]
    if positive.empty:
        return _missing(key, "No alpha > 0 runs in the table.")
    largest = positive.loc[positive["alpha"].idxmax()]
    accuracy = conditions.set_index("alpha_label")["test_accuracy_mean"][largest["alpha_label"]] * 100
    comparison = _comparison(largest)
    return Headline(key, float(largest["alpha"]), float(accuracy), UNITS[key],
                    f"At alpha={largest['alpha_label']} mean test accuracy is {accuracy:.2f}%; vs alpha=0: "
                    f"{describe(comparison)}.", comparison)


def headline_table(runs: pd.DataFrame, conditions: pd.DataFrame,
                   margin: float = DEFAULT_MARGIN_POINTS) -> pd.DataFrame:
    """The three headline rows (columns HEADLINE_COLUMNS); explains rather than fails on gaps.

    Args:
        runs: `tables.run_network_table` output.
        conditions: `tables.condition_summary` output.
        margin: accuracy points a loss may reach and still count as "no loss".
    Returns:
        One row per headline; value is NaN and the statement says why when a claim cannot be
        made (e.g. no alpha = 0 runs, or no alpha < 0 with the verdict "no loss").
    """
    constant = conditions[conditions["constant"]]
    compared = comparison_table(runs, constant, margin)
    baseline_rows = constant[constant["alpha"] == 0]
    if baseline_rows.empty:
        reason = "No alpha=0 runs in the table: every headline compares against the unregularized baseline."
        rows = [_missing(key, reason) for key in UNITS]
    else:
        rows = [si_reduction_at_iso_accuracy(baseline_rows.iloc[0], compared),
                accuracy_change_at_lowest_si(constant, compared),
                accuracy_at_largest_positive_alpha(constant, compared)]
    return pd.DataFrame([row.row() for row in rows], columns=HEADLINE_COLUMNS)
