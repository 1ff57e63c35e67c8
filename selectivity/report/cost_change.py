"""Did the cost of an alpha change between two sweeps? E.g. a 6- and an 18-epoch schedule, or two models.

Within one sweep, an alpha's effect is mean(metric at alpha) - mean(metric at alpha = 0) over
seeds. Between sweeps A (first) and B (second) the question is whether that effect moved:

    change = (mean B_alpha - mean B_0) - (mean A_alpha - mean A_0)

a difference of differences over four independent groups of seeds, with the Welch 95% CI of
that contrast (comparison.welch_contrast). For test accuracy at a negative alpha whose effect
is a loss, a change that is "higher" (CI above 0) means the loss shrank in B.

A change has one cause only if the sweeps differ in one thing: `compare_sweeps` refuses two
sweeps that differ, or are not recorded to agree, in anything but the factors the comparison is
about (report.provenance: model, dataset, epochs, recipe, precision, machine), unless the caller
allows confounds; then every row names them.
"""
import math

import pandas as pd

from selectivity.errors import SelectivityError
from selectivity.report.comparison import direction_of, seeds_to_exclude, welch_contrast, welch_difference
from selectivity.report.provenance import VARIABLE, confounds, sweep_factors
from selectivity.report.tables import run_network_table

BASELINE = "constant 0.0"  # the condition key of alpha = 0
COMPARED_METRICS = ("test_accuracy", "mean_si")


def cost_change(first: pd.DataFrame, second: pd.DataFrame, metrics=COMPARED_METRICS) -> pd.DataFrame:
    """Each condition's effect (minus alpha = 0) in two sweeps and how it changed from the first to the second.

    Args:
        first, second: tidy results tables (load_results / prepare_table), one per sweep.
        metrics: network metrics to compare; each must be in both tables.
    Returns:
        One row per condition in both tables other than alpha = 0 (a constant alpha matched by its
        value, a schedule by its label; `alpha_label` as the first table writes it), sorted by alpha,
        and per metric: `metric`, `alpha_label`, `alpha`, the seeds of the four groups
        (`n_first`, `n_first_baseline`, `n_second`, `n_second_baseline`), each sweep's effect
        (`first_effect`, `second_effect`) with its Welch 95% CI (`..._ci_low`, `..._ci_high`), the
        `change` (second minus first effect) with its CI and Welch df, and `direction`
        (higher / lower / undetermined: whether the change's CI excludes 0), and for an undetermined
        change `seeds_needed`, the seeds in each of the four groups that would decide it if the change
        and the spreads stayed as they are (comparison.seeds_to_exclude; NaN otherwise). Intervals are NaN
        when a group has fewer than 2 seeds. Metrics are in the table's units (accuracy as a fraction).
    Raises:
        SelectivityError: a table without alpha = 0 or a metric, no condition in common, or runs in common.
    """
    runs = {name: _with_condition_keys(run_network_table(table)) for name, table in (("first", first),
                                                                                    ("second", second))}
    shared = sorted(set(runs["first"]["run_id"]) & set(runs["second"]["run_id"]))
    if shared:
        raise SelectivityError(f"the two results tables share {len(shared)} runs (e.g. {shared[0]}): expected two "
                               "separate sweeps, since the interval assumes independent seeds")
    for name, table in runs.items():
        if BASELINE not in set(table["condition"]):
            raise SelectivityError(f"the {name} results table has no alpha = 0 runs: expected alpha = 0 in both "
                                   "tables, since each alpha's effect is measured against it")
        missing = [metric for metric in metrics if metric not in table.columns]
        if missing:
            raise SelectivityError(f"the {name} results table has no network {', '.join(missing)} rows: expected "
                                   f"one of {sorted(c for c in table.columns if c not in ('run_id', 'seed'))}")
    keys = set(runs["first"]["condition"]) & set(runs["second"]["condition"]) - {BASELINE}
    if not keys:
        raise SelectivityError("the two results tables share no condition besides alpha = 0: expected the same "
                               f"alpha in both (first: {sorted(set(runs['first']['alpha_label']))}, "
                               f"second: {sorted(set(runs['second']['alpha_label']))})")
    named = runs["first"].drop_duplicates("condition").set_index("condition")
    rows = []
    for metric in metrics:
        for key in sorted(keys, key=lambda key: (named.loc[key, "alpha"], key)):
            rows.append({"metric": metric, "alpha_label": named.loc[key, "alpha_label"],
                         "alpha": named.loc[key, "alpha"], **_change(runs["first"], runs["second"], metric, key)})
    return pd.DataFrame(rows)


def _with_condition_keys(runs: pd.DataFrame) -> pd.DataFrame:
    """`runs` plus `condition`: a constant alpha by its value ("constant -10.0" whether labelled "-10" or
    "-10.0"), a schedule by its label ("schedule -10x2,0")."""
    keys = [f"constant {float(alpha) + 0.0!r}" if constant else f"schedule {label}"  # + 0.0: -0.0 is 0.0
            for alpha, constant, label in zip(runs["alpha"], runs["constant"], runs["alpha_label"])]
    return runs.assign(condition=keys)


def _values(runs: pd.DataFrame, metric: str, key: str) -> pd.Series:
    return runs.loc[runs["condition"] == key, metric].dropna()


def _change(first: pd.DataFrame, second: pd.DataFrame, metric: str, key: str) -> dict:
    groups = [_values(second, metric, key), _values(second, metric, BASELINE),
              _values(first, metric, key), _values(first, metric, BASELINE)]
    row = {"n_first": len(groups[2]), "n_first_baseline": len(groups[3]),
           "n_second": len(groups[0]), "n_second_baseline": len(groups[1])}
    for name, (values, baseline) in (("first", groups[2:]), ("second", groups[:2])):
        effect, low, high = welch_difference(values, baseline)
        row.update({f"{name}_effect": effect, f"{name}_effect_ci_low": low, f"{name}_effect_ci_high": high})
    row["change"] = row["second_effect"] - row["first_effect"]
    low = high = df = seeds_needed = math.nan
    if all(len(group) >= 2 for group in groups):
        _, low, high, df = welch_contrast(groups, [1.0, -1.0, -1.0, 1.0])
    direction = direction_of(low, high)
    if direction == "undetermined":  # a group with < 2 seeds has a NaN variance: seeds_needed is NaN
        seeds_needed = seeds_to_exclude(row["change"], [group.var(ddof=1) for group in groups],
                                        min(len(group) for group in groups) + 1)
    row.update({"change_ci_low": low, "change_ci_high": high, "change_df": df, "direction": direction,
                "seeds_needed": seeds_needed})
    return row


def compare_sweeps(first: pd.DataFrame, second: pd.DataFrame, first_provenance: pd.DataFrame | None = None,
                   second_provenance: pd.DataFrame | None = None, varied=(), allow_confounds: bool = False,
                   metrics=COMPARED_METRICS) -> pd.DataFrame:
    """`cost_change`, refused when the sweeps may differ in more than the factors `varied`.

    Args:
        first, second: tidy results tables.
        first_provenance, second_provenance: their provenance.csv tables (None: not recorded).
        varied: the factors the comparison is about (provenance.VARIABLE), e.g. ("epochs",).
        allow_confounds: compare even so; each row then names the confounds.
        metrics: as for cost_change.
    Returns:
        cost_change's table plus `varied` and `confounds` ("; "-joined phrases, or "none").
    Raises:
        SelectivityError: an unknown factor, or confounds without allow_confounds.
    """
    unknown = [name for name in varied if name not in VARIABLE]
    if unknown:
        raise SelectivityError(f"--vary {unknown[0]!r} is not a factor: expected one of {', '.join(VARIABLE)}")
    found = confounds(sweep_factors(first, first_provenance), sweep_factors(second, second_provenance), varied)
    if found and not allow_confounds:
        raise SelectivityError(f"a change between these sweeps has more than one possible cause ({'; '.join(found)}):"
                               " name what the comparison is about with --vary, or pass --allow-confounds to "
                               "compare anyway with the confounds named")
    return cost_change(first, second, metrics).assign(varied=", ".join(varied) or "none",
                                                      confounds="; ".join(found) or "none")
