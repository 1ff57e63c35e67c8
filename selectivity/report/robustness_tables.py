"""The tables beyond the paper, per condition: corruptions, attacks, dimensionality, and alpha schedules.

Pure functions of the tidy table (and the per-run / per-condition tables built from it), so a
published page's robustness tables can be rebuilt from its committed results.csv; the figures
in figures_robustness draw these same tables. Metric names as in docs/robustness.md.
"""
import pandas as pd

from selectivity.alpha_schedule import parse_alpha
from selectivity.report.tables import layer_summary, summarize

BY = ["alpha_label", "alpha", "constant"]
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
    columns = metric_columns(runs, "corruption_accuracy:")
    if not columns or "mean_corruption_accuracy" not in runs:
        return pd.DataFrame()
    runs = runs.copy()
    names = corruption_names(runs)
    for name in names:  # each run's mean over the severities it has
        runs[name] = runs[[c for c in columns if c.split(":")[1] == name]].mean(axis=1)
    return summarize(runs, BY, corruption_overall_columns(runs) + names)


def attack_columns(runs: pd.DataFrame, attack: str) -> list[tuple[float, str]]:
    """[(eps in 1/255 units, column)] of one attack, by eps."""
    return sorted((float(column.split(":")[2]), column) for column in metric_columns(runs, f"attack_accuracy:{attack}:"))


def attack_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Per condition: accuracy under each attack and eps, mean and 95% t-CI over seeds. Empty without rows."""
    columns = metric_columns(runs, "attack_accuracy:")
    return summarize(runs, BY, columns) if columns else pd.DataFrame()


def dimensionality_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per condition and layer: the dimensionality metrics, mean and 95% t-CI over seeds. Empty without rows."""
    metrics = [metric for metric in DIMENSIONALITY_METRICS if (table["metric"] == metric).any()]
    return layer_summary(table, tuple(metrics)) if metrics else pd.DataFrame()


def schedule_comparison(conditions: pd.DataFrame) -> pd.DataFrame:
    """Each schedule beside the constant alphas it is made of: accuracy and SI with CIs.

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
                rows.append({"schedule": schedule.alpha_label, "kind": "constant",
                             **constants.loc[value].to_dict(), "alpha": value})
    return pd.DataFrame(rows)


def robustness_tables(table: pd.DataFrame, runs: pd.DataFrame, conditions: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """{csv name: table} of the sections whose rows exist (the report writes and publishes these)."""
    tables = {"corruptions_by_alpha.csv": corruption_summary(runs), "attacks_by_alpha.csv": attack_summary(runs),
              "dimensionality_by_layer.csv": dimensionality_summary(table),
              "schedules.csv": schedule_comparison(conditions)}
    return {name: frame for name, frame in tables.items() if len(frame)}
