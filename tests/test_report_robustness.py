"""Report sections for corruptions, attacks, dimensionality and alpha schedules, from a synthetic tidy table."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from selectivity.report.build import write_report
from selectivity.report.robustness_tables import robustness_vs_baseline, schedule_comparison
from selectivity.report.tables import condition_summary, prepare_table, run_network_table
from tests.report_fixture import ACCURACY, SEED_OFFSET, _row, run_rows, sweep_table

ROBUST = {-10.0: 0.30, -1.0: 0.25, 0.0: 0.20, 1.0: 0.15, 10.0: 0.10}  # planted corruption offset per alpha


def robustness_rows(table: pd.DataFrame) -> list[dict]:
    """Corruption, attack and dimensionality rows for every run of the table."""
    rows = []
    for (run_id, alpha, label, seed), _ in table.groupby(["run_id", "alpha", "alpha_label", "seed"]):
        def add(layer, index, metric, value):
            rows.append(_row(run_id, alpha, label, seed, layer, index, -1, metric, value))
        for severity in range(1, 6):  # mean over severities 3 and over corruptions: ROBUST + 0.5 - 0.3 + seed
            add("network", -1, f"corruption_accuracy:contrast:{severity}", ROBUST[alpha] + 0.5 - 0.1 * severity)
            add("network", -1, f"corruption_accuracy:gaussian_noise:{severity}",
                ROBUST[alpha] + 0.5 - 0.1 * severity + 0.02 * seed)
        add("network", -1, "mean_corruption_accuracy", ROBUST[alpha] + 0.2 + 0.01 * seed)
        add("network", -1, "clean_subset_accuracy", 0.9)  # so the drop is 0.7 - ROBUST - 0.01 seed
        for eps in (0, 0.5, 1):
            add("network", -1, f"attack_accuracy:pgd:{eps:g}", 0.9 - 0.4 * eps - 0.01 * seed)
            add("network", -1, f"attack_accuracy:fgsm:{eps:g}", 0.9 - 0.2 * eps)
        for index in range(4):
            add(f"layer{index + 1}.relu", index, "dim_pr", 3 + index + seed)
            add(f"layer{index + 1}.relu", index, "perturbation_dim_pr", 2 + index)
    return rows


@pytest.fixture(scope="module")
def table():
    base = sweep_table(with_cca=False)
    schedule = pd.DataFrame([dict(row, alpha=0.0) for seed in (0, 1)
                             for row in run_rows(-10.0, seed, label="-10x2,0", with_cca=False)])
    base = pd.concat([base, schedule], ignore_index=True)
    return pd.concat([base, pd.DataFrame(robustness_rows(base))], ignore_index=True)


@pytest.mark.slow  # draws every figure of the report
def test_each_section_is_drawn_with_its_csv(table, tmp_path):
    write_report(table, tmp_path)
    for stem in ("figR1_corruptions_vs_alpha", "figR2_attacks_vs_alpha", "figR3_dimensionality_vs_alpha",
                 "figS_schedules_vs_constant"):
        assert (tmp_path / f"{stem}.png").is_file() and (tmp_path / f"{stem}.svg").is_file(), stem
    page = (tmp_path / "report.md").read_text()
    headings = [line for line in page.splitlines() if line.startswith("### ")]
    assert headings[-4:] == ["### R1. Common corruptions: accuracy vs alpha",
                             "### R2. White-box attacks: accuracy vs alpha and eps",
                             "### R3. Dimensionality per layer vs alpha", "### S. Alpha schedules vs constant alpha"]
    corruptions = pd.read_csv(tmp_path / "corruptions_by_alpha.csv", dtype={"alpha_label": str}).set_index("alpha_label")
    for alpha in ROBUST:
        values = [ROBUST[alpha] + 0.2 + 0.01 * seed for seed in (0, 1, 2)]
        half_width = stats.t.ppf(0.975, 2) * np.std(values, ddof=1) / np.sqrt(3)
        row = corruptions.loc[f"{alpha:g}"]
        assert row["mean_corruption_accuracy_mean"] == pytest.approx(np.mean(values))
        assert row["mean_corruption_accuracy_ci95"] == pytest.approx(half_width)
        # per corruption: each run's mean over its 5 severities, then over seeds
        assert row["gaussian_noise_mean"] == pytest.approx(ROBUST[alpha] + 0.2 + 0.02)
        assert row["contrast_mean"] == pytest.approx(ROBUST[alpha] + 0.2)
    attacks = pd.read_csv(tmp_path / "attacks_by_alpha.csv", dtype={"alpha_label": str}).set_index("alpha_label")
    assert attacks.loc["0", "attack_accuracy:pgd:0.5_mean"] == pytest.approx(0.9 - 0.2 - 0.01)
    dimensions = pd.read_csv(tmp_path / "dimensionality_by_layer.csv", dtype={"alpha_label": str})
    first = dimensions[(dimensions["alpha_label"] == "1") & (dimensions["layer_index"] == 2)].iloc[0]
    assert first["dim_pr_mean"] == pytest.approx(3 + 2 + 1) and first["perturbation_dim_pr_mean"] == 4
    # one panel per dimensionality metric in the table (SVG text is kept as text: svg.fonttype none)
    svg = (tmp_path / "figR3_dimensionality_vs_alpha.svg").read_text()
    assert "Participation ratio of test activations" in svg and "Participation ratio of the perturbation" in svg
    assert "PCs for the variance threshold" not in svg  # no dim_pcs rows, no panel


def test_schedules_sit_beside_the_constants_they_use(table):
    conditions = condition_summary(run_network_table(prepare_table(table)))
    comparison = schedule_comparison(conditions)
    assert comparison["alpha_label"].tolist() == ["-10x2,0", "-10", "0"]
    assert comparison["kind"].tolist() == ["schedule", "constant", "constant"]
    assert set(comparison["schedule"]) == {"-10x2,0"}
    # the schedule's runs are the fixture's alpha=-10 runs, seeds 0 and 1
    expected = np.mean([ACCURACY[-10.0] + SEED_OFFSET[seed] for seed in (0, 1)])
    assert comparison.iloc[0]["test_accuracy_mean"] == pytest.approx(expected)
    assert comparison.iloc[2]["test_accuracy_mean"] == pytest.approx(ACCURACY[0.0])


def _welch(a, b):
    """Independent Welch 95% interval of mean(a) - mean(b), from scipy's t-test."""
    result = stats.ttest_ind(a, b, equal_var=False)
    low, high = result.confidence_interval(0.95)
    return np.mean(a) - np.mean(b), low, high


def test_robustness_differences_from_alpha_zero_are_welch_intervals(table):
    prepared = prepare_table(table)
    compared = robustness_vs_baseline(prepared, run_network_table(prepared))
    row = lambda label, layer, metric: compared[(compared["alpha_label"] == label) & (compared["layer"] == layer)
                                                & (compared["metric"] == metric)].iloc[0]
    # mean corruption accuracy: ROBUST[alpha] + 0.2 + 0.01 seed, so alpha - 0 is ROBUST[alpha] - 0.2 exactly,
    # with the same seed spread in both: 0.10 higher at alpha = -10, 0.05 lower at alpha = 1
    seeds = np.array([0, 1, 2])
    for label, alpha, direction in (("-10", -10.0, "higher"), ("1", 1.0, "lower")):
        got = row(label, "network", "mean_corruption_accuracy")
        difference, low, high = _welch(ROBUST[alpha] + 0.2 + 0.01 * seeds, ROBUST[0.0] + 0.2 + 0.01 * seeds)
        assert got["difference"] == pytest.approx(ROBUST[alpha] - ROBUST[0.0])
        assert (got["ci_low"], got["ci_high"]) == pytest.approx((low, high))
        assert got["direction"] == direction and got["n_seeds"] == 3 and got["n_baseline"] == 3
    # each corruption is its severity mean per run: gaussian noise's seed term is 0.02 seed
    noise = row("-10", "network", "gaussian_noise")
    assert noise["difference"] == pytest.approx(0.10)
    assert (noise["ci_low"], noise["ci_high"]) == pytest.approx(_welch(0.6 + 0.02 * seeds, 0.5 + 0.02 * seeds)[1:])
    # the drop from clean to corrupted on the same images: 0.9 - (ROBUST + 0.2 + 0.01 seed)
    drop = row("-10", "network", "corruption_drop")
    assert drop["mean"] == pytest.approx(0.7 - ROBUST[-10.0] - 0.01) and drop["difference"] == pytest.approx(-0.10)
    assert (drop["ci_low"], drop["ci_high"]) == pytest.approx(_welch(0.4 - 0.01 * seeds, 0.5 - 0.01 * seeds)[1:])
    assert drop["direction"] == "lower"
    # PGD at eps 0.5 takes 0.2 of the eps-0 accuracy in every run
    pgd_drop = row("1", "network", "attack_drop:pgd:0.5")
    assert pgd_drop["mean"] == pytest.approx(0.2) and pgd_drop["difference"] == pytest.approx(0.0, abs=1e-12)
    assert "attack_drop:pgd:0" not in set(compared["metric"])
    # attacks and dimensionality do not depend on alpha here: no direction
    assert row("-10", "network", "attack_accuracy:pgd:0.5")["direction"] == "undetermined"
    # FGSM at eps 0 is 0.9 in every run: a point interval at exactly 0 decides no direction
    fgsm = row("-10", "network", "attack_accuracy:fgsm:0")
    assert (fgsm["difference"], fgsm["ci_low"], fgsm["ci_high"], fgsm["direction"]) == (0, 0, 0, "undetermined")
    layer = row("-1", "layer3.relu", "dim_pr")
    assert layer["difference"] == pytest.approx(0.0) and layer["direction"] == "undetermined"
    assert layer["layer_index"] == 2 and layer["mean"] == pytest.approx(3 + 2 + 1)
    # the schedule is a condition too (its 2 seeds against alpha = 0's 3); alpha = 0 is never compared with itself
    assert row("-10x2,0", "network", "mean_corruption_accuracy")["n_seeds"] == 2
    assert "0" not in set(compared["alpha_label"])


def test_robustness_differences_need_alpha_zero(table):
    prepared = prepare_table(table)
    without = prepared[prepared["alpha_label"] != "0"]
    assert robustness_vs_baseline(without, run_network_table(without)).empty


def test_each_schedule_is_compared_with_each_constant_it_uses(table):
    prepared = prepare_table(table)
    runs = run_network_table(prepared)
    comparison = schedule_comparison(condition_summary(runs), runs).set_index("alpha_label")
    schedule = [ACCURACY[-10.0] + SEED_OFFSET[seed] for seed in (0, 1)]
    for constant, alpha in (("-10", -10.0), ("0", 0.0)):
        reference = [ACCURACY[alpha] + SEED_OFFSET[seed] for seed in (0, 1, 2)]
        difference, low, high = _welch(schedule, reference)
        got = comparison.loc[constant]
        assert got["test_accuracy_schedule_minus"] == pytest.approx(difference)
        assert (got["test_accuracy_schedule_minus_ci_low"], got["test_accuracy_schedule_minus_ci_high"]) == \
            pytest.approx((low, high))
        assert got["test_accuracy_direction"] == ("lower" if high < 0 else "higher" if low > 0 else "undetermined")
    assert np.isnan(comparison.loc["-10x2,0", "test_accuracy_schedule_minus"])  # the schedule's own row


@pytest.mark.slow
def test_sections_without_rows_are_left_out(tmp_path):
    write_report(sweep_table(with_cca=False), tmp_path)
    assert not list(tmp_path.glob("figR*")) and not list(tmp_path.glob("figS*"))
    assert "R1." not in (tmp_path / "report.md").read_text()
