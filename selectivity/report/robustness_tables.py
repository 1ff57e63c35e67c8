"""The tables beyond the paper, per condition: corruptions, attacks, dimensionality, and alpha schedules.

Pure functions of the tidy table (and the per-run / per-condition tables built from it), so a
published page's robustness tables can be rebuilt from its committed results.csv; the figures
in figures_robustness draw these same tables. Metric names as in docs/robustness.md.
Differences from a reference condition (alpha = 0, or a schedule's constant) are Welch 95%
intervals over seeds, as the accuracy comparison uses (report.comparison.welch_difference).
"""
import pandas as pd

from selectivity.alpha_schedule import parse_alpha
from selectivity.report.comparison import direction_of, welch_difference
from selectivity.report.tables import is_constant_label, layer_summary, layer_wide, summarize

BY = ["alpha_label", "alpha", "constant"]
BASELINE_LABEL = "0"
DIMENSIONALITY_METRICS = ("dim_pr", "perturbation_dim_pr", "dim_pcs", "perturbation_dim_pcs")


def metric_columns(runs: pd.DataFrame, prefix: str) -> list[str]:
    return sorted(column for column in runs.columns if column.startswith(prefix))


def corruption_names(runs: pd.DataFrame) -> list[str]:
    return sorted({column.split(":")[1] for column in metric_columns(runs, "corruption_accuracy:")})


def corruption_overall_columns(runs: pd.DataFrame) -> list[str]:
    return ["mean_corruption_accuracy"] + (["clean_subset_accuracy"] if "clean_subset_accuracy" in runs else [])


def corruption_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Per condition: mean corruption accuracy, clean accuracy on the same images, and each corruption's
    accuracy averaged over its severities (per run, then mean and 95% t-CI over seeds). Empty without rows."""
    if not metric_columns(runs, "corruption_accuracy:") or "mean_corruption_accuracy" not in runs:
        return pd.DataFrame()
    return summarize(with_corruption_means(runs), BY, corruption_overall_columns(runs) + corruption_names(runs))


def with_corruption_means(runs: pd.DataFrame) -> pd.DataFrame:
    """`runs` plus one column per corruption: each run's mean accuracy over the severities it has."""
    columns, runs = metric_columns(runs, "corruption_accuracy:"), runs.copy()
    for name in corruption_names(runs):
        runs[name] = runs[[c for c in columns if c.split(":")[1] == name]].mean(axis=1)
    return runs


def attack_columns(runs: pd.DataFrame, attack: str) -> list[tuple[float, str]]:
    """[(eps in 1/255 units, column)] of one attack, by eps."""
    return sorted((float(column.split(":")[2]), column) for column in metric_columns(runs, f"attack_accuracy:{attack}:"))


def attack_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Per condition: accuracy under each attack and eps, mean and 95% t-CI over seeds. Empty without rows."""
    columns = metric_columns(runs, "attack_accuracy:")
    return summarize(runs, BY, columns) if columns else pd.DataFrame()


def dimensionality_metrics(table: pd.DataFrame) -> list[str]:
    """The DIMENSIONALITY_METRICS with rows in the tidy table."""
    return [metric for metric in DIMENSIONALITY_METRICS if (table["metric"] == metric).any()]


def dimensionality_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per condition and layer: the dimensionality metrics, mean and 95% t-CI over seeds. Empty without rows."""
    metrics = dimensionality_metrics(table)
    return layer_summary(table, tuple(metrics)) if metrics else pd.DataFrame()


SCHEDULE_METRICS = ("test_accuracy", "mean_si")


def schedule_comparison(conditions: pd.DataFrame, runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """Each schedule beside the constant alphas it is made of: accuracy and SI with CIs.

    Args:
        conditions: condition_summary's table.
        runs: the per-run table; with it, each constant row also gets the schedule minus that
            constant, `<metric>_schedule_minus` with its Welch 95% CI (`..._ci_low`, `..._ci_high`)
            and `<metric>_direction`, for test_accuracy and mean_si.
    Returns:
        One row per schedule and per constant alpha it uses (column `schedule` groups them),
        with `kind` "schedule" or "constant" and the condition's summary columns.
    """
    schedules = conditions[~conditions["constant"]]
    constants = conditions[conditions["constant"]].set_index("alpha")
    rows = []
    for schedule in schedules.itertuples(index=False):
        rows.append({"schedule": schedule.alpha_label, "kind": "schedule", **schedule._asdict()})
        for value in dict.fromkeys(value for value, _ in parse_alpha(schedule.alpha_label)):
            if value in constants.index:
                row = {"schedule": schedule.alpha_label, "kind": "constant", **constants.loc[value].to_dict(),
                       "alpha": value}
                if runs is not None:
                    row.update(_schedule_minus_constant(runs, schedule.alpha_label, row["alpha_label"]))
                rows.append(row)
    return pd.DataFrame(rows)


def _schedule_minus_constant(runs: pd.DataFrame, schedule: str, constant: str) -> dict:
    columns = {}
    for metric in SCHEDULE_METRICS:
        difference, low, high = welch_difference(runs.loc[runs["alpha_label"] == schedule, metric],
                                                 runs.loc[runs["alpha_label"] == constant, metric])
        columns.update({f"{metric}_schedule_minus": difference, f"{metric}_schedule_minus_ci_low": low,
                        f"{metric}_schedule_minus_ci_high": high, f"{metric}_direction": direction_of(low, high)})
    return columns


def with_drops(runs: pd.DataFrame) -> pd.DataFrame:
    """`runs` plus each run's accuracy lost to a perturbation on the same images: `corruption_drop`
    (clean subset minus mean corruption accuracy) and `attack_drop:<attack>:<eps>` (eps 0 minus eps).

    Conditions whose clean accuracy differs (a short schedule's alpha = -10) lose more or less to
    a perturbation than their absolute accuracies show; the drop separates the two.
    """
    runs = runs.copy()
    if {"clean_subset_accuracy", "mean_corruption_accuracy"} <= set(runs):
        runs["corruption_drop"] = runs["clean_subset_accuracy"] - runs["mean_corruption_accuracy"]
    for attack in sorted({column.split(":")[1] for column in metric_columns(runs, "attack_accuracy:")}):
        by_eps = dict(attack_columns(runs, attack))
        if 0.0 in by_eps:
            for eps, column in by_eps.items():
                if eps > 0:
                    runs[f"attack_drop:{attack}:{eps:g}"] = runs[by_eps[0.0]] - runs[column]
    return runs


def drop_columns(runs: pd.DataFrame) -> list[str]:
    return (["corruption_drop"] if "corruption_drop" in runs else []) + metric_columns(runs, "attack_drop:")


def robustness_vs_baseline(table: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Every condition's robustness and dimensionality metrics minus alpha = 0's, with Welch 95% CIs.

    Network metrics: mean corruption accuracy, clean accuracy on the same images, each corruption
    (mean over its severities), each attack and eps, and the drops of with_drops. Layer metrics:
    the dimensionality metrics of each layer. `direction` says whether the CI lies above 0
    ("higher"), below ("lower"), or neither ("undetermined", also when a condition has < 2
    seeds). Empty without alpha = 0 runs or without robustness rows.
    """
    network = with_drops(with_corruption_means(runs))
    network_metrics = ((corruption_overall_columns(runs) + corruption_names(runs) if "mean_corruption_accuracy" in runs
                        else []) + metric_columns(runs, "attack_accuracy:") + drop_columns(network))
    frames = [network.assign(layer="network", layer_index=-1)[["alpha_label", "alpha", "constant", "layer",
                                                                 "layer_index", "seed"] + network_metrics]]
    layer_metrics = dimensionality_metrics(table)
    if layer_metrics:
        wide = layer_wide(table, layer_metrics)
        frames.append(wide.assign(constant=wide["alpha_label"].map(is_constant_label)))
    rows = []
    for frame, metrics in zip(frames, (network_metrics, layer_metrics)):
        if not metrics or BASELINE_LABEL not in set(frame["alpha_label"]):
            continue
        for (layer, layer_index), scope in frame.groupby(["layer", "layer_index"], sort=False):
            baseline = scope[scope["alpha_label"] == BASELINE_LABEL]
            for (label, alpha, constant), group in scope.groupby(BY, sort=False):
                if label == BASELINE_LABEL:
                    continue
                for metric in metrics:
                    difference, low, high = welch_difference(group[metric], baseline[metric])
                    rows.append({"alpha_label": label, "alpha": alpha, "constant": constant, "layer": layer,
                                 "layer_index": layer_index, "metric": metric,
                                 "n_seeds": int(group[metric].notna().sum()),
                                 "n_baseline": int(baseline[metric].notna().sum()), "mean": group[metric].mean(),
                                 "baseline_mean": baseline[metric].mean(), "difference": difference, "ci_low": low,
                                 "ci_high": high, "direction": direction_of(low, high)})
    if not rows:
        return pd.DataFrame()
    return pd.DataFrame(rows).sort_values(["layer_index", "metric", "alpha", "alpha_label"]).reset_index(drop=True)


def robustness_tables(table: pd.DataFrame, runs: pd.DataFrame, conditions: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """{csv name: table} of the sections whose rows exist (the report writes and publishes these)."""
    tables = {"corruptions_by_alpha.csv": corruption_summary(runs), "attacks_by_alpha.csv": attack_summary(runs),
              "dimensionality_by_layer.csv": dimensionality_summary(table),
              "robustness_vs_baseline.csv": robustness_vs_baseline(table, runs),
              "schedules.csv": schedule_comparison(conditions, runs)}
    return {name: frame for name, frame in tables.items() if len(frame)}
