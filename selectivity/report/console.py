"""The per-alpha summary a sweep prints when it finishes: mean ± std over seeds."""
import pandas as pd

from selectivity.report.tables import prepare_table, run_network_table


def alpha_summary_text(table: pd.DataFrame) -> str:
    """A plain-text table: alpha, seeds, test accuracy (%), test mean SI, dead units (%).

    Values are mean ± sample standard deviation over seeds (± 0 with one seed); the last
    line says so, because the HTML report's ± is a 95% confidence interval instead.
    """
    runs = run_network_table(prepare_table(table))
    grouped = runs.groupby(["alpha", "alpha_label"], sort=True)
    header = f"{'alpha':>10}  {'seeds':>5}  {'test accuracy (%)':>18}  {'test mean SI':>15}  {'dead units (%)':>14}"
    lines = [header, "-" * len(header)]
    for (_, label), group in grouped:
        def cell(column, scale=1.0, digits=2):
            mean, std = group[column].mean() * scale, group[column].std(ddof=1) * scale if len(group) > 1 else 0.0
            return f"{mean:.{digits}f} ± {std:.{digits}f}"

        lines.append(
            f"{label:>10}  {len(group):>5}  {cell('test_accuracy', 100):>18}  {cell('mean_si', 1, 3):>15}  "
            f"{cell('dead_fraction', 100, 1):>14}"
        )
    lines.append("(mean ± std over seeds, not a confidence interval; the report's ± is a 95% CI)")
    return "\n".join(lines)
