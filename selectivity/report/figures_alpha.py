"""Figures against alpha: SI and accuracy (figure 2), dead units (4), off-axis control (5).

Each condition is a mean over seeds with a 95% t-CI error bar (none with one seed); faint
dots are the individual seeds. Constant alphas are joined by a grey line; schedules are
drawn as diamonds at their final alpha and not joined.
"""
from pathlib import Path

import numpy as np
import pandas as pd

from selectivity.report.style import (ACCURACY_AXIS_LABEL, RC, SCHEDULE_MARKER, SI_AXIS_LABEL,
                                      alpha_colours, layer_colours, plt, save_figure,
                                      use_alpha_axis)


def _error(half_width: float, scale: float):
    """matplotlib yerr/xerr for one point: None (no bar) when the CI is undefined."""
    return None if np.isnan(half_width) else half_width * scale


def _annotate_counts(ax, xs, ys, counts) -> None:
    """Write n beside the points whose seed count differs from the usual one (titles give the range)."""
    counts = list(counts)
    usual = max(set(counts), key=counts.count)
    for x, y, count in zip(xs, ys, counts):
        if count != usual:
            ax.annotate(f"n={count}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)


def _plot_metric_vs_alpha(ax, runs, conditions, metric: str, scale: float) -> None:
    """Seeds as dots, mean +- CI per condition, grey line through the constant alphas."""
    colours = alpha_colours(conditions["alpha"])
    ax.scatter(runs["alpha"], runs[metric] * scale, s=7, alpha=0.35, linewidths=0,
               color=[colours[alpha] for alpha in runs["alpha"]], zorder=2)
    constant = conditions[conditions["constant"]]
    ax.plot(constant["alpha"], constant[f"{metric}_mean"] * scale, color="0.55", linewidth=1, zorder=1)
    for row in conditions.itertuples(index=False):
        ax.errorbar(row.alpha, getattr(row, f"{metric}_mean") * scale,
                    yerr=_error(getattr(row, f"{metric}_ci95"), scale), color=colours[row.alpha],
                    marker="o" if row.constant else SCHEDULE_MARKER, markersize=4, capsize=2, zorder=3)
    _annotate_counts(ax, conditions["alpha"], conditions[f"{metric}_mean"] * scale, conditions["n_seeds"])
    use_alpha_axis(ax)


def _clamp_to_range(ax, axis: str, low: float, high: float) -> None:
    """Cut the view at a quantity's possible range: with few seeds a t-interval can reach
    below 0% accuracy or above SI 1, and would otherwise stretch the axis past it."""
    margin = 0.03 * (high - low)
    get, set_ = (ax.get_ylim, ax.set_ylim) if axis == "y" else (ax.get_xlim, ax.set_xlim)
    current_low, current_high = get()
    set_(max(current_low, low - margin), min(current_high, high + margin))


def _plot_accuracy_vs_si(ax, runs, conditions) -> None:
    """Accuracy against mean SI; each condition's error bars are its CIs on both axes."""
    colours = alpha_colours(conditions["alpha"])
    ax.scatter(runs["mean_si"], runs["test_accuracy"] * 100, s=7, alpha=0.35, linewidths=0,
               color=[colours[alpha] for alpha in runs["alpha"]], zorder=2)
    constant = conditions[conditions["constant"]]
    ax.plot(constant["mean_si_mean"], constant["test_accuracy_mean"] * 100, color="0.55",
            linewidth=1, zorder=1)
    for row in conditions.itertuples(index=False):
        ax.errorbar(row.mean_si_mean, row.test_accuracy_mean * 100,
                    xerr=_error(row.mean_si_ci95, 1), yerr=_error(row.test_accuracy_ci95, 100),
                    color=colours[row.alpha], marker="o" if row.constant else SCHEDULE_MARKER,
                    markersize=4, capsize=2, zorder=3, label=f"alpha={row.alpha_label}")
    ax.set_xlabel(SI_AXIS_LABEL)
    ax.set_ylabel(ACCURACY_AXIS_LABEL)


def si_and_accuracy_vs_alpha(runs: pd.DataFrame, conditions: pd.DataFrame, subtitle: str,
                             out_dir: Path) -> list[Path]:
    """Figure 2: mean SI vs alpha, test accuracy vs alpha, test accuracy vs mean SI.

    Args:
        runs: `tables.run_network_table` output (one row per run).
        conditions: `tables.condition_summary` output.
        subtitle: "model on dataset, n = ..." for the title.
        out_dir: folder for the PNG and SVG.
    Returns:
        The written paths.
    """
    with plt.rc_context(RC):
        # 2 x 2: three panels and a fourth cell for the alpha legend, so no panel is squeezed
        figure, axes = plt.subplots(2, 2, figsize=(11, 8))
        (si_ax, accuracy_ax), (tradeoff_ax, legend_ax) = axes
        _plot_metric_vs_alpha(si_ax, runs, conditions, "mean_si", 1)
        si_ax.set_ylabel(SI_AXIS_LABEL)
        _clamp_to_range(si_ax, "y", 0, 1)
        si_ax.set_title("Test-set mean SI vs alpha")
        _plot_metric_vs_alpha(accuracy_ax, runs, conditions, "test_accuracy", 100)
        accuracy_ax.set_ylabel(ACCURACY_AXIS_LABEL)
        _clamp_to_range(accuracy_ax, "y", 0, 100)
        accuracy_ax.set_title("Test accuracy vs alpha")
        _plot_accuracy_vs_si(tradeoff_ax, runs, conditions)
        _clamp_to_range(tradeoff_ax, "x", 0, 1)
        _clamp_to_range(tradeoff_ax, "y", 0, 100)
        tradeoff_ax.set_title("Test accuracy vs mean SI")
        legend_ax.axis("off")
        legend_ax.legend(*tradeoff_ax.get_legend_handles_labels(), loc="center", title="alpha",
                         ncol=1 if len(conditions) <= 14 else 2)
        figure.suptitle(f"Selectivity and accuracy across alpha: mean with 95% CI (t) across seeds, "
                        f"dots = seeds\n{subtitle}")
        figure.tight_layout()
        return save_figure(figure, out_dir, "fig2_si_accuracy_vs_alpha")


def dead_fraction_vs_alpha(runs: pd.DataFrame, conditions: pd.DataFrame, subtitle: str,
                           out_dir: Path) -> list[Path]:
    """Figure 4: fraction of dead units (never active on the test set) vs alpha."""
    with plt.rc_context(RC):
        figure, ax = plt.subplots(figsize=(6, 3.6))
        _plot_metric_vs_alpha(ax, runs, conditions, "dead_fraction", 100)
        ax.set_ylabel("dead units (% of units)")
        _clamp_to_range(ax, "y", 0, 100)
        ax.set_title(f"Dead-unit fraction vs alpha: mean with 95% CI across seeds\n{subtitle}")
        return save_figure(figure, out_dir, "fig4_dead_fraction_vs_alpha")


def _plot_ratio_panel(ax, rows: pd.DataFrame, colours: dict) -> None:
    """One method: ratio vs alpha, one line per layer, 95% CI bars (asymmetric), dashed 1."""
    for (layer_index, layer), layer_rows in rows.groupby(["layer_index", "layer"], sort=True):
        layer_rows = layer_rows.sort_values("alpha")
        # no ratio exists at alpha = 0: draw each sign on its own so no line crosses the gap
        for sign_rows in (layer_rows[layer_rows["alpha"] < 0], layer_rows[layer_rows["alpha"] > 0]):
            ax.plot(sign_rows["alpha"], sign_rows["ratio"], marker="o", markersize=3, color=colours[layer_index])
        ax.plot([], [], marker="o", markersize=3, color=colours[layer_index], label=f"{layer_index}: {layer}")
        with_ci = layer_rows.dropna(subset=["ci_low", "ci_high"])
        ax.errorbar(with_ci["alpha"], with_ci["ratio"], linestyle="none", color=colours[layer_index],
                    yerr=[with_ci["ratio"] - with_ci["ci_low"], with_ci["ci_high"] - with_ci["ratio"]],
                    capsize=2, linewidth=0.8)
    ax.axhline(1.0, color="black", linestyle="--", linewidth=1, label="1 = as different as two alpha=0 seeds")
    use_alpha_axis(ax)


def cca_ratio_vs_alpha(summary: pd.DataFrame, methods: dict[str, str], subtitle: str, note: str | None,
                       out_dir: Path) -> list[Path]:
    """Figure 5: off-axis control, one panel per similarity method side by side.

    Each panel: per layer, distance ratio (regularized vs alpha=0) / (alpha=0 vs alpha=0)
    against alpha, with its 95% CI.

    Args:
        summary: `off_axis_tables.off_axis_summary` output (one row per condition, layer, method).
        methods: method -> panel title, in panel order; methods without rows are left out.
        note: e.g. how the activations were subsampled; shown under the title when given.
    """
    present = [method for method in methods if (summary["method"] == method).any()]
    colours = layer_colours(summary["layer_index"])
    with plt.rc_context(RC):
        columns = min(len(present), 2)  # four panels as 2 x 2, readable on a page
        rows = -(-len(present) // columns)
        # own y range per panel: one method's wide CIs (CKA's, often) would flatten the others
        figure, axes = plt.subplots(rows, columns, figsize=(5 * columns + 3, 3.6 * rows + 0.8), squeeze=False)
        for ax, method in zip(axes.flat, present):
            _plot_ratio_panel(ax, summary[summary["method"] == method], colours)
            ax.set_title(methods[method])
        for ax in list(axes.flat)[len(present):]:
            ax.axis("off")
        for row_axes in axes:
            row_axes[0].set_ylabel("distance ratio\n(reg. vs alpha=0) / (alpha=0 vs alpha=0)")
        axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), title="layer",
                           ncol=1 if summary["layer"].nunique() <= 14 else 2)
        title = ("Off-axis control: is selectivity only rotated away from the units? "
                 f"Ratio with 95% CI per method\n{subtitle}")
        figure.suptitle(title + (f"\n{note}" if note else ""))
        figure.tight_layout()
        return save_figure(figure, out_dir, "fig5_cca_ratio_vs_alpha")
