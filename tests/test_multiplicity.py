"""Holm's correction over a page's comparisons, seeds for 80% power, and the headline value cell."""
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from selectivity.report.comparison import compare_accuracy
from selectivity.report.headline import comparison_table, headline_table
from selectivity.report.multiplicity import holm_adjusted, margin_p_value, seeds_for_power
from selectivity.report.page import headline_rows


def test_holm_by_hand():
    # sorted 0.01, 0.02, 0.03, 0.04 with m = 4: 0.04, 0.06, max(0.06, 0.06), max(0.06, 0.04) -> 0.04 .06 .06 .06
    adjusted = holm_adjusted([0.03, 0.01, 0.04, 0.02])
    assert adjusted.tolist() == pytest.approx([0.06, 0.04, 0.06, 0.06])
    # NaN is not a comparison: m = 2 here
    assert holm_adjusted([0.02, np.nan, 0.5]).tolist()[0] == pytest.approx(0.04)
    assert math.isnan(holm_adjusted([0.02, np.nan, 0.5])[1])
    assert holm_adjusted([0.5, 0.9]).tolist() == pytest.approx([1.0, 1.0])  # capped at 1, then kept monotone


def test_margin_p_value_is_welchs_test_against_minus_the_margin():
    values, baseline = np.array([79.0, 80.5, 80.0]), np.array([81.0, 80.7, 81.6, 80.9])
    c = compare_accuracy(values, baseline, 0.5)
    # the same test from scipy: shift the baseline by -margin and test equal means (Welch)
    expected = stats.ttest_ind(values, baseline - 0.5, equal_var=False).pvalue
    assert margin_p_value(c.difference, c.ci_low, c.ci_high, c.degrees_of_freedom, 0.5) == pytest.approx(expected)


def test_seeds_for_power_is_the_normal_approximation():
    # d = -1, margin 0.5, variances 1.5 and 0.5: n = (z_.975 + z_.8)^2 * 2 / 0.25
    z = 1.959963984540054 + 0.8416212335729143
    assert seeds_for_power(-1.0, 1.5, 0.5, 0.5) == math.ceil(z * z * 2 / 0.25)
    # at Bonferroni's level for 4 comparisons: z_{1 - 0.05/8}
    z4 = stats.norm.isf(0.05 / 8) + stats.norm.isf(0.2)
    assert seeds_for_power(-1.0, 1.5, 0.5, 0.5, level=0.05 / 4) == math.ceil(z4 * z4 * 2 / 0.25)
    assert math.isinf(seeds_for_power(-0.5, 1.0, 1.0, 0.5))


def _tables(differences, sd=0.4, seeds=3):
    """runs and conditions frames as tables.run_network_table / condition_summary give them."""
    spread = np.array([-1.0, 0.0, 1.0]) * sd
    runs, conditions = [], []
    for label, difference in [("0", 0.0)] + [(str(k), d) for k, d in differences.items()]:
        for seed, offset in enumerate(spread[:seeds]):
            runs.append({"alpha_label": label, "seed": seed, "test_accuracy": (80 + difference + offset) / 100})
        conditions.append({"alpha_label": label, "alpha": float(label), "constant": True,
                           "mean_si_mean": 0.2 if label == "0" else 0.1, "test_accuracy_mean": (80 + difference) / 100})
    return pd.DataFrame(runs), pd.DataFrame(conditions)


def test_a_loss_that_does_not_survive_holm_reads_undetermined_with_its_uncorrected_verdict():
    runs, conditions = _tables({-1: -1.5, -2: -1.55, -3: -20.0, 1: -20.0})
    table = comparison_table(runs, conditions, 0.5).set_index("alpha_label")
    # independent: each Welch p against -0.5 from scipy, Holm by a loop written here
    points = runs.assign(p=100 * runs["test_accuracy"])
    base = points.loc[points["alpha_label"] == "0", "p"].to_numpy()
    p = {k: stats.ttest_ind(points.loc[points["alpha_label"] == k, "p"].to_numpy(), base - 0.5,
                            equal_var=False).pvalue for k in ("-1", "-2", "-3", "1")}
    order = sorted(p, key=p.get)
    holm, running = {}, 0.0
    for rank, key in enumerate(order):
        running = max(running, min(1.0, (4 - rank) * p[key]))
        holm[key] = running
    for key in p:
        assert table.loc[key, "holm_p"] == pytest.approx(holm[key])
        ci_high = table.loc[key, "ci_high_points"]
        uncorrected = "loss" if ci_high < -0.5 else "undetermined"
        assert table.loc[key, "verdict_uncorrected"] == uncorrected
        assert table.loc[key, "verdict"] == (uncorrected if holm[key] < 0.05 else "undetermined")
        assert table.loc[key, "family_size"] == 4
    # alpha = -1: a loss uncorrected (CI below -0.5), undetermined after the correction
    assert table.loc["-1", "verdict_uncorrected"] == "loss" and table.loc["-1", "verdict"] == "undetermined"
    assert table.loc["-1", "likely_verdict"] == "loss" and table.loc["-1", "seeds_needed_80"] > 3


def test_the_iso_accuracy_headline_shows_its_candidates_number_not_na():
    # issue 33: the value cell said n/a while the statement gave the reduction
    runs, conditions = _tables({-1: -0.3, -10: -6.0}, sd=1.0)
    conditions.loc[conditions["alpha_label"] == "-1", "mean_si_mean"] = 0.2 / 2.2  # a 2.20x reduction
    headline = headline_table(runs, conditions, 0.5)
    cells = headline_rows(headline)
    row = next(cells_row for cells_row in cells[1:] if cells_row[0] == "si_reduction_at_iso_accuracy")
    assert "(2.20x)" in row[-1]
    assert row[2] == "none shown (2.20 undetermined)"
