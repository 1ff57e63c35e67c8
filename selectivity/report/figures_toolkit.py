"""Figures of the unit toolkit's analyses, from their rows of the tidy table (docs/unit_toolkit.md).

    U1 units above chance vs depth   layer rows `<metric>_above_chance` (analysis unit_nulls)
    U2 ablation curves and areas     layer rows `ablation_<order>@<fraction>`, `ablation_<order>_area`
    U3 SI over training              network rows `epoch_mean_si`, `epoch_test_accuracy` (training_dynamics)
    U4 top-k classes of extreme units unit rows `topk_preferred_fraction` (top_units)
Every value is a mean over seeds (and, for U2, over ablated layers).
"""
from pathlib import Path

import pandas as pd

from selectivity.report.style import RC, alpha_colours, plt, save_figure, use_alpha_axis

ABOVE_CHANCE_METRICS = ("si", "d_prime", "auc", "mutual_information")
ABLATION_PREFIX = "ablation_"


def _conditions(frame: pd.DataFrame) -> list[tuple[str, float]]:
    pairs = frame[["alpha_label", "alpha"]].drop_duplicates().sort_values(["alpha", "alpha_label"])
    return list(pairs.itertuples(index=False, name=None))


def _legend(figure, ax) -> None:
    handles, labels = ax.get_legend_handles_labels()
    figure.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), title="alpha")


def ablation_points(table: pd.DataFrame) -> pd.DataFrame:
    """Curve-point rows split into order and fraction (metric `ablation_<order>@<fraction>`)."""
    points = table[table["metric"].str.startswith(ABLATION_PREFIX) & table["metric"].str.contains("@", regex=False)]
    if points.empty:
        return points.assign(order=pd.Series(dtype=str), fraction=pd.Series(dtype=float))
    parts = points["metric"].str[len(ABLATION_PREFIX):].str.rpartition("@")
    return points.assign(order=parts[0], fraction=parts[2].astype(float))


def above_chance_by_depth(table: pd.DataFrame, subtitle: str, out_dir: Path) -> list[Path] | None:
    """U1: fraction of units above chance per layer (depth order), one line per alpha, a panel per metric."""
    metrics = [m for m in ABOVE_CHANCE_METRICS if (table["metric"] == f"{m}_above_chance").any()]
    if not metrics:
        return None
    rows = table[table["metric"].isin([f"{m}_above_chance" for m in metrics]) & (table["unit"] == -1)]
    colours = alpha_colours(alpha for _, alpha in _conditions(rows))
    with plt.rc_context(RC):
        figure, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics) + 1.5, 3.2), sharey=True, squeeze=False)
        for ax, metric in zip(axes[0], metrics):
            mean = rows[rows["metric"] == f"{metric}_above_chance"].groupby(
                ["alpha_label", "alpha", "layer_index"])["value"].mean().reset_index()
            for label, alpha in _conditions(mean):
                line = mean[mean["alpha_label"] == label].sort_values("layer_index")
                ax.plot(line["layer_index"], line["value"], marker="o", markersize=3, color=colours[alpha],
                        label=f"alpha={label}")
            ax.set_title(metric, fontsize=9)
            ax.set_xlabel("layer index (depth order)")
        axes[0, 0].set_ylabel("fraction of units above chance")
        _legend(figure, axes[0, 0])
        figure.suptitle(f"Units above their label-shuffle null (z > 1.645)\n{subtitle}")
        figure.tight_layout()
        return save_figure(figure, out_dir, "figU1_units_above_chance")


def ablation_curves(table: pd.DataFrame, subtitle: str, out_dir: Path) -> list[Path] | None:
    """U2: accuracy vs ablated fraction per order (one line per alpha), and each order's area vs alpha."""
    points = ablation_points(table)
    if points.empty:
        return None
    orders = list(dict.fromkeys(points["order"]))
    colours = alpha_colours(alpha for _, alpha in _conditions(points))
    areas = table[table["metric"].isin([f"{ABLATION_PREFIX}{o}_area" for o in orders])]
    with plt.rc_context(RC):
        figure, axes = plt.subplots(1, len(orders) + 1, figsize=(3.2 * (len(orders) + 1) + 1.5, 3.2), squeeze=False)
        for ax, order in zip(axes[0], orders):
            mean = points[points["order"] == order].groupby(["alpha_label", "alpha", "fraction"])["value"].mean()
            for label, alpha in _conditions(points):
                if label in mean.index.get_level_values(0):
                    curve = mean.xs(label, level="alpha_label").reset_index().sort_values("fraction")
                    ax.plot(curve["fraction"], 100 * curve["value"], color=colours[alpha], label=f"alpha={label}")
            ax.set_title(f"order: {order}", fontsize=9)
            ax.set_xlabel("fraction of the layer's units ablated")
        axes[0, 0].set_ylabel("test accuracy (%)")
        area_ax = axes[0, -1]
        for order in orders:
            mean = areas[areas["metric"] == f"{ABLATION_PREFIX}{order}_area"].groupby("alpha")["value"].mean()
            area_ax.plot(mean.index, mean.to_numpy(), marker="o", markersize=3, label=order)
        use_alpha_axis(area_ax)
        area_ax.set_ylabel("area under the curve")
        area_ax.legend(title="order", fontsize=7)
        _legend(figure, axes[0, 0])
        figure.suptitle(f"Unit ablation (Morcos et al. 2018), mean over ablated layers and seeds\n{subtitle}")
        figure.tight_layout()
        return save_figure(figure, out_dir, "figU2_ablation_curves")


def si_over_training(table: pd.DataFrame, subtitle: str, out_dir: Path) -> list[Path] | None:
    """U3: network mean SI and test accuracy at every evaluation epoch, one line per alpha."""
    history = table[(table["layer"] == "network") & table["metric"].isin(["epoch_mean_si", "epoch_test_accuracy"])]
    if history.empty:
        return None
    colours = alpha_colours(alpha for _, alpha in _conditions(history))
    with plt.rc_context(RC):
        figure, axes = plt.subplots(1, 2, figsize=(9.5, 3.4))
        for ax, (metric, label_text) in zip(axes, [("epoch_mean_si", "test mean SI (0-1)"),
                                                    ("epoch_test_accuracy", "test accuracy (%)")]):
            scale = 100 if metric == "epoch_test_accuracy" else 1
            mean = history[history["metric"] == metric].groupby(["alpha_label", "alpha", "epoch"])["value"].mean()
            for label, alpha in _conditions(history):
                if label in mean.index.get_level_values(0):
                    curve = mean.xs(label, level="alpha_label").reset_index().sort_values("epoch")
                    ax.plot(curve["epoch"], scale * curve["value"], marker="o", markersize=2, color=colours[alpha],
                            label=f"alpha={label}")
            ax.set_xlabel("epoch")
            ax.set_ylabel(label_text)
        _legend(figure, axes[0])
        figure.suptitle(f"Selectivity and accuracy over training (mean over seeds)\n{subtitle}")
        figure.tight_layout()
        return save_figure(figure, out_dir, "figU3_si_over_training")


def top_unit_classes(table: pd.DataFrame, subtitle: str, out_dir: Path) -> list[Path] | None:
    """U4: per layer, the share of the top-k inputs of its most / least selective unit that are of the
    unit's preferred class (analysis top_units; the unit with the larger SI of the pair is 'most')."""
    rows = table[(table["metric"] == "topk_preferred_fraction") & (table["unit"] >= 0)]
    if rows.empty:
        return None
    si = table[(table["metric"] == "si") & (table["unit"] >= 0)][["run_id", "layer", "unit", "value"]]
    rows = rows.merge(si.rename(columns={"value": "si"}), on=["run_id", "layer", "unit"], how="left")
    rows["kind"] = rows.groupby(["run_id", "layer"])["si"].rank(method="first", ascending=False).map(
        {1.0: "most selective", 2.0: "least selective"})
    colours = alpha_colours(alpha for _, alpha in _conditions(rows))
    with plt.rc_context(RC):
        figure, axes = plt.subplots(1, 2, figsize=(9.5, 3.4), sharey=True)
        for ax, kind in zip(axes, ("most selective", "least selective")):
            for label, alpha in _conditions(rows):
                line = rows[(rows["kind"] == kind) & (rows["alpha_label"] == label)].sort_values("layer_index")
                ax.plot(line["layer_index"], line["value"], marker="o", markersize=3, color=colours[alpha],
                        label=f"alpha={label}")
            ax.set_title(f"each layer's {kind} live unit", fontsize=9)
            ax.set_xlabel("layer index (depth order)")
        axes[0].set_ylabel("top-k inputs in its preferred class")
        _legend(figure, axes[0])
        figure.suptitle(f"What the extreme units respond to (first seed per alpha)\n{subtitle}")
        figure.tight_layout()
        return save_figure(figure, out_dir, "figU4_top_unit_classes")
