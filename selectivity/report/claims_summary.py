"""The table a results page opens with: each claim of the paper, its number, ours, the verdict, the scale.

One row per headline (report.headline): the claim as Leavitt & Morcos (ICLR 2021) state it,
the paper's number, our comparison (difference from alpha = 0 in points, Welch 95% CI, seeds,
SI change), the claim's verdict read from the Holm-corrected comparison word, and how the
sweep's scale differs from the paper's (epochs; precision and machine from provenance.csv).

Claim verdicts (docs/report.md, "The summary table"):
  SI can fall without loss    holds: an alpha < 0 shows "no loss"; fails: every alpha < 0 is a
                              "loss" and one of them lowered SI at most 2.5x; else undetermined.
  near-zero SI costs at most  at the lowest SI: holds when the verdict is decided and the CI's
  about 2 points              lower bound is above -2 points; fails when it is a "loss" whose CI's
                              upper bound is below -2; else undetermined.
  raising SI lowers accuracy  holds: "loss" at the largest alpha > 0; fails: "no loss"; else undetermined.
"""
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from selectivity.report.comparison import LOSS, NO_LOSS, UNDETERMINED
from selectivity.report.verdict_history import looks_phrase

HOLDS, FAILS = "holds", "fails"
PAPER_COST_POINTS = 2.0  # "near-zero SI for ~2 points of accuracy" (ResNet20)
PAPER_SI_REDUCTION = 2.5  # "mean SI down ~2.5x with no accuracy loss" (ResNet20)


@dataclass(frozen=True)
class PaperRecipe:
    epochs: int
    replicates: int


# the paper's epochs (its recipe configs, experiments/<model>-<dataset>.toml) and replicates per model
# and dataset (docs/definitions.md, "The paper's experiments")
PAPER_RECIPES = {("resnet20", "cifar10"): PaperRecipe(200, 20), ("vgg16", "cifar10"): PaperRecipe(200, 20),
                 ("resnet18", "tiny-imagenet"): PaperRecipe(90, 5), ("resnet50", "tiny-imagenet"): PaperRecipe(90, 5)}
CLAIMS = {  # headline key -> (the claim as the paper states it, the paper's number)
    "si_reduction_at_iso_accuracy": ("mean SI down about 2.5x with no accuracy loss (ResNet20)",
                                     "2.5x lower SI, no loss"),
    "accuracy_change_at_lowest_si": ("near-zero SI for about 2 points of accuracy (ResNet20)", "about -2 points"),
    "accuracy_at_largest_positive_alpha": ("raising SI lowers accuracy (every model)", "qualitative"),
}
HEADER = ["claim (as the paper states it)", "paper's number", "ours (95% CI, seeds)", "verdict",
          "what differs in scale"]


def claim_rows(compared: pd.DataFrame) -> dict[str, tuple[str, list]]:
    """Each claim's verdict and the comparisons it quotes, from accuracy_vs_baseline rows.

    The verdicts are the page's (Holm over every comparison it makes, schedules included); only
    constant alphas are quoted. A claim without a condition to quote (no alpha > 0, say) is left out.
    """
    constant = compared[compared["constant"].astype(bool)]
    claims = {}
    negative = constant[constant["alpha"] < 0].sort_values("si_reduction", ascending=False)
    if len(negative):
        holding = negative[negative["verdict"] == NO_LOSS]
        # fails only where a reduction no larger than the paper's cost accuracy: a 15x one alone says nothing of 2.5x
        modest = (negative["verdict"] == LOSS).all() and (negative["si_reduction"] <= PAPER_SI_REDUCTION).any()
        verdict = HOLDS if len(holding) else FAILS if modest else UNDETERMINED
        undetermined = negative[negative["verdict"] == UNDETERMINED]
        quoted = holding if len(holding) else undetermined if len(undetermined) else negative
        claims["si_reduction_at_iso_accuracy"] = (verdict, [next(quoted.itertuples(index=False))])
    if len(constant):
        lowest = next(constant.sort_values("si_reduction", ascending=False).itertuples(index=False))
        claims["accuracy_change_at_lowest_si"] = (_cost_verdict(lowest), [lowest])
    positive = constant[constant["alpha"] > 0].sort_values("alpha", ascending=False)
    if len(positive):
        largest = next(positive.itertuples(index=False))
        claims["accuracy_at_largest_positive_alpha"] = ({LOSS: HOLDS, NO_LOSS: FAILS}.get(largest.verdict,
                                                                                        UNDETERMINED), [largest])
    return claims


def _cost_verdict(row) -> str:
    """'Near-zero SI for about 2 points', read as 'at most about 2 points', at the lowest SI."""
    if row.verdict in (LOSS, NO_LOSS) and row.ci_low_points > -PAPER_COST_POINTS:
        return HOLDS
    return FAILS if row.verdict == LOSS and row.ci_high_points < -PAPER_COST_POINTS else UNDETERMINED


def comparison_fragment(row) -> str:
    """'alpha = -1: -0.28 [-0.66, +0.10] points, 5 vs 5 seeds, SI 2.10x lower' (no CI: '(no CI)')."""
    seeds = f"{int(row.n_alpha)} vs {int(row.n_baseline)} seed{'s' if max(row.n_alpha, row.n_baseline) > 1 else ''}"
    interval = ("points (no CI)" if math.isnan(row.ci_low_points)
                else f"[{row.ci_low_points:+.2f}, {row.ci_high_points:+.2f}] points")
    text = f"alpha = {row.alpha_label}: {row.difference_points:+.2f} {interval}, {seeds}"
    ratio = getattr(row, "si_reduction", math.nan)
    if not math.isnan(ratio):
        text += f", SI {ratio:.2f}x lower" if ratio >= 1 else f", SI {1 / ratio:.2f}x higher"
    return text


def holm_fragment(row, history: pd.DataFrame | None = None) -> str:
    """'alpha = -1: undetermined after Holm over 4 comparisons; ~19 seeds for 80%' ('..: undetermined, no CI'),
    then the condition's looks when a verdict history is given (verdict_history.looks_phrase)."""
    if math.isnan(row.ci_low_points):
        text = f"alpha = {row.alpha_label}: undetermined, no CI"
    else:
        size = int(row.family_size)
        text = f"alpha = {row.alpha_label}: {row.verdict} after Holm over {size} comparison{'s' if size != 1 else ''}"
        if row.verdict == UNDETERMINED and not np.isnan(row.seeds_needed_80):
            text += f"; ~{row.seeds_needed_80:.0f} seeds for 80%"
    looks = looks_phrase(history, row.alpha_label) if history is not None else ""
    return text + (f"; {looks}" if looks else "")


def epochs_phrase(model: str, dataset: str, factors: dict) -> str:
    """'6 of the paper's 200 epochs', or '1 epoch (the paper trained no vit_cifar on cifar10)'."""
    recipe = PAPER_RECIPES.get((model, dataset))
    epochs = factors["epochs"]
    if recipe:
        return f"{epochs} of the paper's {recipe.epochs} epochs"
    return f"{epochs} epoch{'' if epochs == '1' else 's'} (the paper trained no {model} on {dataset})"


def scale_phrase(model: str, dataset: str, factors: dict) -> str:
    """'6 of the paper's 200 epochs; fp32; cpu: AMD EPYC 7B13 (AVX2)', naming what is not recorded."""
    parts = [epochs_phrase(model, dataset, factors)]
    parts.append(factors["precision"] or "precision not recorded")
    parts.append(factors["machine"] or "machine not recorded")
    return "; ".join(parts)


def schedule_words(model: str, dataset: str, factors: dict) -> str:
    """'a short CPU schedule' / 'a short schedule' when fewer epochs than the paper's, else ''."""
    recipe = PAPER_RECIPES.get((model, dataset))
    epochs = [int(value) for value in factors["epochs"].split(" / ")]
    short = recipe is None or max(epochs) < recipe.epochs
    machine = factors["machine"] or ""
    return ("a short CPU schedule" if machine.startswith("cpu") else "a short schedule") if short else ""


def summary_rows(compared: pd.DataFrame, model: str, dataset: str, factors: dict,
                 history: pd.DataFrame | None = None) -> list[list[str]]:
    """The page's opening table as display cells (header first), one row per claim with a condition;
    with a verdict history, each quoted verdict names its looks."""
    rows = [HEADER]
    scale, short = scale_phrase(model, dataset, factors), schedule_words(model, dataset, factors)
    where = f" on {short}" if short else ""
    for key, (verdict, quoted) in claim_rows(compared).items():
        claim, paper = CLAIMS[key]
        rows.append([claim, paper, "; ".join(comparison_fragment(row) for row in quoted),
                     f"{verdict}{where} (" + "; ".join(holm_fragment(row, history) for row in quoted) + ")", scale])
    return rows
