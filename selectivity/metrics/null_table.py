"""Per-unit metrics with label-shuffle nulls, and per-layer fractions of units above chance.

For each metric m in NULL_METRICS every unit gets: m (the value under the true labels),
m_null_mean (mean over the S shuffles), m_z = (m - null mean) / null std (ddof 1) and
m_p = (1 + #{shuffles with value >= m}) / (S + 1), the permutation p-value of Phipson &
Smyth (2010), never 0. A unit is above chance when m_z > Z_ABOVE_CHANCE (one-sided 5% under
a normal approximation of the null: with S shuffles the smallest p is 1 / (S + 1), too
coarse at S = 10 for a 5% test). A unit whose null has no spread (dead) has z NaN and is
never above chance. Lifetime sparseness does not depend on the labels, so a label shuffle
leaves it unchanged: it has no null.
"""
import numpy as np
import pandas as pd
import torch

from selectivity.metrics.shuffles import NULL_METRICS, ShuffledMetrics

Z_ABOVE_CHANCE = 1.6448536269514722  # scipy.stats.norm.ppf(0.95)


def compare_with_null(values: torch.Tensor) -> dict[str, np.ndarray]:
    """The true-label value and its null summary per unit.

    Args:
        values: [S+1, U]; row 0 under the true labels, rows 1..S under shuffles (S >= 2).
    Returns:
        {"value", "null_mean", "z", "p"}, each [U].
    """
    values = values.double().cpu().numpy()
    observed, null = values[0], values[1:]
    null_mean, null_std = null.mean(0), null.std(0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(null_std > 0, (observed - null_mean) / null_std, np.nan)
    p = (1 + (null >= observed).sum(0)) / (len(null) + 1)
    return {"value": observed, "null_mean": null_mean, "z": z, "p": p}


def shuffled_unit_table(stats: ShuffledMetrics) -> pd.DataFrame:
    """One row per unit (the unit_table's order): auc, mutual_information (bits),
    lifetime_sparseness, mean_activation and, with shuffles, each NULL_METRICS metric's
    null_mean, z and p."""
    columns = {
        "layer": [name for name, size in zip(stats.layer_names, stats.layer_sizes) for _ in range(size)],
        "unit": [unit for size in stats.layer_sizes for unit in range(size)],
        "auc": stats.values["auc"][0].numpy(),
        "mutual_information": stats.values["mutual_information"][0].numpy(),
        "lifetime_sparseness": stats.lifetime_sparseness.numpy(),
        "mean_activation": stats.mean_activation.numpy(),
    }
    if len(stats.labelings) > 1:
        for metric in NULL_METRICS:
            summary = compare_with_null(stats.values[metric])
            for key in ("null_mean", "z", "p"):
                columns[f"{metric}_{key}"] = summary[key]
    return pd.DataFrame(columns)


def chance_layer_summary(units: pd.DataFrame) -> pd.DataFrame:
    """Per layer (table order): mean auc, mutual_information, lifetime_sparseness and, when
    the table has nulls, `<metric>_above_chance`: the fraction of units with z > Z_ABOVE_CHANCE."""
    grouped = units.groupby("layer", sort=False)
    summary = pd.DataFrame({f"mean_{m}": grouped[m].mean() for m in ("auc", "mutual_information", "lifetime_sparseness")})
    for metric in NULL_METRICS:
        if f"{metric}_z" in units:
            above = units[f"{metric}_z"].to_numpy() > Z_ABOVE_CHANCE  # NaN compares False
            summary[f"{metric}_above_chance"] = pd.Series(above, index=units.index).groupby(units["layer"], sort=False).mean()
    return summary.reset_index()
