"""Reading a results page's opening summary table and recomputing each of its numbers from results.csv.

Independent of selectivity.report: the accuracies, SI means, Welch intervals, Holm-adjusted
verdicts and 80%-power seed counts are written out here with numpy and scipy. A table cell is
read as a sequence of fragments (the grammar the report's claims_summary writes); each fragment's
numbers are checked, and no digit may remain outside a fragment or a name (fp32, AVX2, ResNet20).
"""
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

MARGIN = 0.5
HEADER = ["claim (as the paper states it)", "paper's number", "ours (95% CI, seeds)", "verdict",
          "what differs in scale"]
NUMBER = r"[+-]\d+\.\d\d"
COMPARISON = re.compile(rf"alpha = (?P<label>[^:\s]+): (?P<d>{NUMBER}) (?:\[(?P<l>{NUMBER}), (?P<h>{NUMBER})\] points|"
                        rf"points \(no CI\)), (?P<n>\d+) vs (?P<m>\d+) seeds?"
                        r"(?:, SI (?P<r>\d+\.\d\d)x (?P<dir>lower|higher))?")
CONTRAST = re.compile(rf"(?P<x>\S+) minus (?P<y>[^:\s]+): (?P<d>{NUMBER}) \[(?P<l>{NUMBER}), (?P<h>{NUMBER})\] points, "
                      rf"(?P<n>\d+) vs (?P<m>\d+) seeds")
CROSS = re.compile(rf"alpha = (?P<label>[^,\s]+), here minus \[[^\]]+\]\((?P<other>[\w-]+)\.md\): (?P<d>{NUMBER}) "
                   rf"\[(?P<l>{NUMBER}), (?P<h>{NUMBER})\] points, "
                   r"(?P<n>\d+)/(?P<n0>\d+) vs (?P<m>\d+)/(?P<m0>\d+) seeds")
VERDICT = r"(?:loss|no loss|undetermined)"
HOLM = re.compile(r"alpha = (?P<label>[^:\s]+): (?:(?P<v>loss|no loss|undetermined) after Holm over (?P<k>\d+) "
                  r"comparisons?(?:; ~(?P<s>\d+) seeds for 80%)?|(?P<none>undetermined, no CI))"
                  rf"(?:; looks at n = (?P<looks>\d+ vs \d+: {VERDICT}(?:, \d+ vs \d+: {VERDICT})*)"
                  r"(?:; decided at n = (?P<at>\d+ vs \d+))?)?")
SIGN = re.compile(r"CI lies (?P<side>above|below) 0")
EPOCHS = re.compile(r"(?P<e>\d+)(?: vs (?P<other>\d+))? of the paper's (?P<p>\d+) epochs")
# names, not numbers (a commit is checked by tests/test_preregistration.py)
NAMES = re.compile(r"fp32|bf16|AVX-?512(?:[ -]BF16)?|AVX2|AMX(?:-BF16)?|ResNet\d+|VGG16|CIFAR-10|[\w-]+\.md|"
                   r"commit [0-9a-f]{7,40}")


def summary_table(page: str) -> list[list[str]]:
    """The first Markdown table of a page (header first), which must come before the first section."""
    lines = page.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| "))
    assert not any(line.startswith("## ") for line in lines[:start]), "the summary table must open the page"
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if not all(set(cell) <= set("-: ") for cell in cells):
            rows.append(cells)
    return rows


def accuracy_points(folder: Path) -> pd.DataFrame:
    """alpha_label, seed, points (final test accuracy) and mean_si of every run, from the raw rows."""
    raw = pd.read_csv(folder / "results.csv", dtype={"alpha_label": str})
    network = raw[(raw["layer"] == "network") & (raw["unit"] == -1)]
    wide = network.pivot_table(index=["run_id", "alpha_label", "seed"], columns="metric", values="value").reset_index()
    return wide.assign(points=100 * wide["test_accuracy"])


def final_epochs(folder: Path) -> set[int]:
    raw = pd.read_csv(folder / "results.csv", usecols=["run_id", "layer", "metric", "epoch"])
    rows = raw[(raw["layer"] == "network") & (raw["metric"] == "test_accuracy")]
    return set(rows.groupby("run_id")["epoch"].max())


def welch(own, baseline) -> tuple[float, float, float, float]:
    """difference, CI low, CI high, df of mean(own) - mean(baseline)."""
    va, vb = np.var(own, ddof=1) / len(own), np.var(baseline, ddof=1) / len(baseline)
    df = (va + vb) ** 2 / (va**2 / (len(own) - 1) + vb**2 / (len(baseline) - 1))
    half = stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    difference = np.mean(own) - np.mean(baseline)
    return difference, difference - half, difference + half, df


def satterthwaite(groups, weights) -> tuple[float, float, float]:
    terms = [w * w * np.var(g, ddof=1) / len(g) for w, g in zip(weights, groups)]
    estimate = sum(w * np.mean(g) for w, g in zip(weights, groups))
    df = sum(terms) ** 2 / sum(term * term / (len(g) - 1) for term, g in zip(terms, groups))
    half = stats.t.ppf(0.975, df) * math.sqrt(sum(terms))
    return estimate, estimate - half, estimate + half


def holm_verdicts(points: pd.DataFrame) -> dict[str, dict]:
    """Per condition other than alpha = 0: uncorrected and Holm-corrected verdict, family size, 80% seeds."""
    baseline = points.loc[points["alpha_label"] == "0", "points"].to_numpy()
    decided = {}
    for label, group in points[points["alpha_label"] != "0"].groupby("alpha_label"):
        own = group["points"].to_numpy()
        if min(len(own), len(baseline)) < 2:
            decided[label] = {"verdict": "undetermined", "uncorrected": "undetermined", "ci": False}
            continue
        difference, low, high, _ = welch(own, baseline)
        uncorrected = "no loss" if low > -MARGIN else "loss" if high < -MARGIN else "undetermined"
        p = stats.ttest_ind(own, baseline - MARGIN, equal_var=False).pvalue
        decided[label] = {"uncorrected": uncorrected, "p": p, "ci": True, "difference": difference,
                          "variances": own.var(ddof=1) + baseline.var(ddof=1), "n": min(len(own), len(baseline))}
    tested = sorted((label for label in decided if decided[label]["ci"]), key=lambda label: decided[label]["p"])
    running = 0.0
    for rank, label in enumerate(tested):
        running = max(running, min(1.0, (len(tested) - rank) * decided[label]["p"]))
        entry = decided[label]
        entry["verdict"] = entry["uncorrected"] if running < 0.05 else "undetermined"
        if entry["verdict"] == "undetermined":  # Bonferroni's level when the correction removed a verdict
            level = 0.05 if entry["uncorrected"] == "undetermined" else 0.05 / len(tested)
            z = stats.norm.isf(level / 2) + stats.norm.isf(0.2)
            n80 = math.ceil(z * z * entry["variances"] / (entry["difference"] + MARGIN) ** 2 - 1e-9)
            entry["seeds_80"] = max(2, n80, entry["n"] + 1)
    for entry in decided.values():
        entry["family"] = len(tested)
    return decided


def strip_names(text: str) -> str:
    return NAMES.sub("", text)


NO_PAPER_EPOCHS = re.compile(r"(?P<e>\d+) epochs? \(the paper trained no [a-z ]+\)")
# the paper's and its follow-ups' numbers a claim or the paper's column may quote (Leavitt & Morcos
# 2021: 2.5x, ~2 points, over 2 points, 200 / 90 epochs, 20 / 5 replicates; arXiv 2010.07693;
# Ranadive et al., TMLR 2023: alpha = -20 from epoch 0 or 5)
PAPER_NUMBERS = {"2.5", "2", "200", "90", "20", "5", "0", "2010.07693", "2023"}
PAPER_EPOCHS = {"resnet20": 200, "vgg16": 200, "resnet18": 90, "resnet50": 90}


def numbers(text: str) -> list[str]:
    return re.findall(r"\d+(?:\.\d+)?", text)


def _signed(value: float) -> str:
    return f"{value:+.2f}"


def _values(points: pd.DataFrame, label: str, column: str = "points") -> np.ndarray:
    values = points.loc[points["alpha_label"] == label, column].to_numpy(dtype=float)
    assert len(values), f"no runs at alpha = {label}"
    return values


def check_comparison(match, points: pd.DataFrame) -> None:
    """'alpha = A: D [L, H] points, N vs M seeds, SI Rx lower' against alpha = 0, from the raw rows."""
    own, baseline = _values(points, match["label"]), _values(points, "0")
    assert (int(match["n"]), int(match["m"])) == (len(own), len(baseline)), match[0]
    if match["l"] is None:
        assert min(len(own), len(baseline)) < 2, f"{match[0]}: an interval exists"
        assert match["d"] == _signed(own.mean() - baseline.mean()), match[0]
    else:
        difference, low, high, _ = welch(own, baseline)
        assert [match["d"], match["l"], match["h"]] == [_signed(v) for v in (difference, low, high)], match[0]
    if match["r"]:
        ratio = _values(points, "0", "mean_si").mean() / _values(points, match["label"], "mean_si").mean()
        assert match["r"] == f"{ratio if match['dir'] == 'lower' else 1 / ratio:.2f}", match[0]
        assert (ratio >= 1) == (match["dir"] == "lower"), match[0]


def check_contrast(match, points: pd.DataFrame) -> None:
    own, reference = _values(points, match["x"]), _values(points, match["y"])
    assert (int(match["n"]), int(match["m"])) == (len(own), len(reference)), match[0]
    assert [match["d"], match["l"], match["h"]] == [_signed(v) for v in welch(own, reference)[:3]], match[0]
    return float(match["l"]), float(match["h"])


def check_cross(match, points: pd.DataFrame, results: Path) -> None:
    """'alpha = A, here minus [page](other.md): D [L, H] points, n/n0 vs m/m0 seeds': a difference of differences."""
    other = accuracy_points(results / match["other"])
    label = match["label"]
    groups = [_values(points, label), _values(points, "0"), _values(other, label), _values(other, "0")]
    assert [int(match[k]) for k in ("n", "n0", "m", "m0")] == [len(g) for g in groups], match[0]
    change = satterthwaite(groups, [1, -1, -1, 1])
    assert [match["d"], match["l"], match["h"]] == [_signed(v) for v in change], match[0]
    return float(match["l"]), float(match["h"])


def check_holm(match, verdicts: dict, history: pd.DataFrame) -> None:
    """'alpha = A: V after Holm over K comparisons; ~S seeds for 80%', or 'alpha = A: undetermined, no CI',
    then 'looks at n = 2 vs 2: V, ...; decided at n = ...': every look of verdict_history.csv, in order."""
    looks = history[history["alpha_label"] == match["label"]]
    expected = [f"{look.n_alpha} vs {look.n_baseline}: {look.verdict}" for look in looks.itertuples(index=False)]
    assert match["looks"] == (", ".join(expected) if expected else None), (match[0], expected)
    current = list(looks["verdict"])
    first = len(current) - 1  # the first look of the last run of the current verdict
    while first > 0 and current[first - 1] == current[-1]:
        first -= 1
    decided = current and current[-1] in ("loss", "no loss")
    assert match["at"] == (expected[first].split(":")[0] if decided else None), match[0]
    entry = verdicts[match["label"]]
    assert bool(match["none"]) == (not entry["ci"]), match[0]
    if match["none"]:
        return
    assert match["v"] == entry["verdict"], match[0]
    assert int(match["k"]) == entry["family"], match[0]
    if entry["verdict"] == "undetermined":
        assert match["s"] and int(match["s"]) == entry["seeds_80"], (match[0], entry["seeds_80"])
    else:
        assert match["s"] is None, match[0]


def expected_claim_word(claim: str, points: pd.DataFrame, verdicts: dict) -> str | None:
    """The claim verdict of docs/report.md's rules for the paper's three generic claims (None: another claim)."""
    constant = {label: verdicts[label] for label in verdicts if re.fullmatch(r"[+-]?\d+(\.\d+)?", label)}
    si = points.groupby("alpha_label")["mean_si"].mean()
    if claim == "mean SI down about 2.5x with no accuracy loss (ResNet20)":
        negative = [label for label in constant if float(label) < 0]
        if any(constant[label]["verdict"] == "no loss" for label in negative):
            return "holds"
        modest = any(si["0"] / si[label] <= 2.5 for label in negative)
        return "fails" if modest and all(constant[label]["verdict"] == "loss" for label in negative) else "undetermined"
    if claim == "near-zero SI for about 2 points of accuracy (ResNet20)":
        lowest = min(constant, key=lambda label: si[label])
        entry = constant[lowest]
        if not entry["ci"]:
            return "undetermined"
        _, low, high, _ = welch(_values(points, lowest), _values(points, "0"))
        if entry["verdict"] in ("loss", "no loss") and low > -2:
            return "holds"
        return "fails" if entry["verdict"] == "loss" and high < -2 else "undetermined"
    if claim == "raising SI lowers accuracy (every model)":
        largest = max((label for label in constant if float(label) > 0), key=float)
        return {"loss": "holds", "no loss": "fails"}.get(constant[largest]["verdict"], "undetermined")
    return None
