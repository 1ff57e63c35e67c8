"""Report sections beyond the paper: corruptions, attacks, dimensionality vs alpha, and alpha schedules.

Each figure plots its quantity against alpha (symlog, mean with a 95% t-CI across seeds;
schedules as diamonds at their final alpha) beside the test-set mean SI, from the rows
of the post-sweep analyses `corruptions`, `attacks`, `dimensionality` (metric names as in
docs/robustness.md). A section whose rows are absent is left out of the page.
"""
from pathlib import Path

import numpy as np
import pandas as pd

from selectivity.report.page import FigureEntry
from selectivity.report.robustness_tables import (DIMENSIONALITY_METRICS, attack_columns, corruption_names,
                                                  corruption_overall_columns)
from selectivity.report.style import (ACCURACY_AXIS_LABEL, RC, SCHEDULE_MARKER, SI_AXIS_LABEL, layer_colours, plt,
                                      save_figure, use_alpha_axis)
from selectivity.report.tables import is_constant_label

CI = ("Mean with 95% CI (t) across seeds; diamonds = alpha schedules, at their final alpha. Each condition "
      "minus alpha = 0, with a Welch 95% CI: robustness_vs_baseline.csv.")


def _plot_vs_alpha(ax, summary: pd.DataFrame, column: str, colour, label: str | None, scale: float = 1.0,
                   linestyle: str = "-") -> None:
    """Constant alphas joined by a line with CI bars; schedules as unjoined diamonds."""
    summary = summary.sort_values("alpha")
    constant = summary[summary["constant"]]
    ax.plot(constant["alpha"], constant[f"{column}_mean"] * scale, color=colour, linestyle=linestyle, marker="o",
            markersize=3, label=label)
    for row in summary.to_dict("records"):  # metric names hold ':', which itertuples would rename
        half_width = row[f"{column}_ci95"]
        ax.errorbar(row["alpha"], row[f"{column}_mean"] * scale,
                    yerr=None if np.isnan(half_width) else half_width * scale, color=colour, capsize=2,
                    marker="o" if row["constant"] else SCHEDULE_MARKER, markersize=3 if row["constant"] else 5,
                    linewidth=0.8)
    use_alpha_axis(ax)


def _clamp(ax, low: float, high: float | None = None) -> None:
    """Cut the y view at the quantity's range: a 2-seed t-interval can reach below 0 accuracy or dimensions."""
    bottom, top = ax.get_ylim()
    ax.set_ylim(max(bottom, low), top if high is None else min(top, high))


def _si_panel(ax, conditions: pd.DataFrame) -> None:
    _plot_vs_alpha(ax, conditions, "mean_si", "0.2", None)
    _clamp(ax, -0.03, 1.03)
    ax.set_ylabel(SI_AXIS_LABEL)
    ax.set_title("Test-set mean SI vs alpha")


def _colours(count: int, name: str = "tab10") -> list:
    colour_map = plt.get_cmap(name)
    return [colour_map(index % 10) for index in range(count)]


def corruption_figure(runs, summary, conditions, subtitle: str, out_dir: Path) -> FigureEntry:
    heading = "R1. Common corruptions: accuracy vs alpha"
    if summary.empty:
        return FigureEntry(heading, "", skipped="no corruption rows (the corruptions analysis was not run).")
    overall, names = corruption_overall_columns(runs), corruption_names(runs)
    with plt.rc_context(RC):
        figure, (mean_ax, each_ax, si_ax) = plt.subplots(1, 3, figsize=(16, 4.2))
        for column, colour, label in zip(overall, ("tab:red", "0.4"), ("mean over corruptions", "clean (same images)")):
            _plot_vs_alpha(mean_ax, summary, column, colour, label, 100)
        _clamp(mean_ax, -3, 103)
        _clamp(each_ax, -3, 103)
        mean_ax.set_ylabel(ACCURACY_AXIS_LABEL)
        mean_ax.set_title("Mean corruption accuracy (all corruptions x severities)")
        mean_ax.legend()
        for name, colour in zip(names, _colours(len(names))):
            _plot_vs_alpha(each_ax, summary, name, colour, name, 100)
        each_ax.set_ylabel("accuracy, mean over severities (%)")
        each_ax.set_title("Per corruption")
        each_ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5))
        _si_panel(si_ax, conditions)
        figure.suptitle(f"Average-case robustness: common corruptions\n{subtitle}")
        figure.tight_layout()
        paths = save_figure(figure, out_dir, "figR1_corruptions_vs_alpha")
    caption = ("Test accuracy under common corruptions (CIFAR-10-C / Tiny-ImageNet-C parameters, 5 severities; "
               "generated images approximate the published files) against alpha, beside mean SI. " + CI)
    return FigureEntry(heading, caption, *paths)


def attack_figure(runs, summary, conditions, subtitle: str, out_dir: Path) -> FigureEntry:
    heading = "R2. White-box attacks: accuracy vs alpha and eps"
    attacks = [a for a in ("pgd", "fgsm") if attack_columns(runs, a)]
    if not attacks or summary.empty:
        return FigureEntry(heading, "", skipped="no attack rows (the attacks analysis was not run).")
    with plt.rc_context(RC):
        figure, axes = plt.subplots(1, len(attacks) + 2, figsize=(5.2 * (len(attacks) + 2), 4.2))
        for ax, name in zip(axes, attacks):
            columns = attack_columns(runs, name)
            for (eps, column), colour in zip(columns, _colours(len(columns))):
                _plot_vs_alpha(ax, summary, column, colour, f"eps = {eps:g}/255", 100)
            _clamp(ax, -3, 103)
            ax.set_ylabel(ACCURACY_AXIS_LABEL)
            ax.set_title(f"{name.upper()} accuracy vs alpha")
            ax.legend()
        eps_ax = axes[len(attacks)]
        columns = attack_columns(runs, attacks[0])
        colour_map = plt.get_cmap("coolwarm")
        ordered = summary.sort_values("alpha").reset_index(drop=True)
        for index, row in ordered.iterrows():
            eps = [e for e, _ in columns]
            means = [row[f"{c}_mean"] * 100 for _, c in columns]
            errors = [0 if np.isnan(row[f"{c}_ci95"]) else row[f"{c}_ci95"] * 100 for _, c in columns]
            eps_ax.errorbar(eps, means, yerr=errors, marker="o" if row["constant"] else SCHEDULE_MARKER,
                            markersize=3, capsize=2, color=colour_map(index / max(len(ordered) - 1, 1)),
                            label=f"alpha={row['alpha_label']}")
        _clamp(eps_ax, -3, 103)
        eps_ax.set_xlabel("eps (x 1/255, L-inf, pixel scale)")
        eps_ax.set_ylabel(ACCURACY_AXIS_LABEL)
        eps_ax.set_title(f"{attacks[0].upper()} accuracy vs eps, per alpha")
        eps_ax.legend(fontsize=7)
        _si_panel(axes[-1], conditions)
        figure.suptitle(f"Worst-case robustness: white-box L-inf attacks (eval mode, fp32)\n{subtitle}")
        figure.tight_layout()
        paths = save_figure(figure, out_dir, "figR2_attacks_vs_alpha")
    caption = "Test accuracy under FGSM and PGD at each eps against alpha, and against eps per alpha. " + CI
    return FigureEntry(heading, caption, *paths)


def dimensionality_figure(summary, conditions, subtitle: str, out_dir: Path) -> FigureEntry:
    heading = "R3. Dimensionality per layer vs alpha"
    if summary.empty:
        return FigureEntry(heading, "", skipped="no dimensionality rows (the analysis was not run).")
    metrics = [metric for metric in DIMENSIONALITY_METRICS if f"{metric}_mean" in summary]
    titles = {"dim_pr": "Participation ratio of test activations", "dim_pcs": "PCs for the variance threshold",
              "perturbation_dim_pr": "Participation ratio of the perturbation's change",
              "perturbation_dim_pcs": "PCs of the perturbation's change"}
    colours = layer_colours(summary["layer_index"])
    with plt.rc_context(RC):
        figure, axes = plt.subplots(1, len(metrics) + 1, figsize=(4.6 * (len(metrics) + 1), 4.2))
        for ax, metric in zip(axes, metrics):
            for (layer_index, layer), rows in summary.groupby(["layer_index", "layer"], sort=True):
                _plot_vs_alpha(ax, rows.assign(constant=rows["alpha_label"].map(is_constant_label)), metric,
                               colours[layer_index], f"{layer_index}: {layer}")
            _clamp(ax, 0)
            ax.set_ylabel("dimensions")
            ax.set_title(titles[metric])
        axes[len(metrics) - 1].legend(loc="center left", bbox_to_anchor=(1.01, 0.5), title="layer", fontsize=7)
        _si_panel(axes[-1], conditions)
        figure.suptitle(f"Dimensionality of each layer's representation (shallow = purple, deep = yellow)\n{subtitle}")
        figure.tight_layout()
        paths = save_figure(figure, out_dir, "figR3_dimensionality_vs_alpha")
    caption = ("Per layer: participation ratio (sum of covariance eigenvalues squared over sum of squares) and "
               "principal components for the variance threshold of test activations, and of the change a "
               "perturbation causes (perturbed minus clean). " + CI)
    return FigureEntry(heading, caption, *paths)


def schedule_figure(comparison, subtitle: str, out_dir: Path) -> FigureEntry:
    heading = "S. Alpha schedules vs constant alpha"
    if comparison.empty:
        return FigureEntry(heading, "", skipped="the sweep has no alpha schedules.")
    with plt.rc_context(RC):
        figure, axes = plt.subplots(1, 2, figsize=(12, 4.2))
        labels = [f"{row.alpha_label}" + ("" if row.kind == "constant" else " (schedule)")
                  for row in comparison.itertuples()]
        positions = np.arange(len(comparison))
        for ax, metric, scale, label in ((axes[0], "test_accuracy", 100, ACCURACY_AXIS_LABEL),
                                         (axes[1], "mean_si", 1, SI_AXIS_LABEL)):
            for position, row in zip(positions, comparison.itertuples()):
                half_width = getattr(row, f"{metric}_ci95")
                ax.errorbar(position, getattr(row, f"{metric}_mean") * scale,
                            yerr=None if np.isnan(half_width) else half_width * scale, capsize=3,
                            marker="o" if row.kind == "constant" else SCHEDULE_MARKER, markersize=6,
                            color="0.3" if row.kind == "constant" else "tab:purple")
            ax.set_xticks(positions, labels, rotation=30, ha="right")
            ax.set_ylabel(label)
            ax.set_xlabel("alpha (constant) or schedule (VALUExEPOCHS,...)")
        axes[0].set_title("Final test accuracy")
        axes[1].set_title("Final test-set mean SI")
        figure.suptitle(f"Early-training alpha schedules beside the constant alphas they switch between\n{subtitle}")
        figure.tight_layout()
        paths = save_figure(figure, out_dir, "figS_schedules_vs_constant")
    caption = ("Each schedule (diamond) beside the constant-alpha runs of the values it uses (circles): final "
               "test accuracy and mean SI, mean with 95% CI (t) across seeds. Table: schedules.csv (with each "
               "schedule minus each constant and its Welch 95% CI).")
    return FigureEntry(heading, caption, *paths)


def robustness_figures(runs, conditions, tables: dict, subtitle: str, out_dir: Path) -> list[FigureEntry]:
    """The figures of the sections whose tables exist (`tables`: robustness_tables' result)."""
    empty = pd.DataFrame()
    entries = [corruption_figure(runs, tables.get("corruptions_by_alpha.csv", empty), conditions, subtitle, out_dir),
               attack_figure(runs, tables.get("attacks_by_alpha.csv", empty), conditions, subtitle, out_dir),
               dimensionality_figure(tables.get("dimensionality_by_layer.csv", empty), conditions, subtitle, out_dir),
               schedule_figure(tables.get("schedules.csv", empty), subtitle, out_dir)]
    return [entry for entry in entries if not entry.skipped]
