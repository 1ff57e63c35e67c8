"""The off-axis control's rows -> per-method ratios with CIs, side by side, and a verdict per layer.

The rows are those of `selectivity.sweep.off_axis` (docs/cca.md): per condition and layer,
`<method>_ratio` and its 95% CI bounds `<method>_ratio_ci_low` / `_ci_high`, pooled over
seeds. Older tables with per-run `pwcca_ratio` rows and no bounds still load (averaged
over seeds, no CI, verdict "undetermined").
"""
import numpy as np
import pandas as pd

METHODS = ("svcca", "pwcca", "pwcca_svcca", "cka")
METHOD_LABELS = {"svcca": "SVCCA", "pwcca": "PWCCA (equation)", "pwcca_svcca": "PWCCA (google/svcca code)",
                 "cka": "linear CKA"}
FIELDS = {"": "ratio", "_ci_low": "ci_low", "_ci_high": "ci_high", "_pairs": "pairs",
          "_baseline_pairs": "baseline_pairs"}
NOT_ROTATED = "not merely rotated"
WITHIN_SEEDS = "no change beyond seed-to-seed"
DISAGREE = "methods disagree"
CLOSER = "closer than seed-to-seed"  # every CI below 1: more alike than two alpha = 0 seeds
UNDETERMINED = "undetermined"


def off_axis_summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per condition x layer x method with ratio, ci_low, ci_high, pairs, baseline_pairs.

    Args:
        table: the tidy table (after `tables.prepare_table`).
    Returns:
        Sorted by alpha, label, depth and METHODS order; empty when no ratio rows exist.
    """
    metric_names = {f"{method}_ratio{suffix}": (method, field) for method in METHODS for suffix, field in FIELDS.items()}
    rows = table[(table["unit"] == -1) & (table["layer"] != "network") & table["metric"].isin(metric_names)]
    if rows.empty:
        return pd.DataFrame()
    rows = rows.assign(method=rows["metric"].map(lambda m: metric_names[m][0]),
                       field=rows["metric"].map(lambda m: metric_names[m][1]))
    wide = rows.pivot_table(index=["alpha_label", "alpha", "layer", "layer_index", "method"], columns="field",
                            values="value", aggfunc="mean").reset_index()
    wide.columns.name = None
    for field in FIELDS.values():
        if field not in wide.columns:
            wide[field] = np.nan
    wide["method_order"] = wide["method"].map(METHODS.index)
    wide = wide.sort_values(["alpha", "alpha_label", "layer_index", "method_order"])
    return wide.drop(columns="method_order").reset_index(drop=True)


def verdict(intervals: dict[str, tuple[float, float]]) -> str:
    """Whether all methods' CIs agree for one condition and layer.

    Args:
        intervals: method -> (ci_low, ci_high) for the methods measured.
    Returns:
        NOT_ROTATED when every method of METHODS has a CI above 1; WITHIN_SEEDS when every
        CI contains 1; CLOSER when every CI lies below 1 (closer than two unregularized seeds);
        DISAGREE otherwise, naming the methods above and below 1; UNDETERMINED (naming what is
        missing) when a method or its CI is absent.
    """
    missing = [m for m in METHODS if m not in intervals or np.isnan(intervals[m][0]) or np.isnan(intervals[m][1])]
    if missing:
        return f"{UNDETERMINED} (no CI for {', '.join(missing)})"
    above = [m for m in METHODS if intervals[m][0] > 1]
    below = [m for m in METHODS if intervals[m][1] < 1]
    if len(above) == len(METHODS):
        return NOT_ROTATED
    if len(below) == len(METHODS):
        return CLOSER
    if not above and not below:
        return WITHIN_SEEDS
    parts = ([f"CI above 1 for {', '.join(above)}"] if above else []) + (
        [f"below 1 for {', '.join(below)}"] if below else [])
    return f"{DISAGREE} ({'; '.join(parts)} only)"


def off_axis_by_layer(summary: pd.DataFrame) -> pd.DataFrame:
    """Per condition x layer: every method's ratio and CI side by side, and the verdict.

    Returns:
        Columns alpha_label, alpha, layer, layer_index, `<method>_ratio`, `<method>_ci_low`,
        `<method>_ci_high` for each method in METHODS, verdict.
    """
    rows = []
    for (label, alpha, layer, layer_index), group in summary.groupby(
            ["alpha_label", "alpha", "layer", "layer_index"], sort=False):
        row = {"alpha_label": label, "alpha": alpha, "layer": layer, "layer_index": layer_index}
        by_method = group.set_index("method")
        for method in METHODS:
            for field in ("ratio", "ci_low", "ci_high"):
                row[f"{method}_{field}"] = by_method.at[method, field] if method in by_method.index else np.nan
        row["verdict"] = verdict({m: (r.ci_low, r.ci_high) for m, r in by_method.iterrows()})
        rows.append(row)
    return pd.DataFrame(rows)


def _ratio_cell(ratio: float, low: float, high: float) -> str:
    if np.isnan(ratio):
        return "n/a"
    return f"{ratio:.2f}" if np.isnan(low) else f"{ratio:.2f} [{low:.2f}, {high:.2f}]"


def off_axis_rows(by_layer: pd.DataFrame) -> list[list[str]]:
    """The per-layer table as display cells (header first): ratio [95% CI] per method, verdict."""
    rows = [["alpha", "layer"] + [METHOD_LABELS[m] for m in METHODS] + ["verdict"]]
    for row in by_layer.itertuples(index=False):
        cells = [_ratio_cell(getattr(row, f"{m}_ratio"), getattr(row, f"{m}_ci_low"), getattr(row, f"{m}_ci_high"))
                 for m in METHODS]
        rows.append([row.alpha_label, f"{row.layer_index}: {row.layer}"] + cells + [row.verdict])
    return rows
