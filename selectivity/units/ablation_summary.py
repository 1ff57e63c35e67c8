"""Ablation curves -> per-order mean curves with 95% CIs over random draws, their areas, and tidy rows.

Tidy-row encoding (the results table's `metric` column; `layer` = the ablated layer, unit -1):
    ablation_<order>@<fraction>   accuracy with that fraction of the layer's units ablated,
                                  mean over draws for `random` (e.g. ablation_si_high@0.25)
    ablation_<order>_area         area under the accuracy-vs-fraction curve (trapezoid, fraction 0..1)
`parse_ablation_metric` reads the first form back.
"""
import numpy as np
import pandas as pd
from scipy import stats

PREFIX = "ablation_"


def mean_curves(curves: pd.DataFrame) -> pd.DataFrame:
    """Per layer x order x fraction: accuracy mean, 95% CI half-width across draws (Student t; NaN for one
    draw) and the number of draws."""
    rows = []
    for (layer, order, fraction), group in curves.groupby(["layer", "order", "fraction"], sort=False):
        values = group["accuracy"].to_numpy(dtype=float)
        half_width = (stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
                      if len(values) > 1 else np.nan)
        rows.append({"layer": layer, "order": order, "fraction": fraction, "accuracy": values.mean(),
                     "accuracy_ci95": half_width, "draws": len(values)})
    return pd.DataFrame(rows)


def curve_areas(curves: pd.DataFrame) -> pd.DataFrame:
    """Per layer x order: the trapezoid area under accuracy vs fraction, mean over draws."""
    rows = []
    for (layer, order), group in curves.groupby(["layer", "order"], sort=False):
        areas = [np.trapezoid(draw["accuracy"].to_numpy(), draw["fraction"].to_numpy())
                 for _, draw in group.sort_values("fraction").groupby("draw")]
        rows.append({"layer": layer, "order": order, "area": float(np.mean(areas))})
    return pd.DataFrame(rows)


def ablation_metric(order: str, fraction: float | None = None) -> str:
    """The metric name of a curve point (`ablation_si_high@0.25`) or, without a fraction, its area."""
    return f"{PREFIX}{order}_area" if fraction is None else f"{PREFIX}{order}@{fraction:g}"


def parse_ablation_metric(metric: str) -> tuple[str, float] | None:
    """(order, fraction) of a curve-point metric name; None for any other metric."""
    if not metric.startswith(PREFIX) or "@" not in metric:
        return None
    order, _, fraction = metric[len(PREFIX):].rpartition("@")
    return order, float(fraction)


def tidy_ablation_rows(curves: pd.DataFrame) -> pd.DataFrame:
    """layer, metric, value rows of every mean curve point and area (see the module docstring)."""
    points = mean_curves(curves)
    rows = [(row.layer, ablation_metric(row.order, row.fraction), row.accuracy) for row in points.itertuples()]
    rows += [(row.layer, ablation_metric(row.order), row.area) for row in curve_areas(curves).itertuples()]
    return pd.DataFrame(rows, columns=["layer", "metric", "value"])
