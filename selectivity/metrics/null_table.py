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

from selectivity.metrics.selectivity_index import preferred_class, selectivity_index
from selectivity.metrics.shuffles import ShuffledStatistics
from selectivity.metrics.unit_metrics import (d_prime_from_moments, lifetime_sparseness, mutual_information_bits,
                                              preferred_class_auc)

NULL_METRICS = ("si", "d_prime", "auc", "mutual_information")
Z_ABOVE_CHANCE = 1.6448536269514722  # scipy.stats.norm.ppf(0.95)


def labeling_metrics(stats: ShuffledStatistics) -> dict[str, torch.Tensor]:
    """{metric: [S+1, U]} of every NULL_METRICS metric under each labeling (row 0 = true labels)."""
    labelings, classes, units = stats.means.shape
    flat_means = stats.means.permute(1, 0, 2).reshape(classes, labelings * units)  # [K, (S+1) U]
    flat_variances = stats.variances.permute(1, 0, 2).reshape(classes, labelings * units)
    counts = stats.counts.to(torch.float64)
    preferred = preferred_class(flat_means, counts)  # [(S+1) U]; re-chosen under every shuffle
    return {
        "si": selectivity_index(flat_means, counts).view(labelings, units),
        "d_prime": d_prime_from_moments(flat_means, flat_variances, counts, preferred).view(labelings, units),
        "auc": preferred_class_auc(stats.histograms, preferred.view(labelings, units)),
        "mutual_information": mutual_information_bits(stats.histograms).to(stats.means.device),
    }


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


def shuffled_unit_table(stats: ShuffledStatistics) -> pd.DataFrame:
    """One row per unit (the unit_table's order): auc, mutual_information (bits),
    lifetime_sparseness, mean_activation, histogram_overflow and, with shuffles, each
    NULL_METRICS metric's null_mean, z and p."""
    metrics = labeling_metrics(stats)
    counts = stats.counts.to(torch.float64).view(-1, 1)  # [K, 1]
    total = (stats.means[0] * counts).sum(0)  # [U] sums over every input
    total_square = ((stats.variances[0] + stats.means[0].square()) * counts).sum(0)
    num_inputs = int(stats.counts.sum())
    columns = {
        "layer": [name for name, size in zip(stats.layer_names, stats.layer_sizes) for _ in range(size)],
        "unit": [unit for size in stats.layer_sizes for unit in range(size)],
        "auc": metrics["auc"][0].cpu().numpy(),
        "mutual_information": metrics["mutual_information"][0].cpu().numpy(),
        "lifetime_sparseness": lifetime_sparseness(total, total_square, max(num_inputs, 2)).cpu().numpy(),
        "mean_activation": (total / max(num_inputs, 1)).cpu().numpy(),
        "histogram_overflow": (stats.overflow.to(torch.float64) / max(num_inputs, 1)).cpu().numpy(),
    }
    if stats.means.shape[0] > 1:
        for metric in NULL_METRICS:
            summary = compare_with_null(metrics[metric])
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
