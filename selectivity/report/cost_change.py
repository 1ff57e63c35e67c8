"""Did the cost of an alpha change between two sweeps? E.g. a 6- and an 18-epoch schedule, or two models.

Within one sweep, an alpha's effect is mean(metric at alpha) - mean(metric at alpha = 0) over
seeds. Between sweeps A (first) and B (second) the question is whether that effect moved:

    change = (mean B_alpha - mean B_0) - (mean A_alpha - mean A_0)

a difference of differences over four independent groups of seeds, with the Welch 95% CI of
that contrast (comparison.welch_contrast). For test accuracy at a negative alpha whose effect
is a loss, a change that is "higher" (CI above 0) means the loss shrank in B.
"""
import math

import pandas as pd

from selectivity.errors import SelectivityError
from selectivity.report.comparison import welch_contrast
from selectivity.report.robustness_tables import direction_of, welch_difference
from selectivity.report.tables import run_network_table

BASELINE_LABEL = "0"
COMPARED_METRICS = ("test_accuracy", "mean_si")


def cost_change(first: pd.DataFrame, second: pd.DataFrame, metrics=COMPARED_METRICS) -> pd.DataFrame:
    """Each condition's effect (minus alpha = 0) in two sweeps and how it changed from the first to the second.

    Args:
        first, second: tidy results tables (load_results / prepare_table), one per sweep.
        metrics: network metrics to compare; each must be in both tables.
    Returns:
        One row per condition (alpha_label) in both tables other than alpha = 0, sorted by alpha,
        and per metric: `metric`, `alpha_label`, `alpha`, the seeds of the four groups
        (`n_first`, `n_first_baseline`, `n_second`, `n_second_baseline`), each sweep's effect
        (`first_effect`, `second_effect`) with its Welch 95% CI (`..._ci_low`, `..._ci_high`), the
        `change` (second minus first effect) with its CI and Welch df, and `direction`
        (higher / lower / undetermined: whether the change's CI excludes 0). Intervals are NaN
        when a group has fewer than 2 seeds. Metrics are in the table's units (accuracy as a fraction).
    Raises:
        SelectivityError: a table without alpha = 0 or a metric, no condition in common, or runs in common.
    """
    runs = {"first": run_network_table(first), "second": run_network_table(second)}
    shared = sorted(set(runs["first"]["run_id"]) & set(runs["second"]["run_id"]))
    if shared:
        raise SelectivityError(f"the two results tables share {len(shared)} runs (e.g. {shared[0]}): expected two "
                               "separate sweeps, since the interval assumes independent seeds")
    for name, table in runs.items():
        if BASELINE_LABEL not in set(table["alpha_label"]):
            raise SelectivityError(f"the {name} results table has no alpha = 0 runs: expected alpha = 0 in both "
                                   "tables, since each alpha's effect is measured against it")
        missing = [metric for metric in metrics if metric not in table.columns]
        if missing:
            raise SelectivityError(f"the {name} results table has no network {', '.join(missing)} rows: expected "
                                   f"one of {sorted(c for c in table.columns if c not in ('run_id', 'seed'))}")
    labels = set(runs["first"]["alpha_label"]) & set(runs["second"]["alpha_label"]) - {BASELINE_LABEL}
    if not labels:
        raise SelectivityError("the two results tables share no condition besides alpha = 0: expected the same "
                               f"alpha in both (first: {sorted(set(runs['first']['alpha_label']))}, "
                               f"second: {sorted(set(runs['second']['alpha_label']))})")
    alpha_of = runs["first"].drop_duplicates("alpha_label").set_index("alpha_label")["alpha"]
    rows = []
    for metric in metrics:
        for label in sorted(labels, key=lambda label: (alpha_of[label], label)):
            rows.append({"metric": metric, "alpha_label": label, "alpha": alpha_of[label],
                         **_change(runs["first"], runs["second"], metric, label)})
    return pd.DataFrame(rows)


def _values(runs: pd.DataFrame, metric: str, label: str) -> pd.Series:
    return runs.loc[runs["alpha_label"] == label, metric].dropna()


def _change(first: pd.DataFrame, second: pd.DataFrame, metric: str, label: str) -> dict:
    groups = [_values(second, metric, label), _values(second, metric, BASELINE_LABEL),
              _values(first, metric, label), _values(first, metric, BASELINE_LABEL)]
    row = {"n_first": len(groups[2]), "n_first_baseline": len(groups[3]),
           "n_second": len(groups[0]), "n_second_baseline": len(groups[1])}
    for name, (values, baseline) in (("first", groups[2:]), ("second", groups[:2])):
        effect, low, high = welch_difference(values, baseline)
        row.update({f"{name}_effect": effect, f"{name}_effect_ci_low": low, f"{name}_effect_ci_high": high})
    row["change"] = row["second_effect"] - row["first_effect"]
    low = high = df = math.nan
    if all(len(group) >= 2 for group in groups):
        _, low, high, df = welch_contrast(groups, [1.0, -1.0, -1.0, 1.0])
    row.update({"change_ci_low": low, "change_ci_high": high, "change_df": df, "direction": direction_of(low, high)})
    return row
