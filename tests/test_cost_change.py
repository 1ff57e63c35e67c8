"""`selectivity compare` / report.cost_change: each alpha's effect in two sweeps and its change, with a Welch CI."""
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from selectivity.cli import main
from selectivity.errors import SelectivityError
from selectivity.report.comparison import welch_contrast
from selectivity.report.cost_change import cost_change

# accuracies per (sweep, alpha): first = a short schedule, second = a longer one
FIRST = {0.0: [0.80, 0.81, 0.83], -10.0: [0.70, 0.74, 0.72], -1.0: [0.79, 0.80, 0.84]}
SECOND = {0.0: [0.90, 0.91, 0.89, 0.90], -10.0: [0.86, 0.85, 0.88], -1.0: [0.90, 0.88, 0.91]}
SI = {0.0: 0.40, -10.0: 0.04, -1.0: 0.16}


def tidy(accuracies: dict, prefix: str, si_shift: float = 0.0) -> pd.DataFrame:
    """Network rows of a sweep: test accuracy as given, mean SI = SI[alpha] + si_shift + seed / 100."""
    rows = []
    for alpha, values in accuracies.items():
        for seed, value in enumerate(values):
            run = dict(run_id=f"{prefix}{alpha:g}/seed_{seed}", model="resnet20", dataset="cifar10", alpha=alpha,
                       alpha_label=f"{alpha:g}", seed=seed, epoch=6, layer="network", layer_index=-1, unit=-1)
            rows += [{**run, "metric": "test_accuracy", "value": value},
                     {**run, "metric": "mean_si", "value": SI[alpha] + si_shift + seed / 100}]
    return pd.DataFrame(rows)


def write_sweep(folder, accuracies: dict, prefix: str, **recorded) -> Path:
    """The sweep's results.csv with a provenance.csv beside it (the same recipe, precision and machine
    unless `recorded` overrides a column), as `selectivity sweep` publishes them; returns results.csv."""
    folder.mkdir(parents=True, exist_ok=True)
    table = tidy(accuracies, prefix)
    table.to_csv(folder / "results.csv", index=False)
    provenance = {"epochs": 6, "batch_size": 256, "lr": 0.2, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4,
                  "schedule": "onecycle", "warmup_epochs": 1.0, "precision": "fp32", "device": "cpu",
                  "cpu": "AMD EPYC 7B13 (AVX2)", "started": "2026-12-01T10:00:00+00:00", **recorded}
    pd.DataFrame([{"run_id": run_id, **provenance} for run_id in table["run_id"].unique()]).to_csv(
        folder / "provenance.csv", index=False)
    return folder / "results.csv"


def satterthwaite(groups, weights):
    """Independent of the package: sum w mean, and its 95% CI with df = (sum e)^2 / sum(e^2 / (n - 1))."""
    e = [w**2 * np.var(g, ddof=1) / len(g) for w, g in zip(weights, groups)]
    df = sum(e) ** 2 / sum(x**2 / (len(g) - 1) for x, g in zip(e, groups))
    estimate = sum(w * np.mean(g) for w, g in zip(weights, groups))
    half = stats.t.ppf(0.975, df) * math.sqrt(sum(e))
    return estimate, estimate - half, estimate + half, df


def test_change_is_the_difference_of_differences_with_its_welch_interval():
    table = cost_change(tidy(FIRST, "a"), tidy(SECOND, "b")).set_index(["metric", "alpha_label"])
    row = table.loc[("test_accuracy", "-10")]
    first_effect = np.mean(FIRST[-10.0]) - np.mean(FIRST[0.0])  # -0.0933
    second_effect = np.mean(SECOND[-10.0]) - np.mean(SECOND[0.0])  # -0.0333
    assert row["first_effect"] == pytest.approx(first_effect)
    assert row["second_effect"] == pytest.approx(second_effect)
    assert row["change"] == pytest.approx(second_effect - first_effect)  # +0.06: the loss shrank
    estimate, low, high, df = satterthwaite([SECOND[-10.0], SECOND[0.0], FIRST[-10.0], FIRST[0.0]], [1, -1, -1, 1])
    assert (row["change_ci_low"], row["change_ci_high"], row["change_df"]) == pytest.approx((low, high, df))
    assert row["direction"] == "higher"
    # each sweep's own effect is scipy's Welch interval
    welch = stats.ttest_ind(SECOND[-10.0], SECOND[0.0], equal_var=False).confidence_interval()
    assert (row["second_effect_ci_low"], row["second_effect_ci_high"]) == pytest.approx((welch.low, welch.high))
    assert (row["n_first"], row["n_first_baseline"], row["n_second"], row["n_second_baseline"]) == (3, 3, 3, 4)
    assert list(table.loc["test_accuracy"].index) == ["-10", "-1"]  # by alpha, without the baseline


def test_a_change_whose_interval_contains_zero_is_undetermined():
    row = cost_change(tidy(FIRST, "a"), tidy(SECOND, "b")).set_index(["metric", "alpha_label"]).loc[
        ("test_accuracy", "-1")]
    assert row["change_ci_low"] < 0 < row["change_ci_high"]
    assert row["direction"] == "undetermined"


def test_a_grown_loss_is_lower():
    table = cost_change(tidy(SECOND, "b"), tidy(FIRST, "a")).set_index(["metric", "alpha_label"])
    assert table.loc[("test_accuracy", "-10"), "direction"] == "lower"
    # mean SI moves by the same shift at every alpha: no change in its effect
    si = cost_change(tidy(FIRST, "a"), tidy(FIRST, "b", si_shift=0.05)).set_index(["metric", "alpha_label"])
    assert si.loc[("mean_si", "-10"), "change"] == pytest.approx(0.0, abs=1e-12)
    assert si.loc[("mean_si", "-10"), "direction"] == "undetermined"


def test_two_groups_give_the_welch_t_test_interval():
    a, b = [0.70, 0.74, 0.72, 0.69], [0.80, 0.81, 0.83]
    welch = stats.ttest_ind(a, b, equal_var=False)
    estimate, low, high, df = welch_contrast([a, b], [1.0, -1.0])
    assert estimate == pytest.approx(np.mean(a) - np.mean(b))
    assert (low, high) == pytest.approx(tuple(welch.confidence_interval()))
    assert df == pytest.approx(welch.df)


def test_the_interval_covers_the_true_change_about_95_percent_of_the_time():
    # a fixed generator: deterministic, yet a wrong df or a missing weight^2 moves the rate far from 0.95
    rng = np.random.default_rng(7)
    sizes, sds, weights = (3, 4, 5, 3), (0.01, 0.03, 0.02, 0.005), (1.0, -1.0, -1.0, 1.0)
    covered = 0
    trials = 4000
    for _ in range(trials):
        groups = [rng.normal(0.0, sd, n) for n, sd in zip(sizes, sds)]
        _, low, high, _ = welch_contrast(groups, weights)
        covered += low <= 0.0 <= high
    assert 0.93 <= covered / trials <= 0.97


@pytest.mark.filterwarnings("error")  # no variance of one value is taken (numpy warns, and the interval is NaN anyway)
def test_fewer_than_two_seeds_leave_the_change_without_an_interval():
    first = {**FIRST, -10.0: [0.71]}
    row = cost_change(tidy(first, "a"), tidy(SECOND, "b")).set_index(["metric", "alpha_label"]).loc[
        ("test_accuracy", "-10")]
    assert row["change"] == pytest.approx(np.mean(SECOND[-10.0]) - np.mean(SECOND[0.0]) - (0.71 - np.mean(FIRST[0.0])))
    assert math.isnan(row["change_ci_low"]) and math.isnan(row["first_effect_ci_low"])
    assert row["direction"] == "undetermined"


@pytest.mark.parametrize("first, second, expected", [
    ({-10.0: FIRST[-10.0]}, SECOND, "first results table has no alpha = 0 runs"),
    ({0.0: FIRST[0.0]}, SECOND, "share no condition besides alpha = 0"),
])
def test_tables_that_cannot_be_compared_are_one_line_errors(first, second, expected):
    with pytest.raises(SelectivityError, match=expected) as error:
        cost_change(tidy(first, "a"), tidy(second, "b"))
    assert "\n" not in str(error.value)


def test_the_same_runs_in_both_tables_are_refused():
    with pytest.raises(SelectivityError, match="share 9 runs .*independent seeds"):
        cost_change(tidy(FIRST, "a"), tidy(FIRST, "a"))


def test_command_prints_and_writes_the_table(tmp_path, capsys):
    first, second = write_sweep(tmp_path / "first", FIRST, "a"), write_sweep(tmp_path / "second", SECOND, "b")
    out = tmp_path / "change.csv"
    assert main(["compare", str(first), str(second), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    written = pd.read_csv(out, dtype={"alpha_label": str}).set_index(["metric", "alpha_label"])
    change = (np.mean(SECOND[-10.0]) - np.mean(SECOND[0.0]) - np.mean(FIRST[-10.0]) + np.mean(FIRST[0.0])) * 100
    assert written.loc[("test_accuracy", "-10"), "change"] * 100 == pytest.approx(change)
    line = next(line for line in printed.splitlines() if line.startswith("test_accuracy") and "alpha=-10 " in line)
    assert f"change {change:+.2f} [" in line and line.endswith("higher")


@pytest.mark.parametrize("out", ["a_file.txt/change.csv", "."])
def test_a_bad_out_path_is_a_one_line_error_before_anything_is_printed(tmp_path, capsys, out):
    tidy(FIRST, "a").to_csv(tmp_path / "first.csv", index=False)
    tidy(SECOND, "b").to_csv(tmp_path / "second.csv", index=False)
    (tmp_path / "a_file.txt").write_text("not a folder")
    code = main(["compare", str(tmp_path / "first.csv"), str(tmp_path / "second.csv"), "--out", str(tmp_path / out)])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    err = captured.err.strip()
    assert err.startswith("selectivity compare: error:") and "\n" not in err
    assert ("a_file.txt" in err and "cannot write" in err) if out != "." else "is a folder" in err


def test_command_reports_a_missing_table_in_one_line(tmp_path, capsys):
    tidy(FIRST, "a").to_csv(tmp_path / "first.csv", index=False)
    assert main(["compare", str(tmp_path / "first.csv"), str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("selectivity compare: error:") and "nowhere" in err and "\n" not in err


def test_constant_alphas_match_by_value_whatever_their_label():
    second = tidy(SECOND, "b")
    second["alpha_label"] = second["alpha"].map(lambda alpha: f"{alpha:.1f}")  # "-10.0", "0.0": another writer
    second.loc[second["alpha"] == 0, ["alpha", "alpha_label"]] = (-0.0, "-0.0")  # still alpha = 0
    table = cost_change(tidy(FIRST, "a"), second).set_index(["metric", "alpha_label"])
    assert list(table.loc["test_accuracy"].index) == ["-10", "-1"]  # the first table's labels
    change = np.mean(SECOND[-10.0]) - np.mean(SECOND[0.0]) - np.mean(FIRST[-10.0]) + np.mean(FIRST[0.0])
    assert table.loc[("test_accuracy", "-10"), "change"] == pytest.approx(change)


def test_schedules_are_compared_by_label():
    def with_schedule(frame, prefix, values):
        extra = tidy({-10.0: values}, prefix + "s")
        extra["alpha_label"] = "0x2,-10"  # a schedule ending at -10, beside constant -10
        return pd.concat([frame, extra], ignore_index=True)
    first = with_schedule(tidy(FIRST, "a"), "a", [0.76, 0.77, 0.78])
    second = with_schedule(tidy(SECOND, "b"), "b", [0.88, 0.87, 0.89])
    table = cost_change(first, second).set_index(["metric", "alpha_label"])
    assert set(table.loc["test_accuracy"].index) == {"-10", "-1", "0x2,-10"}
    change = np.mean([0.88, 0.87, 0.89]) - np.mean(SECOND[0.0]) - np.mean([0.76, 0.77, 0.78]) + np.mean(FIRST[0.0])
    assert table.loc[("test_accuracy", "0x2,-10"), "change"] == pytest.approx(change)
    assert table.loc[("test_accuracy", "-10"), "n_first"] == 3  # the schedule's runs are not constant -10's


def _projected_group(values, n: int) -> np.ndarray:
    """n values with the mean and sample variance of `values` (a standardized ramp, scaled)."""
    ramp = np.arange(n, dtype=float)
    ramp = (ramp - ramp.mean()) / ramp.std(ddof=1)
    return np.mean(values) + np.std(values, ddof=1) * ramp


def test_seeds_needed_is_where_a_projected_interval_of_the_change_first_excludes_zero():
    # effects -0.03 (first) and -0.01 (second): a change of +0.02, undetermined with 3-4 seeds a group.
    # Project n seeds in each of the four groups with their observed means and spreads: the CI must
    # exclude 0 at seeds_needed, and not one seed earlier
    first = {0.0: [0.80, 0.81, 0.83], -1.0: [0.76, 0.79, 0.80]}
    second = {0.0: [0.90, 0.91, 0.89, 0.90], -1.0: [0.88, 0.90, 0.89]}
    row = cost_change(tidy(first, "a"), tidy(second, "b")).set_index(["metric", "alpha_label"]).loc[
        ("test_accuracy", "-1")]
    assert row["change"] == pytest.approx(0.02) and row["direction"] == "undetermined"
    observed = [second[-1.0], second[0.0], first[-1.0], first[0.0]]

    def excludes_zero(n):
        _, low, high, _ = satterthwaite([_projected_group(g, n) for g in observed], [1, -1, -1, 1])
        return low > 0 or high < 0

    needed = int(row["seeds_needed"])
    assert needed >= 4 and excludes_zero(needed)
    assert not excludes_zero(needed - 1) or needed - 1 < 4


def test_seeds_needed_for_the_change_worked_by_hand():
    # four groups of 3 seeds, each sd 0.01; effects -0.02 (second) and -0.04 (first): change +0.02.
    # With n seeds in every group the df is 4(n - 1) and the half-width t(0.975, 4n - 4) * 0.01 * sqrt(4 / n):
    #   n = 3: t(8) = 2.306 -> 0.0266 > 0.02 (undetermined now);  n = 4: t(12) = 2.179 -> 0.0218 (not yet)
    #   n = 5: t(16) = 2.120 -> 0.0190 < 0.02
    first = {0.0: [0.73, 0.74, 0.75], -10.0: [0.69, 0.70, 0.71]}
    second = {0.0: [0.89, 0.90, 0.91], -10.0: [0.87, 0.88, 0.89]}
    row = cost_change(tidy(first, "a"), tidy(second, "b")).set_index(["metric", "alpha_label"]).loc[
        ("test_accuracy", "-10")]
    assert row["change"] == pytest.approx(0.02) and row["direction"] == "undetermined"
    assert row["seeds_needed"] == 5
    # the other way round the change is -0.02: the same distance from 0, the same seeds
    reverse = cost_change(tidy(second, "b"), tidy(first, "a")).set_index(["metric", "alpha_label"]).loc[
        ("test_accuracy", "-10")]
    assert reverse["change"] == pytest.approx(-0.02) and reverse["seeds_needed"] == 5


def test_a_decided_change_or_one_without_an_interval_asks_for_no_seeds():
    table = cost_change(tidy(FIRST, "a"), tidy(SECOND, "b")).set_index(["metric", "alpha_label"])
    assert table.loc[("test_accuracy", "-10"), "direction"] == "higher"
    assert math.isnan(table.loc[("test_accuracy", "-10"), "seeds_needed"])
    one_seed = {0.0: [0.90, 0.91], -10.0: [0.86]}
    row = cost_change(tidy(FIRST, "a"), tidy(one_seed, "b")).set_index(["metric", "alpha_label"]).loc[
        ("test_accuracy", "-10")]
    assert math.isnan(row["change_ci_low"]) and math.isnan(row["seeds_needed"])


def test_command_says_how_many_seeds_would_decide_an_undetermined_change(tmp_path, capsys):
    first = {0.0: [0.73, 0.74, 0.75], -10.0: [0.69, 0.70, 0.71]}  # the hand-worked case above: 5 seeds
    second = {0.0: [0.89, 0.90, 0.91], -10.0: [0.87, 0.88, 0.89]}
    first, second = write_sweep(tmp_path / "first", first, "a"), write_sweep(tmp_path / "second", second, "b")
    assert main(["compare", str(first), str(second)]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("test_accuracy"))
    assert line.endswith("undetermined (~5 seeds in each group would decide it)")
