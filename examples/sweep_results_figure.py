# %% [markdown]
# # From a finished sweep's results table to the paper's main figure
#
# A sweep writes one long table, `results.csv`: one row per (run, epoch, layer, unit, metric).
# This script reads the published ResNet20 / CIFAR-10 sweep (alpha in {-10, -2, -1, 0, 1} x 5
# seeds, 6 epochs, fp32 on a CPU; see docs/results/resnet20-cifar10.md) with pandas and draws
# the paper's main figure: test accuracy and network mean SI against alpha, mean over seeds with
# 95% t-intervals. Point `RESULTS` at your own sweep's `results.csv` (written by
# `selectivity sweep SPEC.toml`, e.g. `runs/digits-alpha/results.csv`) to draw yours.

# %%
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display needed
import matplotlib.pyplot as plt
import pandas as pd
from scipy import stats

try:  # run as a script: the repository's copy of the table
    REPO = Path(__file__).resolve().parents[1]
except NameError:  # run cell by cell in a notebook from the repository root
    REPO = Path.cwd()
RESULTS = REPO / "docs" / "results" / "resnet20-cifar10" / "results.csv"
OUT = Path("example_outputs") / "sweep_results_figure"
OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# Network-level rows of the last epoch: one value per run and metric.

# %%
results = pd.read_csv(RESULTS)
network = results[(results["layer"] == "network") & (results["metric"].isin(["test_accuracy", "mean_si"]))]
network = network[network["epoch"] == network.groupby("run_id")["epoch"].transform("max")]
per_run = network.pivot_table(index=["alpha", "seed"], columns="metric", values="value").reset_index()
print(per_run.head())

# %% [markdown]
# Mean over seeds and the half-width of a 95% t-interval (n - 1 degrees of freedom).


# %%
def ci95(values: pd.Series) -> float:
    return float(stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / len(values) ** 0.5)


by_alpha = per_run.groupby("alpha").agg(
    seeds=("seed", "nunique"),
    test_accuracy=("test_accuracy", "mean"), test_accuracy_ci95=("test_accuracy", ci95),
    mean_si=("mean_si", "mean"), mean_si_ci95=("mean_si", ci95),
).reset_index()
by_alpha.to_csv(OUT / "by_alpha.csv", index=False)
print(by_alpha.to_string(index=False))

# %% [markdown]
# The figure: accuracy (left) and selectivity (right) against alpha. alpha < 0 lowers SI;
# the paper's finding is how little accuracy that costs.

# %%
figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
positions = range(len(by_alpha))  # alpha is not evenly spaced: one slot per value
for axes, column, label in ((left, "test_accuracy", "test accuracy"), (right, "mean_si", "network mean SI")):
    scale = 100 if column == "test_accuracy" else 1
    axes.errorbar(positions, by_alpha[column] * scale, yerr=by_alpha[f"{column}_ci95"] * scale,
                  marker="o", capsize=3)
    axes.set_xticks(positions, [f"{alpha:g}" for alpha in by_alpha["alpha"]])
    axes.set_xlabel("alpha (regularization strength)")
    axes.set_ylabel(label + (" (%)" if scale == 100 else ""))
figure.suptitle("ResNet20 / CIFAR-10: mean over seeds, 95% CI")
figure.tight_layout()
figure.savefig(OUT / "accuracy_and_si_vs_alpha.png", dpi=100)
print("wrote", OUT / "accuracy_and_si_vs_alpha.png")
