"""The report stage on a synthetic sweep: files, hand-computed headline numbers, partial tables."""
import math

import numpy as np
import pandas as pd
import pytest
from tests.report_fixture import ACCURACY, MEAN_SI, run_rows, sweep_table

from selectivity.errors import SelectivityError
from selectivity.report import load_results, report_sweep, write_report
from selectivity.report.style import alpha_colours
from selectivity.report.tables import confidence_interval

FIGURES = ["fig1a_si_distribution_pooled", "fig1b_si_distribution_by_layer", "fig2_si_accuracy_vs_alpha",
           "fig3_si_by_depth", "fig4_dead_fraction_vs_alpha", "fig5_cca_ratio_vs_alpha"]
TABLES = ["runs.csv", "summary_by_alpha.csv", "summary_by_layer.csv", "headline.csv", "accuracy_vs_baseline.csv",
          "cca_by_layer.csv"]
T_975_DOF2 = 4.302652729749464  # Student t 97.5% quantile, 2 degrees of freedom (3 seeds)
T_975_DOF4 = 2.7764451051977987  # ... 4 degrees of freedom (Welch, 3 vs 3 seeds of equal spread)


@pytest.fixture(scope="module")
def full_report(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("report")
    return write_report(sweep_table(), out_dir), out_dir


def _headline(out_dir) -> pd.DataFrame:
    return pd.read_csv(out_dir / "headline.csv").set_index("key")


def test_writes_every_figure_and_table(full_report):
    html_path, out_dir = full_report
    assert html_path == out_dir / "index.html"
    for stem in FIGURES:
        assert (out_dir / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", stem
        assert b"<svg" in (out_dir / f"{stem}.svg").read_bytes(), stem
    for name in TABLES + ["index.html", "report.md"]:
        assert (out_dir / name).stat().st_size > 0, name


def test_page_embeds_every_figure_and_nothing_external(full_report):
    html_path, out_dir = full_report
    page = html_path.read_text()
    markdown = (out_dir / "report.md").read_text()
    assert page.count('src="data:image/png;base64,') == len(FIGURES)
    for stem in FIGURES:
        assert f'href="{stem}.svg"' in page and f"]({stem}.png)" in markdown
    for external in ("<script", "<link", 'src="http', "@import", "url("):
        assert external not in page
    assert "Not drawn" not in page


def test_headline_numbers_match_hand_computation(full_report):
    headline = _headline(full_report[1])
    # every alpha vs alpha=0: 3 seeds each with sd 1 point, so Welch se = sqrt(2/3), df = 4
    half_width = T_975_DOF4 * math.sqrt(2 / 3)
    # (a) alpha=-1 is -1 point, CI [-3.27, +1.27] contains -0.5: undetermined, so no reduction is claimed;
    #     alpha=-10 (-5 points, CI [-7.27, -2.73]) is a loss
    reduction = headline.loc["si_reduction_at_iso_accuracy"]
    assert reduction["alpha"] == -1 and math.isnan(reduction["value"]) and reduction["verdict"] == "undetermined"
    interval = (reduction["ci_low_points"], reduction["ci_high_points"])
    assert interval == pytest.approx((-1 - half_width, -1 + half_width))
    assert "1 loss, 1 undetermined" in reduction["statement"]
    # (b) lowest mean SI is alpha=-10 (0.04): 85% - 90% = -5 points, a loss
    assert headline.loc["accuracy_change_at_lowest_si", "alpha"] == -10
    assert headline.loc["accuracy_change_at_lowest_si", "value"] == pytest.approx(-5.0)
    assert headline.loc["accuracy_change_at_lowest_si", "verdict"] == "loss"
    # (c) largest positive alpha is 10, mean accuracy 50%, 40 points below alpha=0
    assert headline.loc["accuracy_at_largest_positive_alpha", "alpha"] == 10
    assert headline.loc["accuracy_at_largest_positive_alpha", "value"] == pytest.approx(50.0)
    assert headline.loc["accuracy_at_largest_positive_alpha", "difference_points"] == pytest.approx(-40.0)
    assert "-40.00 points" in headline.loc["accuracy_at_largest_positive_alpha", "statement"]
    # seeds needed for alpha=-1: pooled sd 1 point, |d + m| = 0.5; t(0.975, 2n-2) * sqrt(2/n) < 0.5 first at
    # n = 32 (1.999 * 0.250 = 0.4997; n = 31: 2.000 * 0.254 = 0.508)
    assert reduction["seeds_needed"] == 32
    page = full_report[0].read_text()
    # 80% power by the normal approximation: (1.95996 + 0.84162)^2 * (1 + 1) / 0.5^2 = 62.79 -> 63 seeds;
    # the estimate -1 lies below -0.5, so more seeds would most likely say "loss"
    assert "-1.00 [-3.27, +1.27]" in page and "undetermined (~32 seeds for 50%, ~63 for 80%, likely loss)" in page
    compared = pd.read_csv(full_report[1] / "accuracy_vs_baseline.csv").set_index("alpha")
    assert list(compared.index) == [-10, -1, 1, 10]
    assert list(compared["verdict"]) == ["loss", "undetermined", "loss", "loss"]


def test_summary_by_alpha_has_means_cis_and_counts(full_report):
    summary = pd.read_csv(full_report[1] / "summary_by_alpha.csv").set_index("alpha")
    assert list(summary.index) == sorted(ACCURACY)
    assert (summary["n_seeds"] == 3).all()
    for alpha, accuracy in ACCURACY.items():
        assert summary.loc[alpha, "test_accuracy_mean"] == pytest.approx(accuracy)
        assert summary.loc[alpha, "test_accuracy_ci95"] == pytest.approx(T_975_DOF2 * 0.01 / math.sqrt(3))
        assert summary.loc[alpha, "mean_si_mean"] == pytest.approx(MEAN_SI[alpha])
    assert summary.loc[-10, "dead_fraction_mean"] == pytest.approx(2 / 16)
    page = (full_report[1] / "index.html").read_text()
    assert "90.00 ± 2.48" in page and "n = 3 seeds per alpha" in page


def test_confidence_interval_by_hand():
    mean, half_width, n = confidence_interval([1.0, 2.0, 3.0, float("nan")])
    assert (mean, n) == (2.0, 3) and half_width == pytest.approx(T_975_DOF2 / math.sqrt(3))
    mean, half_width, n = confidence_interval([0.7])
    assert mean == 0.7 and math.isnan(half_width) and n == 1


def test_alpha_colours_encode_sign_and_magnitude():
    colours = alpha_colours([-10, -1, 0, 1, 10])
    assert colours[0] == (0.0, 0.0, 0.0, 1.0)
    assert colours[-1][2] > colours[-1][0] and colours[1][0] > colours[1][2]  # blue < 0, red > 0
    assert sum(colours[-10][:3]) < sum(colours[-1][:3])  # larger |alpha| is darker
    assert colours[10] != colours[-10]


def test_one_seed_without_cca_rows(tmp_path):
    """An early partial sweep: one seed per alpha and no CCA analysis yet."""
    write_report(sweep_table(seeds=(0,), with_cca=False), tmp_path)
    summary = pd.read_csv(tmp_path / "summary_by_alpha.csv")
    assert (summary["n_seeds"] == 1).all() and summary["test_accuracy_ci95"].isna().all()
    # one seed per condition: no CI, so no verdict but "undetermined"
    statement = _headline(tmp_path).loc["si_reduction_at_iso_accuracy", "statement"]
    assert "No alpha < 0 shows no loss" in statement and "no CI" in statement
    assert all((tmp_path / f"{stem}.png").exists() for stem in FIGURES[:-1])
    assert not (tmp_path / "fig5_cca_ratio_vs_alpha.png").exists()
    assert not (tmp_path / "cca_by_layer.csv").exists()
    page = (tmp_path / "index.html").read_text()
    assert "One seed per alpha" in page and "n = 1 seed per alpha" in page
    assert "Not drawn: the table has no pwcca_ratio" in page
    assert page.count('src="data:image/png;base64,') == len(FIGURES) - 1


def test_missing_alpha_zero_explains_headline(tmp_path):
    """Through report_sweep, as `selectivity report SWEEP` runs it."""
    sweep_table(alphas=(-10.0, -1.0, 1.0), seeds=(0, 1)).to_parquet(tmp_path / "results.parquet")
    assert report_sweep(tmp_path) == tmp_path / "report" / "index.html"
    headline = _headline(tmp_path / "report")
    assert headline["value"].isna().all()
    assert headline["statement"].str.contains("No alpha=0 runs").all()


def test_partial_sweep_and_schedule(tmp_path):
    table = sweep_table()
    table = table[~((table["alpha"] == 10) & (table["seed"] > 0))]  # alpha=10 finished one seed
    schedule = pd.DataFrame(run_rows(-10.0, 0, label="0x5,-20", with_cca=False)).assign(alpha=-20.0)
    html_path = write_report(pd.concat([table, schedule]), tmp_path, title="partial sweep")
    summary = pd.read_csv(tmp_path / "summary_by_alpha.csv", dtype={"alpha_label": str})
    counts = dict(zip(summary["alpha_label"], summary["n_seeds"]))
    assert counts == {"0x5,-20": 1, "-10": 3, "-1": 3, "0": 3, "1": 3, "10": 1}
    page = html_path.read_text()
    assert "<title>partial sweep</title>" in page and "n = 1-3 seeds per alpha" in page
    # the schedule is not a constant alpha, so the headline still names alpha=-1
    assert _headline(tmp_path).loc["si_reduction_at_iso_accuracy", "alpha"] == -1


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_load_results_round_trip(tmp_path, suffix):
    table = sweep_table(alphas=(0.0, -1.0), seeds=(0,))
    path = tmp_path / f"results{suffix}"
    table.to_parquet(path) if suffix == ".parquet" else table.to_csv(path, index=False)
    loaded = load_results(tmp_path)
    assert set(loaded["alpha_label"]) == {"0", "-1"}
    assert (loaded["epoch"] == 3).all()  # the stale epoch-0 rows are dropped
    assert np.isclose(loaded["value"].sum(), table[table["epoch"] == 3]["value"].sum())


def test_bad_tables_raise_one_line_errors(tmp_path):
    table = sweep_table(alphas=(0.0,), seeds=(0,))
    with pytest.raises(SelectivityError, match="lacks columns"):
        write_report(table.drop(columns=["alpha_label"]), tmp_path)
    with pytest.raises(SelectivityError, match="mixes model/dataset"):
        write_report(pd.concat([table, table.assign(model="vgg16")]), tmp_path)
    with pytest.raises(SelectivityError, match="no results table"):
        load_results(tmp_path)


def test_a_results_path_that_is_missing_or_not_a_file_is_named_as_such(tmp_path):
    with pytest.raises(SelectivityError, match=r"results\.csv does not exist: expected a \.parquet or \.csv file"):
        load_results(tmp_path / "results.csv")
    with pytest.raises(SelectivityError, match=r"/dev/null is not a regular file: expected a \.parquet or \.csv file"):
        load_results("/dev/null")
