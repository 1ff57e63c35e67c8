"""Shared look of the report's figures: alpha colours, the symlog alpha axis, saving.

Colour encodes the sign of alpha (blues < 0, reds > 0, black = 0) and intensity |alpha|
on a log scale shared by both signs, so alpha = -10 and +10 are equally dark.
"""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # the report never opens a window; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

ALPHA_LINTHRESH = 0.1  # the grid's smallest |alpha|: linear below, log above
ALPHA_AXIS_LABEL = "alpha (regularization strength, symlog axis)"
SI_AXIS_LABEL = "mean class selectivity index (SI, 0-1)"
ACCURACY_AXIS_LABEL = "test accuracy (%)"
SCHEDULE_MARKER = "D"  # schedules (alpha changes over epochs) are drawn apart from the line

RC = {
    "figure.dpi": 110, "savefig.dpi": 130, "font.size": 9, "axes.titlesize": 10,
    "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
    "grid.alpha": 0.3, "legend.fontsize": 8, "legend.frameon": False,
    "svg.hashsalt": "selectivity-report", "svg.fonttype": "none",  # stable, small SVGs
}


def alpha_colours(alphas) -> dict[float, tuple]:
    """Map each alpha to an RGBA colour (blues for < 0, reds for > 0, black for 0).

    Args:
        alphas: the alpha values that appear in the report.
    Returns:
        {alpha: rgba}; darker means larger |alpha|.
    """
    alphas = sorted({float(alpha) for alpha in alphas})
    magnitudes = [np.log10(abs(alpha)) for alpha in alphas if alpha != 0]
    low, high = (min(magnitudes), max(magnitudes)) if magnitudes else (0.0, 0.0)
    colours = {}
    for alpha in alphas:
        if alpha == 0:
            colours[alpha] = (0.0, 0.0, 0.0, 1.0)
            continue
        position = 1.0 if high == low else (np.log10(abs(alpha)) - low) / (high - low)
        colour_map = plt.get_cmap("Blues" if alpha < 0 else "Reds")
        colours[alpha] = colour_map(0.4 + 0.6 * position)  # keep the lightest readable on white
    return colours


def layer_colours(layer_indices) -> dict[int, tuple]:
    """Depth colours for per-layer lines (viridis, shallow = purple, deep = yellow)."""
    indices = sorted(set(int(index) for index in layer_indices))
    colour_map = plt.get_cmap("viridis")
    span = max(len(indices) - 1, 1)
    return {index: colour_map(0.9 * position / span) for position, index in enumerate(indices)}


def use_alpha_axis(ax) -> None:
    """Symlog x axis for alpha with the project's label."""
    ax.set_xscale("symlog", linthresh=ALPHA_LINTHRESH)
    ax.set_xlabel(ALPHA_AXIS_LABEL)
    ax.axvline(0, color="0.6", linewidth=0.8, zorder=0)


def seeds_phrase(seed_counts) -> str:
    """'n = 3 seeds per alpha' or 'n = 1-3 seeds per alpha'."""
    counts = sorted(set(int(count) for count in seed_counts))
    if not counts:
        return "no runs"
    span = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    return f"n = {span} seed{'s' if counts[-1] != 1 else ''} per alpha"


def save_figure(figure, out_dir: Path, stem: str) -> list[Path]:
    """Write `stem`.png and `stem`.svg into out_dir, close the figure, return both paths."""
    paths = [out_dir / f"{stem}.png", out_dir / f"{stem}.svg"]
    figure.savefig(paths[0], bbox_inches="tight", metadata={"Software": None})
    figure.savefig(paths[1], bbox_inches="tight", metadata={"Date": None, "Creator": None})
    plt.close(figure)
    return paths
