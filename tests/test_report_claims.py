"""The opening summary table of a report: each claim of the paper, ours, the verdict and the scale."""
import math

import pandas as pd
import pytest
from scipy import stats
from tests.report_fixture import sweep_table

from selectivity.report import report_sweep
from selectivity.report.build import summary_tables
from selectivity.report.claims_summary import HEADER, claim_rows, summary_rows
from selectivity.report.provenance import sweep_factors
from selectivity.report.tables import prepare_table

HALF_3_VS_3 = stats.t.ppf(0.975, 4) * math.sqrt(2 / 3)  # Welch half-width, 3 vs 3 seeds of sd 1 point


def _claims(table: pd.DataFrame, provenance=None) -> list[list[str]]:
    table = prepare_table(table)
    compared = summary_tables(table)["accuracy_vs_baseline.csv"]
    return summary_rows(compared, "resnet20", "cifar10", sweep_factors(table, provenance))


def test_each_claim_quotes_its_comparison_with_hand_computed_numbers():
    """The fixture: accuracy 85 / 89 / 90 / 80 / 50% at alpha -10 / -1 / 0 / 1 / 10 (sd 1 point, 3 seeds),
    mean SI 0.04 / 0.16 / 0.40 / 0.50 / 0.45."""
    rows = _claims(sweep_table())
    assert rows[0] == HEADER
    by_claim = {row[0]: row for row in rows[1:]}
    low, high = -1 - HALF_3_VS_3, -1 + HALF_3_VS_3
    reduction = by_claim["mean SI down about 2.5x with no accuracy loss (ResNet20)"]
    assert reduction[2] == f"alpha = -1: -1.00 [{low:+.2f}, {high:+.2f}] points, 3 vs 3 seeds, SI 2.50x lower"
    assert reduction[3].startswith("undetermined on a short schedule (alpha = -1: undetermined after Holm over 4 "
                                   "comparisons; ~")
    cost = by_claim["near-zero SI for about 2 points of accuracy (ResNet20)"]
    assert cost[2] == (f"alpha = -10: -5.00 [{-5 - HALF_3_VS_3:+.2f}, {-5 + HALF_3_VS_3:+.2f}] points, 3 vs 3 seeds, "
                       "SI 10.00x lower")
    assert cost[3] == "fails on a short schedule (alpha = -10: loss after Holm over 4 comparisons)"
    raising = by_claim["raising SI lowers accuracy (every model)"]
    assert raising[2].startswith("alpha = 10: -40.00 [") and raising[2].endswith("SI 1.12x higher")
    assert raising[3] == "holds on a short schedule (alpha = 10: loss after Holm over 4 comparisons)"
    assert {row[4] for row in rows[1:]} == {"3 of the paper's 200 epochs; precision not recorded; machine not recorded"}


def test_the_provenance_names_precision_and_machine_and_a_short_cpu_schedule():
    table = sweep_table()
    runs = sorted(table["run_id"].unique())
    provenance = pd.DataFrame({"run_id": runs, "precision": "fp32", "device": "cpu", "cpu": "AMD EPYC 7B13 (AVX2)"})
    rows = _claims(table, provenance)
    assert {row[4] for row in rows[1:]} == {"3 of the paper's 200 epochs; fp32; cpu: AMD EPYC 7B13 (AVX2)"}
    assert all(" on a short CPU schedule (" in row[3] for row in rows[1:])
    partial = provenance.iloc[1:]  # a run without a record: the sweep's precision is not known
    assert {row[4] for row in _claims(table, partial)[1:]} == {
        "3 of the paper's 200 epochs; precision not recorded; machine not recorded"}


def _compared(rows) -> pd.DataFrame:
    """accuracy_vs_baseline-like rows from (alpha, si_reduction, verdict, ci_low, ci_high)."""
    return pd.DataFrame([{"alpha_label": f"{alpha:g}", "alpha": alpha, "constant": True, "si_reduction": reduction,
                          "verdict": verdict, "ci_low_points": low, "ci_high_points": high}
                         for alpha, reduction, verdict, low, high in rows])


@pytest.mark.parametrize("rows, expected", [
    ([(-1, 2.1, "no loss", -0.3, 0.2), (-10, 12.0, "loss", -7, -6)], "holds"),
    ([(-1, 2.1, "loss", -1.2, -0.7), (-10, 12.0, "loss", -7, -6)], "fails"),
    ([(-10, 15.0, "loss", -5.5, -3.7)], "undetermined"),  # a 15x reduction alone says nothing of 2.5x
    ([(-1, 2.1, "undetermined", -0.7, 0.1), (-10, 12.0, "loss", -7, -6)], "undetermined"),
])
def test_the_reduction_claim_holds_on_a_no_loss_and_fails_only_on_a_modest_reduction_that_loses(rows, expected):
    verdict, quoted = claim_rows(_compared(rows))["si_reduction_at_iso_accuracy"]
    assert verdict == expected
    assert len(quoted) == 1


@pytest.mark.parametrize("verdict, low, high, expected", [
    ("loss", -1.9, -0.8, "holds"), ("no loss", -0.4, 0.3, "holds"), ("loss", -7.4, -5.9, "fails"),
    ("loss", -2.5, -1.5, "undetermined"), ("undetermined", -1.0, 0.2, "undetermined")])
def test_near_zero_si_costs_at_most_about_two_points(verdict, low, high, expected):
    claims = claim_rows(_compared([(-10, 12.0, verdict, low, high)]))
    assert claims["accuracy_change_at_lowest_si"][0] == expected


@pytest.mark.parametrize("verdict, expected", [("loss", "holds"), ("no loss", "fails"), ("undetermined", "undetermined")])
def test_raising_si_holds_on_a_loss_at_the_largest_positive_alpha(verdict, expected):
    claims = claim_rows(_compared([(1, 0.3, "no loss", -0.2, 0.4), (10, 0.4, verdict, -40, -30)]))
    assert claims["accuracy_at_largest_positive_alpha"] == (expected, claims["accuracy_at_largest_positive_alpha"][1])
    assert claims["accuracy_at_largest_positive_alpha"][1][0].alpha == 10


def test_report_md_opens_with_the_table_and_names_the_short_schedule_in_its_title(tmp_path):
    table = sweep_table(alphas=(-1.0, 0.0, 1.0), with_cca=False)
    table.to_csv(tmp_path / "results.csv", index=False)
    runs = sorted(table["run_id"].unique())
    pd.DataFrame({"run_id": runs, "precision": "bf16", "device": "cpu", "cpu": "Intel Xeon (AMX)"}).to_csv(
        tmp_path / "provenance.csv", index=False)
    report_sweep(tmp_path / "results.csv", tmp_path / "report")
    lines = (tmp_path / "report" / "report.md").read_text().splitlines()
    assert lines[0] == ("# resnet20 on cifar10: class selectivity sweep on a short CPU schedule: "
                        "3 of the paper's 200 epochs")
    assert lines[2] == "| " + " | ".join(HEADER) + " |"
    assert "bf16; cpu: Intel Xeon (AMX)" in lines[4]
    assert (tmp_path / "report" / "provenance.csv").is_file()  # published beside the tables it describes
