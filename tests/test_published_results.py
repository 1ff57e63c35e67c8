"""Every published results page can be rebuilt from its committed results.csv.

docs/results/<experiment>/results.csv is the tidy table the sweep wrote; the summary tables
beside it (and the numbers on docs/results/<experiment>.md) must be what `selectivity report`
gives from that file. The accuracies and the Welch comparisons are also recomputed here from
the raw rows with scipy, independently of the report code.
"""
import io
import math
import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from selectivity.report.build import summary_tables
from selectivity.report.off_axis_tables import off_axis_by_layer, off_axis_summary
from selectivity.report.tables import load_results, prepare_table
from tests import published_summary as summary

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"
PUBLISHED = sorted(path.parent for path in RESULTS.glob("*/results.csv"))
MARGIN = 0.5  # the pages use the default margin


def test_at_least_one_experiment_is_published_with_its_table():
    assert PUBLISHED, "no docs/results/*/results.csv: expected every published experiment to commit its table"


def _as_committed(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame as it reads back from CSV (the committed files went through to_csv)."""
    return pd.read_csv(io.StringIO(frame.to_csv(index=False)))


def _rebuilt(folder: Path) -> dict[str, pd.DataFrame]:
    """The tables `selectivity report` writes (runs.csv and the summaries), from the committed table."""
    return summary_tables(prepare_table(load_results(folder / "results.csv")), MARGIN)


@pytest.mark.parametrize("folder", PUBLISHED, ids=lambda path: path.name)
def test_committed_tables_are_what_the_report_rebuilds(folder):
    for name, frame in _rebuilt(folder).items():
        committed = folder / name
        assert committed.exists(), f"{committed} is missing: expected every table the report writes to be committed"
        pd.testing.assert_frame_equal(pd.read_csv(committed), _as_committed(frame), check_exact=False, rtol=1e-12,
                                      obj=str(committed))


def _final_accuracy_points(folder: Path) -> pd.DataFrame:
    """alpha_label, seed, accuracy (points) straight from the raw network rows."""
    raw = pd.read_csv(folder / "results.csv", dtype={"alpha_label": str})
    rows = raw[(raw["layer"] == "network") & (raw["metric"] == "test_accuracy")]
    assert not rows.duplicated(["run_id"]).any(), "one final test_accuracy row per run"
    return rows.assign(points=100 * rows["value"])[["alpha_label", "alpha", "seed", "points"]]


@pytest.mark.parametrize("folder", PUBLISHED, ids=lambda path: path.name)
def test_summary_and_welch_comparison_match_an_independent_computation(folder):
    points = _final_accuracy_points(folder)
    summary = pd.read_csv(folder / "summary_by_alpha.csv", dtype={"alpha_label": str}).set_index("alpha_label")
    for label, group in points.groupby("alpha_label"):
        values = group["points"].to_numpy()
        assert summary.loc[label, "n_seeds"] == len(values)
        assert math.isclose(100 * summary.loc[label, "test_accuracy_mean"], values.mean(), rel_tol=1e-12)
        if len(values) > 1:
            half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
            assert math.isclose(100 * summary.loc[label, "test_accuracy_ci95"], half, rel_tol=1e-9)
    baseline = points.loc[points["alpha_label"] == "0", "points"].to_numpy()
    compared = pd.read_csv(folder / "accuracy_vs_baseline.csv", dtype={"alpha_label": str})
    assert len(compared) == points["alpha_label"].nunique() - 1, "every condition is compared with alpha = 0"
    holm = _holm_by_hand(points, baseline)
    for row in compared.itertuples(index=False):
        assert row.family_size == len(holm), "the family counts the comparisons that have an interval"
        own = points.loc[points["alpha_label"] == row.alpha_label, "points"].to_numpy()
        assert math.isclose(row.difference_points, own.mean() - baseline.mean(), rel_tol=1e-9, abs_tol=1e-12)
        if min(len(own), len(baseline)) < 2:  # no interval from one seed: never decided
            assert math.isnan(row.ci_low_points) and math.isnan(row.ci_high_points)
            assert row.verdict == "undetermined"
            continue
        va, vb = own.var(ddof=1) / len(own), baseline.var(ddof=1) / len(baseline)
        df = (va + vb) ** 2 / (va ** 2 / (len(own) - 1) + vb ** 2 / (len(baseline) - 1))
        half = stats.t.ppf(0.975, df) * math.sqrt(va + vb)
        difference = own.mean() - baseline.mean()
        assert math.isclose(row.difference_points, difference, rel_tol=1e-9, abs_tol=1e-12)
        assert np.allclose([row.ci_low_points, row.ci_high_points], [difference - half, difference + half], rtol=1e-9)
        expected = "no loss" if difference - half > -MARGIN else "loss" if difference + half < -MARGIN else "undetermined"
        assert row.verdict_uncorrected == expected
        # the verdict words: Holm over the page's comparisons (family-wise 0.05)
        assert math.isclose(row.holm_p, holm[row.alpha_label], rel_tol=1e-6, abs_tol=1e-12)
        assert row.verdict == (expected if holm[row.alpha_label] < 0.05 else "undetermined")
        if row.verdict == "undetermined" and expected == "undetermined":  # 80% power, normal approximation
            z = stats.norm.isf(0.025) + stats.norm.isf(0.2)
            n80 = math.ceil(z * z * (own.var(ddof=1) + baseline.var(ddof=1)) / (difference + MARGIN) ** 2 - 1e-9)
            assert row.seeds_needed_80 == max(n80, min(len(own), len(baseline)) + 1)
            assert row.likely_verdict == ("loss" if difference < -MARGIN else "no loss")


def _holm_by_hand(points: pd.DataFrame, baseline: np.ndarray) -> dict:
    """{alpha_label: Holm-adjusted p} of Welch's test of difference = -MARGIN, by scipy and a loop."""
    p = {}
    for label, group in points.groupby("alpha_label"):
        own = group["points"].to_numpy()
        if label != "0" and min(len(own), len(baseline)) >= 2:
            p[label] = stats.ttest_ind(own, baseline - MARGIN, equal_var=False).pvalue
    adjusted, running = {}, 0.0
    for rank, label in enumerate(sorted(p, key=p.get)):
        running = max(running, min(1.0, (len(p) - rank) * p[label]))
        adjusted[label] = running
    return adjusted


@pytest.mark.parametrize("folder", PUBLISHED, ids=lambda path: path.name)
def test_the_page_quotes_the_committed_comparison(folder):
    """Every verdict row of the page's table names the committed difference, CI and verdict."""
    page = (folder.parent / f"{folder.name}.md").read_text()
    compared = pd.read_csv(folder / "accuracy_vs_baseline.csv", dtype={"alpha_label": str})
    for row in compared.itertuples(index=False):
        interval = ("no CI[^|]*" if math.isnan(row.ci_low_points)
                    else re.escape(f"[{row.ci_low_points:+.2f}, {row.ci_high_points:+.2f}] "))
        pattern = (rf"\| alpha = {re.escape(row.alpha_label)} \|[^\n]*{re.escape(f'{row.difference_points:+.2f}')} \| "
                   rf"{interval}\| \*\*{re.escape(row.verdict)}")
        assert re.search(pattern, page), f"{folder.name}.md has no verdict row for alpha = {row.alpha_label} " \
                                         f"matching {pattern!r}"


@pytest.mark.parametrize("folder", PUBLISHED, ids=lambda path: path.name)
def test_every_file_the_page_and_its_report_link_is_committed(folder):
    for document in (folder.parent / f"{folder.name}.md", folder / "report.md"):
        targets = re.findall(r"\]\(([^)#\s]+)\)", document.read_text())
        local = [target for target in targets if "://" not in target]
        assert local, f"{document} links no file"
        missing = [target for target in local if not (document.parent / target).exists()]
        assert not missing, f"{document} links files that are not committed: {missing}"


ROBUSTNESS_TABLES = {  # committed table -> the raw metrics it summarises (docs/robustness.md)
    "corruptions_by_alpha.csv": ("network", ("mean_corruption_accuracy", "clean_subset_accuracy")),
    "attacks_by_alpha.csv": ("network", ("attack_accuracy:",)),
    "dimensionality_by_layer.csv": ("layers", ("dim_pr", "dim_pcs", "perturbation_dim_pr", "perturbation_dim_pcs")),
}


@pytest.mark.parametrize("folder", PUBLISHED, ids=lambda path: path.name)
def test_robustness_tables_exist_exactly_when_their_rows_do_and_match_the_raw_rows(folder):
    """Each robustness table is committed iff results.csv has its metrics; its means and t-CIs are
    recomputed here from the raw rows (per condition, or per condition and layer)."""
    raw = pd.read_csv(folder / "results.csv", dtype={"alpha_label": str})
    for name, (level, metrics) in ROBUSTNESS_TABLES.items():
        scope = raw[raw["layer"] == "network"] if level == "network" else raw[raw["layer"] != "network"]
        rows = scope[scope["metric"].apply(lambda metric: any(metric == m or (m.endswith(":") and
                                                                             metric.startswith(m)) for m in metrics))]
        committed = folder / name
        assert committed.exists() == (len(rows) > 0), f"{name} committed: {committed.exists()}, rows: {len(rows)}"
        if rows.empty:
            continue
        table = pd.read_csv(committed, dtype={"alpha_label": str})
        keys = ["alpha_label"] if level == "network" else ["alpha_label", "layer"]
        checked = 0
        for (*key, metric), group in rows.groupby(keys + ["metric"]):
            values = group["value"].to_numpy(dtype=float)
            mask = np.logical_and.reduce([table[k] == v for k, v in zip(keys, key)])
            assert mask.sum() == 1, f"{name}: no single row for {dict(zip(keys, key))}"
            row = table[mask].iloc[0]
            assert math.isclose(row[f"{metric}_mean"], values.mean(), rel_tol=1e-9, abs_tol=1e-12), (name, key, metric)
            if len(values) > 1:
                half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
                assert math.isclose(row[f"{metric}_ci95"], half, rel_tol=1e-9, abs_tol=1e-12), (name, key, metric)
            checked += 1
        assert checked, name


def _per_run_robustness(raw: pd.DataFrame) -> pd.DataFrame:
    """alpha_label, seed, layer, metric, value of every robustness metric the difference table covers,
    from the raw rows: each corruption's accuracy averaged over its severities per run."""
    network = raw[raw["layer"] == "network"]
    direct = network[network["metric"].isin(["mean_corruption_accuracy", "clean_subset_accuracy"])
                     | network["metric"].str.startswith("attack_accuracy:")]
    severities = network[network["metric"].str.startswith("corruption_accuracy:")]
    per_corruption = (severities.assign(metric=severities["metric"].str.split(":").str[1])
                      .groupby(["alpha_label", "seed", "layer", "metric"], as_index=False)["value"].mean())
    layers = raw[(raw["layer"] != "network") & raw["metric"].isin(
        ["dim_pr", "dim_pcs", "perturbation_dim_pr", "perturbation_dim_pcs"])]
    columns = ["alpha_label", "seed", "layer", "metric", "value"]
    wide = direct.pivot_table(index=["alpha_label", "seed"], columns="metric", values="value")
    drops = pd.DataFrame(index=wide.index)
    if {"clean_subset_accuracy", "mean_corruption_accuracy"} <= set(wide.columns):
        drops["corruption_drop"] = wide["clean_subset_accuracy"] - wide["mean_corruption_accuracy"]
    for column in wide.columns:
        _, *attack_eps = column.split(":")
        if column.startswith("attack_accuracy:") and float(attack_eps[1]) > 0:
            attack, eps = attack_eps
            drops[f"attack_drop:{attack}:{eps}"] = wide[f"attack_accuracy:{attack}:0"] - wide[column]
    drops = drops.reset_index().melt(["alpha_label", "seed"], var_name="metric").assign(layer="network")
    return pd.concat([direct[columns], per_corruption[columns], layers[columns], drops[columns]], ignore_index=True)


@pytest.mark.parametrize("folder", PUBLISHED, ids=lambda path: path.name)
def test_robustness_differences_match_an_independent_welch_computation(folder):
    """robustness_vs_baseline.csv (each condition minus alpha = 0) has one row per condition, layer and
    metric, with the difference and Welch 95% interval scipy's t-test gives from the raw rows."""
    raw = pd.read_csv(folder / "results.csv", dtype={"alpha_label": str})
    values = _per_run_robustness(raw)
    committed = folder / "robustness_vs_baseline.csv"
    assert committed.exists() == (len(values) > 0 and (values["alpha_label"] == "0").any())
    if not committed.exists():
        return
    table = pd.read_csv(committed, dtype={"alpha_label": str}).set_index(["alpha_label", "layer", "metric"])
    assert not table.index.duplicated().any()
    expected_rows = 0
    for (layer, metric), scope in values.groupby(["layer", "metric"]):
        baseline = scope.loc[scope["alpha_label"] == "0", "value"].to_numpy(dtype=float)
        for label, group in scope[scope["alpha_label"] != "0"].groupby("alpha_label"):
            own = group["value"].to_numpy(dtype=float)
            row = table.loc[(label, layer, metric)]
            expected_rows += 1
            assert math.isclose(row["difference"], own.mean() - baseline.mean(), rel_tol=1e-9, abs_tol=1e-12)
            if min(len(own), len(baseline)) < 2 or (own.var() == 0 and baseline.var() == 0):
                continue  # no interval, or a point one: the unit tests cover both
            low, high = stats.ttest_ind(own, baseline, equal_var=False).confidence_interval(0.95)
            assert np.allclose([row["ci_low"], row["ci_high"]], [low, high], rtol=1e-9, atol=1e-12), \
                (label, layer, metric)
            assert row["direction"] == ("higher" if low > 0 else "lower" if high < 0 else "undetermined")
    assert len(table) == expected_rows


@pytest.mark.parametrize("folder", [f for f in PUBLISHED if (f / "schedules.csv").exists()],
                         ids=lambda path: path.name)
def test_schedule_minus_constant_matches_an_independent_welch_computation(folder):
    points = _final_accuracy_points(folder)
    table = pd.read_csv(folder / "schedules.csv", dtype={"alpha_label": str, "schedule": str})
    constants = table[table["kind"] == "constant"]
    assert len(constants), "schedules.csv without a constant beside its schedule"
    for row in constants.itertuples(index=False):
        own = points.loc[points["alpha_label"] == row.schedule, "points"].to_numpy() / 100
        reference = points.loc[points["alpha_label"] == row.alpha_label, "points"].to_numpy() / 100
        assert math.isclose(row.test_accuracy_schedule_minus, own.mean() - reference.mean(), rel_tol=1e-9,
                            abs_tol=1e-12)
        low, high = stats.ttest_ind(own, reference, equal_var=False).confidence_interval(0.95)
        assert np.allclose([row.test_accuracy_schedule_minus_ci_low, row.test_accuracy_schedule_minus_ci_high],
                           [low, high], rtol=1e-9, atol=1e-12)


COST_CHANGES = sorted(RESULTS.glob("*/cost_change_vs_*.csv"))  # docs/results/SECOND/cost_change_vs_FIRST.csv


def _final_network_values(folder: Path, metric: str) -> pd.DataFrame:
    """alpha, alpha_label, value (one row per run) of a network metric, from the raw rows."""
    raw = pd.read_csv(folder / "results.csv", dtype={"alpha_label": str})
    rows = raw[(raw["layer"] == "network") & (raw["metric"] == metric)]
    assert not rows.duplicated(["run_id"]).any(), f"one final {metric} row per run"
    return rows[["alpha", "alpha_label", "value"]]


def _satterthwaite(groups, weights) -> tuple[float, float, float, float]:
    """sum w_i mean_i with its Welch-Satterthwaite 95% CI and df, written out here (not the report's code)."""
    terms = [w * w * np.var(g, ddof=1) / len(g) for w, g in zip(weights, groups)]
    estimate = sum(w * np.mean(g) for w, g in zip(weights, groups))
    df = sum(terms) ** 2 / sum(term * term / (len(g) - 1) for term, g in zip(terms, groups))
    half = stats.t.ppf(0.975, df) * math.sqrt(sum(terms))
    return estimate, estimate - half, estimate + half, df


@pytest.mark.parametrize("path", COST_CHANGES, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_committed_cost_change_is_an_independent_difference_of_differences(path):
    """Each alpha's effect (minus alpha = 0) in both committed tables and its change, with scipy's Welch
    interval for each effect and a Satterthwaite interval over the four groups for the change."""
    first_folder = RESULTS / path.stem.removeprefix("cost_change_vs_")
    assert (first_folder / "results.csv").exists(), f"{path.name} names no committed experiment {first_folder.name}"
    table = pd.read_csv(path, dtype={"alpha_label": str})
    expected_keys = set()
    for metric in ("test_accuracy", "mean_si"):
        first, second = (_final_network_values(folder, metric) for folder in (first_folder, path.parent))
        common = (set(first["alpha"]) & set(second["alpha"])) - {0.0}
        expected_keys |= {(metric, alpha) for alpha in common}
        for alpha in common:
            row = table[(table["metric"] == metric) & (table["alpha"] == alpha)]
            assert len(row) == 1, (metric, alpha)
            row = row.iloc[0]
            groups = [second.loc[second["alpha"] == alpha, "value"].to_numpy(),
                      second.loc[second["alpha"] == 0.0, "value"].to_numpy(),
                      first.loc[first["alpha"] == alpha, "value"].to_numpy(),
                      first.loc[first["alpha"] == 0.0, "value"].to_numpy()]
            assert [row.n_second, row.n_second_baseline, row.n_first, row.n_first_baseline] == [len(g) for g in groups]
            for name, own, baseline in (("second", *groups[:2]), ("first", *groups[2:])):
                low, high = stats.ttest_ind(own, baseline, equal_var=False).confidence_interval(0.95)
                assert np.allclose([row[f"{name}_effect"], row[f"{name}_effect_ci_low"], row[f"{name}_effect_ci_high"]],
                                   [own.mean() - baseline.mean(), low, high], rtol=1e-9, atol=1e-12, equal_nan=True), (metric, alpha)
            change, low, high, df = _satterthwaite(groups, [1, -1, -1, 1])
            assert np.allclose([row.change, row.change_ci_low, row.change_ci_high, row.change_df],
                               [change, low, high, df], rtol=1e-9, atol=1e-12, equal_nan=True), (metric, alpha)
            assert row.direction == ("higher" if low > 0 else "lower" if high < 0 else "undetermined")
    assert set(zip(table["metric"], table["alpha"])) == expected_keys, "one row per common alpha and metric"
    assert set(table["confounds"]) == {_confounds_by_hand(first_folder, path.parent, table["varied"].iloc[0])}


def _confounds_by_hand(first: Path, second: Path, varied: str) -> str:
    """What the two sweeps' committed tables show they differ in, or do not record, besides `varied`."""
    def described(folder):
        raw = pd.read_csv(folder / "results.csv", usecols=["run_id", "model", "dataset", "layer", "metric", "epoch"])
        final = raw[(raw["layer"] == "network") & (raw["metric"] == "test_accuracy")].groupby("run_id")["epoch"].max()
        return {"model": " / ".join(sorted(raw["model"].unique())),
                "dataset": " / ".join(sorted(raw["dataset"].unique())),
                "epochs": " / ".join(str(epoch) for epoch in sorted(final.unique()))}
    def recorded(folder, columns):  # each column's distinct values over the runs, None if any run lacks it
        path = folder / "provenance.csv"
        table = pd.read_csv(path) if path.exists() else pd.DataFrame(columns=["run_id"])
        return {column: None if column not in table or table[column].isna().any() else
                " / ".join(sorted({f"{v:g}" if isinstance(v, float) else str(v) for v in table[column]}))
                for column in columns}
    recipe = ["batch_size", "lr", "momentum", "nesterov", "weight_decay", "schedule", "warmup_epochs"]
    a, b = described(first), described(second)
    for folder, own in ((first, a), (second, b)):
        values = recorded(folder, [*recipe, "precision", "device", "cpu"])
        device, cpu = values.pop("device"), values.pop("cpu")
        own.update(values, machine=None if device is None or (cpu is None and "cpu" in device)
                   else device + (f": {cpu}" if cpu else ""))
    skip = {part for name in varied.split(", ") for part in (recipe if name == "recipe" else [name])}
    found = [f"{factor} ({a[factor]} vs {b[factor]})" for factor in a if factor not in skip
             and None not in (a[factor], b[factor]) and a[factor] != b[factor]]
    missing = [("recipe" if factor in recipe else factor) for factor in a
               if factor not in skip and None in (a[factor], b[factor])]
    return "; ".join(found + ([", ".join(dict.fromkeys(missing)) + " not recorded"] if missing else [])) or "none"


CCA_METHODS = ("svcca", "pwcca", "pwcca_svcca", "cka")  # docs/cca.md: the four distances of the off-axis control


@pytest.mark.parametrize("folder", PUBLISHED, ids=lambda path: path.name)
def test_committed_cca_table_holds_the_raw_ratios_and_the_verdict_rule(folder):
    """cca_by_layer.csv is committed iff results.csv has off-axis ratio rows; each of its cells is the
    raw row's value (one pooled row per condition, layer and method), and each verdict follows the rule
    of docs/cca.md: every method's CI above 1 -> "not merely rotated", none -> "no change beyond
    seed-to-seed", some -> "methods disagree"; "undetermined" without a CI."""
    raw = pd.read_csv(folder / "results.csv", dtype={"alpha_label": str})
    ratios = raw[(raw["layer"] != "network") & raw["metric"].str.match(r"^(svcca|pwcca|pwcca_svcca|cka)_ratio")]
    committed = folder / "cca_by_layer.csv"
    assert committed.exists() == (len(ratios) > 0), f"cca_by_layer.csv committed: {committed.exists()}, rows: {len(ratios)}"
    if ratios.empty:
        return
    rebuilt = off_axis_by_layer(off_axis_summary(prepare_table(load_results(folder / "results.csv"))))
    pd.testing.assert_frame_equal(pd.read_csv(committed), _as_committed(rebuilt), check_exact=False, rtol=1e-12,
                                  obj=str(committed))  # what `selectivity report` writes
    table = pd.read_csv(committed, dtype={"alpha_label": str}).set_index(["alpha_label", "layer"])
    assert not table.index.duplicated().any()
    assert set(table.index) == set(zip(ratios["alpha_label"], ratios["layer"]))
    for (label, layer), row in table.iterrows():
        own = ratios[(ratios["alpha_label"] == label) & (ratios["layer"] == layer)].set_index("metric")["value"]
        assert not own.index.duplicated().any(), (label, layer)
        for method in CCA_METHODS:
            for suffix, column in (("", "ratio"), ("_ci_low", "ci_low"), ("_ci_high", "ci_high")):
                assert np.isclose(row[f"{method}_{column}"], own[f"{method}_ratio{suffix}"], rtol=1e-12,
                                  equal_nan=True), (label, layer, method, column)
        if own[[f"{method}_ratio_ci_low" for method in CCA_METHODS]].isna().any():  # fewer than 2 pairs a side
            assert row["verdict"].startswith("undetermined"), (label, layer)
            continue
        above = [method for method in CCA_METHODS if own[f"{method}_ratio_ci_low"] > 1]
        below = [method for method in CCA_METHODS if own[f"{method}_ratio_ci_high"] < 1]
        parts = ([f"CI above 1 for {', '.join(above)}"] if above else []) + (
            [f"below 1 for {', '.join(below)}"] if below else [])
        expected = ("not merely rotated" if len(above) == len(CCA_METHODS) else
                    "closer than seed-to-seed" if len(below) == len(CCA_METHODS) else
                    "no change beyond seed-to-seed" if not above and not below else
                    f"methods disagree ({'; '.join(parts)} only)")
        assert row["verdict"] == expected, (label, layer)


def _welch_by_hand(own: np.ndarray, baseline: np.ndarray) -> tuple[float, float, float]:
    va, vb = own.var(ddof=1) / len(own), baseline.var(ddof=1) / len(baseline)
    df = (va + vb) ** 2 / (va**2 / (len(own) - 1) + vb**2 / (len(baseline) - 1))
    half = stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    difference = own.mean() - baseline.mean()
    return difference, difference - half, difference + half


def test_the_resnet20_seed_history_is_recomputed_with_the_same_seeds_at_both_alphas():
    """The page's hand-quoted looks at alpha = -1 ('n = 2: d, CI [lo, hi]; ...') are Welch comparisons of
    seeds 0..n-1 at alpha = -1 against seeds 0..n-1 at alpha = 0, from the committed raw rows."""
    folder = RESULTS / "resnet20-cifar10"
    page = (RESULTS / "resnet20-cifar10.md").read_text()
    points = _final_accuracy_points(folder)
    looks = re.findall(r"n = (\d+):\s+([+-]\d+\.\d\d), CI \[([+-]\d+\.\d\d), ([+-]\d+\.\d\d)\]", page)
    assert [int(n) for n, *_ in looks] == [2, 3, 5], looks
    for n, difference, low, high in looks:
        def seeds(label):
            rows = points[(points["alpha_label"] == label) & (points["seed"] < int(n))]
            return rows["points"].to_numpy()
        expected = _welch_by_hand(seeds("-1"), seeds("0"))
        assert [f"{value:+.2f}" for value in expected] == [difference, low, high], (n, expected)


def _checked(pattern, text: str, check) -> str:
    """text with every match of pattern checked by check(match) and removed."""
    def visit(match):
        check(match)
        return " "
    return pattern.sub(visit, text)


@pytest.mark.parametrize("folder", PUBLISHED, ids=lambda path: path.name)
def test_the_page_opens_with_a_summary_whose_every_number_is_recomputed_from_results_csv(folder):
    """The opening table (claim | paper | ours | verdict | scale): each comparison, contrast and cross-sweep
    change, each Holm verdict and 80% seed count and each epoch count recomputed from the committed raw
    rows; no other digit in those cells; the claim words follow docs/report.md's rules; a short CPU
    schedule is named in the title and in every verdict."""
    page = (RESULTS / f"{folder.name}.md").read_text()
    assert "short CPU schedule" in page.splitlines()[0]
    rows = summary.summary_table(page)
    assert rows[0] == summary.HEADER and len(rows) > 1
    points = summary.accuracy_points(folder)
    verdicts = summary.holm_verdicts(points)
    history = pd.read_csv(folder / "verdict_history.csv", dtype={"alpha_label": str})
    model = pd.read_csv(folder / "results.csv", nrows=1)["model"].iloc[0]
    for claim, paper, ours, verdict, scale in rows[1:]:
        for cell in (claim, paper):
            assert set(summary.numbers(summary.strip_names(cell))) <= summary.PAPER_NUMBERS, cell
        others, intervals = [], []
        rest = _checked(summary.CROSS, ours, lambda m: (intervals.append(summary.check_cross(m, points, RESULTS)),
                                                        others.append(m["other"])))
        rest = _checked(summary.COMPARISON, rest, lambda m: summary.check_comparison(m, points))
        rest = _checked(summary.CONTRAST, rest, lambda m: intervals.append(summary.check_contrast(m, points)))

        def side(match):  # "CI lies above 0": every interval the row quotes does
            assert intervals and all(low > 0 if match["side"] == "above" else high < 0 for low, high in intervals)
        verdict_rest = _checked(summary.HOLM, verdict, lambda m: summary.check_holm(m, verdicts, history))
        rest += _checked(summary.SIGN, verdict_rest, side)

        def epochs(match):
            assert int(match["e"]) in summary.final_epochs(folder), match[0]
            if match["other"]:
                assert any(int(match["other"]) in summary.final_epochs(RESULTS / other) for other in others), match[0]
            assert int(match["p"]) == summary.PAPER_EPOCHS[model], match[0]

        def no_paper_recipe(match):
            assert int(match["e"]) in summary.final_epochs(folder) and model not in summary.PAPER_EPOCHS, match[0]
        rest += _checked(summary.NO_PAPER_EPOCHS, _checked(summary.EPOCHS, scale, epochs), no_paper_recipe)
        if (folder / "provenance.csv").exists() and not scale.startswith("as above"):  # the recorded precision
            assert set(pd.read_csv(folder / "provenance.csv")["precision"]) <= set(re.findall(r"fp32|bf16", scale))
        assert not re.search(r"\d", summary.strip_names(rest)), f"unchecked numbers in {claim!r}: {rest!r}"
        word = re.match(r"(?:\*\*)?([a-z ]+?)(?:\*\*| \(|$)", verdict)[1]
        if "withdrawn" not in verdict:
            assert "short CPU schedule" in verdict, verdict
        expected = summary.expected_claim_word(claim, points, verdicts)
        assert expected is None or word == expected, (claim, word, expected)


def _git(*args: str) -> str | None:
    """git's output in this checkout, or None when there is no git checkout."""
    try:
        done = subprocess.run(["git", "-C", str(RESULTS.parents[1]), *args], capture_output=True, text=True, timeout=30)
    except OSError:
        return None
    return done.stdout if done.returncode == 0 else None


@pytest.mark.parametrize("folder", PUBLISHED, ids=lambda path: path.name)
def test_the_verdict_history_ends_at_the_committed_verdicts(folder):
    """verdict_history.csv: per condition, looks that differ from the one before, the last one the committed
    accuracy_vs_baseline.csv's seeds and verdict."""
    history = pd.read_csv(folder / "verdict_history.csv", dtype={"alpha_label": str, "commit": str})
    compared = pd.read_csv(folder / "accuracy_vs_baseline.csv", dtype={"alpha_label": str})
    assert set(history["alpha_label"]) == set(compared["alpha_label"])
    for row in compared.itertuples(index=False):
        looks = history[history["alpha_label"] == row.alpha_label]
        keys = list(zip(looks["n_alpha"], looks["n_baseline"], looks["verdict"]))
        assert keys[-1] == (row.n_alpha, row.n_baseline, row.verdict), row.alpha_label
        assert all(a != b for a, b in zip(keys, keys[1:])), f"a repeated look at alpha = {row.alpha_label}"


@pytest.mark.parametrize("folder", PUBLISHED, ids=lambda path: path.name)
def test_every_look_was_published_at_its_commit_or_later(folder):
    """No look is invented: each row's seeds and verdict are in a committed accuracy_vs_baseline.csv of its
    commit or a later one (or the working tree), and its date is that commit's."""
    if _git("rev-parse", "--git-dir") is None:
        pytest.skip("not a git checkout: the looks' commits cannot be read")
    path = f"docs/results/{folder.name}/accuracy_vs_baseline.csv"
    history = pd.read_csv(folder / "verdict_history.csv", dtype={"alpha_label": str, "commit": str})
    assert history["commit"].notna().all(), "a published look without its commit"
    for commit, looks in history.groupby("commit", sort=False):
        assert _git("log", "-1", "--format=%cI", commit).strip() == looks["date"].iloc[0], commit
        later = [line for line in _git("rev-list", "HEAD", "--", path).split() if
                 _git("merge-base", "--is-ancestor", commit, line) is not None]
        texts = [_git("show", f"{version}:{path}") for version in later] + [(RESULTS.parents[1] / path).read_text()]
        versions = [pd.read_csv(io.StringIO(text), dtype={"alpha_label": str}) for text in texts]
        for look in looks.itertuples(index=False):
            assert any(((v["alpha_label"] == look.alpha_label) & (v["n_alpha"] == look.n_alpha)
                        & (v["n_baseline"] == look.n_baseline) & (v["verdict"] == look.verdict)).any()
                       for v in versions), f"{folder.name}: alpha = {look.alpha_label} look of {commit} never published"
