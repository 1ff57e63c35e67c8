"""Sweep tidy table -> per-run and per-alpha summary tables with 95% confidence intervals.

The tidy table has one row per run x layer x metric (and per unit for unit metrics); see
docs/report.md for the columns. Every function here is pure pandas: no model is run.

A *condition* is one `alpha_label` (a constant alpha such as "-1", or a schedule such as
"0x5,-20"); it is plotted at `alpha`, the alpha of its final epoch.
"""
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats  # installed with scikit-learn (a pinned dependency)

from selectivity.errors import SelectivityError

REQUIRED_COLUMNS = ("run_id", "model", "dataset", "alpha", "alpha_label", "seed", "epoch",
                    "layer", "layer_index", "unit", "metric", "value")
NETWORK_LAYER = "network"
HISTORY_PREFIX = "epoch_"  # history metrics (training_dynamics rows) are kept at every epoch
FRACTION_METRICS = ("test_accuracy", "train_accuracy", "mean_si", "si", "dead_fraction", "dead", "train_batch_si",
                    "epoch_test_accuracy", "epoch_mean_si")  # in [0, 1] by definition


def load_results(path: str | Path) -> pd.DataFrame:
    """Read a sweep's tidy results table.

    Args:
        path: a `.parquet` or `.csv` file, or a sweep folder holding `results.parquet`
            (preferred) or `results.csv`.
    Returns:
        The table as a DataFrame, checked by `prepare_table`.
    """
    path = Path(path)
    if path.is_dir():
        candidates = [path / "results.parquet", path / "results.csv"]
        found = [candidate for candidate in candidates if candidate.is_file()]
        if not found:
            raise SelectivityError(f"no results table in {path}: expected results.parquet or results.csv")
        path = found[0]
    if not path.is_file():
        problem = "is not a regular file" if path.exists() else "does not exist"
        raise SelectivityError(f"results table {path} {problem}: expected a .parquet or .csv file")
    if path.suffix not in (".parquet", ".csv"):
        raise SelectivityError(f"results table {path} has suffix {path.suffix!r}: expected .parquet or .csv")
    try:
        if path.suffix == ".parquet":
            table = pd.read_parquet(path)
        else:
            table = pd.read_csv(path, dtype={"alpha_label": str, "run_id": str})
    except Exception as error:  # pyarrow, pandas and the OS each raise their own types for a damaged file
        detail = " ".join(f"{type(error).__name__}: {error}".split())[:160]
        raise SelectivityError(f"results table {path} cannot be read ({detail}); expected a "
                               f"{path.suffix[1:]} table written by `selectivity sweep`") from None
    return prepare_table(table)


def prepare_table(table: pd.DataFrame) -> pd.DataFrame:
    """Check the columns and keep each run's final epoch (earlier epochs are history).

    Args:
        table: the tidy sweep table.
    Returns:
        A copy with normalized dtypes and only the rows of each run's last epoch, except
        history metrics (names starting with HISTORY_PREFIX), kept at every epoch.
    """
    missing = [column for column in REQUIRED_COLUMNS if column not in table.columns]
    if missing:
        raise SelectivityError(f"results table lacks columns {missing}: expected {list(REQUIRED_COLUMNS)}")
    if table.empty:
        raise SelectivityError("results table has no rows: expected at least one finished run")
    pairs = table[["model", "dataset"]].drop_duplicates()
    if len(pairs) > 1:
        named = ", ".join(f"{m}/{d}" for m, d in pairs.itertuples(index=False))
        raise SelectivityError(f"results table mixes model/dataset pairs ({named}): expected one; filter it first")
    try:
        table = table.astype({"alpha": float, "alpha_label": str, "seed": int, "epoch": int,
                              "layer": str, "layer_index": int, "unit": int, "metric": str,
                              "value": float})
    except (ValueError, TypeError) as error:
        detail = " ".join(str(error).split())[:120]
        raise SelectivityError(f"results table has a value of the wrong type ({detail}): expected numbers "
                               "in alpha, seed, epoch, layer_index, unit and value") from None
    _check_fractions(table)
    _check_keys(table)
    final_epoch = table.groupby("run_id")["epoch"].transform("max")
    history = table["metric"].str.startswith(HISTORY_PREFIX)
    return table[(table["epoch"] == final_epoch) | history].reset_index(drop=True)


def _check_keys(table: pd.DataFrame) -> None:
    """Every row has a finite alpha, and no (run, epoch, layer, unit, metric) twice: two copies of a
    run (tables concatenated twice, say) would count its seed twice and narrow every interval."""
    if table["alpha"].isna().any() or np.isinf(table["alpha"]).any():
        row = table[~np.isfinite(table["alpha"])].iloc[0]
        raise SelectivityError(f"results table has alpha = {row['alpha']} (run {row['run_id']}): expected a finite "
                               "alpha on every row")
    repeated = table.duplicated(["run_id", "epoch", "layer", "unit", "metric"])
    if repeated.any():
        row = table[repeated].iloc[0]
        raise SelectivityError(f"results table has {int(repeated.sum())} repeated rows (e.g. run {row['run_id']}, "
                               f"epoch {row['epoch']}, layer {row['layer']}, unit {row['unit']}, {row['metric']}): "
                               "expected each run's values once")


def _check_fractions(table: pd.DataFrame) -> None:
    """Accuracy, SI and dead share are fractions; a table in percent would make every difference 100x.
    A missing one (NaN) is refused too: it would silently drop a seed from every mean."""
    values = table["value"]
    outside = table[table["metric"].isin(FRACTION_METRICS) & ((values < 0) | (values > 1) | values.isna())]
    if len(outside):
        row = outside.iloc[0]
        where = f"(run {row['run_id']}, layer {row['layer']})"
        if np.isnan(row["value"]):
            raise SelectivityError(f"results table has {row['metric']} = nan {where}: expected a fraction in [0, 1] "
                                   "on every row")
        raise SelectivityError(f"results table has {row['metric']} = {row['value']:g} {where}, outside [0, 1]: "
                               "expected fractions, not percentages")


def confidence_interval(values) -> tuple[float, float, int]:
    """Mean and 95% CI half-width across replicates (Student t, n - 1 degrees of freedom).

    Args:
        values: one number per replicate; NaNs are dropped.
    Returns:
        (mean, half_width, n); half_width is NaN when n < 2 (no spread to estimate).
    """
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    n = len(values)
    if n == 0:
        return float("nan"), float("nan"), 0
    if n == 1:
        return float(values[0]), float("nan"), 1
    standard_error = values.std(ddof=1) / np.sqrt(n)
    return float(values.mean()), float(stats.t.ppf(0.975, n - 1) * standard_error), n


def summarize(frame: pd.DataFrame, by: list[str], value_columns: list[str]) -> pd.DataFrame:
    """Per-group mean, CI half-width (`<col>_ci95`) and replicate count (`n_seeds`)."""
    rows = []
    for key, group in frame.groupby(by, sort=False):
        row = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        row["n_seeds"] = group["seed"].nunique()
        for column in value_columns:
            mean, half_width, _ = confidence_interval(group[column])
            row[f"{column}_mean"], row[f"{column}_ci95"] = mean, half_width
        rows.append(row)
    return pd.DataFrame(rows)


def is_constant_label(label: str) -> bool:
    """True when an alpha_label is one number (constant alpha), not a schedule."""
    try:
        float(label)
        return True
    except ValueError:
        return False


def run_network_table(table: pd.DataFrame) -> pd.DataFrame:
    """One row per run: seed, alpha, test accuracy, test mean SI, dead fraction, ...

    Returns:
        Columns run_id, seed, alpha, alpha_label, constant, and one per network metric,
        sorted by alpha then label then seed.
    """
    network = table[(table["layer"] == NETWORK_LAYER) & (table["unit"] == -1)
                    & ~table["metric"].str.startswith(HISTORY_PREFIX)]
    wide = network.pivot_table(index=["run_id", "seed", "alpha", "alpha_label"], columns="metric",
                               values="value", aggfunc="mean").reset_index()
    wide.columns.name = None
    for metric in ("test_accuracy", "mean_si"):
        if metric not in wide.columns:
            raise SelectivityError(f"results table has no network {metric} rows: "
                                   "expected layer='network', unit=-1 rows for every run")
    if "dead_fraction" not in wide.columns:
        wide["dead_fraction"] = np.nan
    wide["constant"] = wide["alpha_label"].map(is_constant_label)
    return wide.sort_values(["alpha", "alpha_label", "seed"]).reset_index(drop=True)


def condition_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Per alpha_label: n seeds, accuracy, mean SI and dead fraction (mean and 95% CI)."""
    summary = summarize(runs, ["alpha_label", "alpha", "constant"],
                        ["test_accuracy", "mean_si", "dead_fraction"])
    return summary.sort_values(["alpha", "alpha_label"]).reset_index(drop=True)


def layer_wide(table: pd.DataFrame, metrics) -> pd.DataFrame:
    """One row per run and layer (alpha_label, alpha, layer, layer_index, seed), one column per layer
    metric of `metrics` present; empty without such rows."""
    layers = table[(table["layer"] != NETWORK_LAYER) & (table["unit"] == -1)
                   & table["metric"].isin(metrics)]
    if layers.empty:
        return pd.DataFrame()
    return layers.pivot_table(index=["alpha_label", "alpha", "layer", "layer_index", "seed"],
                              columns="metric", values="value", aggfunc="mean").reset_index()


def layer_summary(table: pd.DataFrame, metrics=("mean_si", "dead_fraction")) -> pd.DataFrame:
    """Per alpha_label x layer: mean and 95% CI across seeds of the layer metrics present."""
    wide = layer_wide(table, metrics)
    if wide.empty:
        return pd.DataFrame()
    present = [metric for metric in metrics if metric in wide.columns]
    summary = summarize(wide, ["alpha_label", "alpha", "layer", "layer_index"], present)
    return summary.sort_values(["alpha", "alpha_label", "layer_index"]).reset_index(drop=True)


def unit_selectivity(table: pd.DataFrame) -> pd.DataFrame:
    """Unit rows of metric `si`: columns alpha_label, alpha, layer, layer_index, seed, si."""
    units = table[(table["unit"] >= 0) & (table["metric"] == "si")]
    return units[["alpha_label", "alpha", "layer", "layer_index", "seed", "value"]].rename(
        columns={"value": "si"})
