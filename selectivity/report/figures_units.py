"""Figures about units and layers: SI distributions (figure 1) and SI vs depth (figure 3)."""
import math
from pathlib import Path

import numpy as np
import pandas as pd

from selectivity.report.style import (RC, SI_AXIS_LABEL, alpha_colours, plt, save_figure)
from selectivity.report.tables import is_constant_label

ECDF_POINTS = 201  # quantiles drawn per curve: keeps SVGs small for millions of units


def _conditions(frame: pd.DataFrame) -> list[tuple[str, float]]:
    """(alpha_label, alpha) pairs in plotting order: by alpha, then label."""
    pairs = frame[["alpha_label", "alpha"]].drop_duplicates().sort_values(["alpha", "alpha_label"])
    return list(pairs.itertuples(index=False, name=None))


def _legend_columns(count: int) -> int:
    return 1 if count <= 14 else 2


def si_distribution_pooled(units: pd.DataFrame, subtitle: str, out_dir: Path) -> list[Path]:
    """Figure 1a: box per alpha of every unit's SI, pooled over layers and seeds.

    Args:
        units: `tables.unit_selectivity` output.
        subtitle: "model on dataset, n = ..." for the title.
        out_dir: folder for the PNG and SVG.
    Returns:
        The written paths.
    """
    conditions = _conditions(units)
    colours = alpha_colours(alpha for _, alpha in conditions)
    samples = [units.loc[units["alpha_label"] == label, "si"].to_numpy() for label, _ in conditions]
    with plt.rc_context(RC):
        figure, ax = plt.subplots(figsize=(max(5.5, 0.45 * len(conditions) + 2), 3.6))
        # whiskers at min/max and no flier points: the SVG stays small for large networks
        boxes = ax.boxplot(samples, whis=(0, 100), showfliers=False, patch_artist=True,
                           showmeans=True, widths=0.6,
                           meanprops={"marker": "o", "markerfacecolor": "white",
                                      "markeredgecolor": "black", "markersize": 4},
                           medianprops={"color": "white", "linewidth": 1.5})
        for patch, (_, alpha) in zip(boxes["boxes"], conditions):
            patch.set_facecolor(colours[alpha])
        ax.set_xticks(range(1, len(conditions) + 1),
                      [label for label, _ in conditions], rotation=45 if len(conditions) > 9 else 0)
        ax.set_xlabel("alpha (condition)")
        ax.set_ylabel("per-unit class selectivity index (SI, 0-1)")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"Per-unit SI by alpha, pooled over layers and seeds\n{subtitle}; "
                     "box = quartiles, whiskers = min-max, white dot = mean")
        return save_figure(figure, out_dir, "fig1a_si_distribution_pooled")


def si_distribution_by_layer(units: pd.DataFrame, subtitle: str, out_dir: Path) -> list[Path]:
    """Figure 1b: per-layer small multiples, one SI ECDF per alpha (pooled over seeds)."""
    layers = units[["layer_index", "layer"]].drop_duplicates().sort_values("layer_index")
    conditions = _conditions(units)
    colours = alpha_colours(alpha for _, alpha in conditions)
    columns = min(4, len(layers))
    rows = math.ceil(len(layers) / columns)
    levels = np.linspace(0, 1, ECDF_POINTS)
    with plt.rc_context(RC):
        figure, axes = plt.subplots(rows, columns, figsize=(2.7 * columns + 1.5, 2.3 * rows + 0.8),
                                    sharex=True, sharey=True, squeeze=False)
        for ax, (layer_index, layer) in zip(axes.flat, layers.itertuples(index=False, name=None)):
            in_layer = units[units["layer_index"] == layer_index]
            for label, alpha in conditions:
                si = in_layer.loc[in_layer["alpha_label"] == label, "si"].to_numpy()
                if len(si):
                    style = "-" if is_constant_label(label) else "--"
                    ax.plot(np.quantile(si, levels), levels, style, color=colours[alpha],
                            linewidth=1.2, label=f"alpha={label}")
            ax.set_title(f"{layer_index}: {layer}", fontsize=8)
        for ax in axes.flat[len(layers):]:
            ax.set_visible(False)
        for ax in axes[-1]:
            ax.set_xlabel("unit SI (0-1)")
        for ax in axes[:, 0]:
            ax.set_ylabel("fraction of units")
        handles, labels = axes.flat[0].get_legend_handles_labels()
        figure.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5),
                      ncol=_legend_columns(len(labels)), title="alpha")
        figure.suptitle(f"Cumulative distribution of per-unit SI in each layer\n{subtitle}")
        figure.tight_layout()
        return save_figure(figure, out_dir, "fig1b_si_distribution_by_layer")


def si_by_depth(layer_table: pd.DataFrame, subtitle: str, out_dir: Path) -> list[Path]:
    """Figure 3: per-layer mean SI vs depth, one line per alpha (mean over seeds).

    Args:
        layer_table: `tables.layer_summary` output (needs mean_si_mean).
    """
    layers = layer_table[["layer_index", "layer"]].drop_duplicates().sort_values("layer_index")
    conditions = _conditions(layer_table)
    colours = alpha_colours(alpha for _, alpha in conditions)
    with plt.rc_context(RC):
        figure, ax = plt.subplots(figsize=(max(6.0, 0.35 * len(layers) + 3), 3.8))
        for label, alpha in conditions:
            rows = layer_table[layer_table["alpha_label"] == label].sort_values("layer_index")
            ax.plot(rows["layer_index"], rows["mean_si_mean"], "-" if is_constant_label(label) else "--",
                    marker="o", markersize=3, color=colours[alpha], label=f"alpha={label}")
        ax.set_xticks(layers["layer_index"], layers["layer"], rotation=60 if len(layers) > 6 else 0,
                      ha="right" if len(layers) > 6 else "center", fontsize=7)
        ax.set_xlabel("layer (depth order)")
        ax.set_ylabel(SI_AXIS_LABEL)
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), ncol=_legend_columns(len(conditions)),
                  title="alpha")
        ax.set_title(f"Layer mean SI vs depth (mean over seeds)\n{subtitle}")
        return save_figure(figure, out_dir, "fig3_si_by_depth")
