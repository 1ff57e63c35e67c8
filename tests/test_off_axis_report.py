"""The report's off-axis part: every method side by side and a per-layer verdict only where all CIs agree."""
import math

import pandas as pd
import pytest
from tests.report_fixture import sweep_table

from selectivity.report import write_report
from selectivity.report.off_axis_tables import (CLOSER, DISAGREE, METHODS, NOT_ROTATED, UNDETERMINED, WITHIN_SEEDS,
                                                verdict)

NAN = float("nan")
# layer index -> method -> (ratio, ci_low, ci_high), for alpha = -10
INTERVALS = {
    0: {m: (1.5, 1.2, 1.9) for m in METHODS},  # all above 1
    1: {**{m: (1.3, 1.1, 1.6) for m in METHODS}, "pwcca_svcca": (0.95, 0.8, 1.1)},  # one reaches 1
    2: {m: (1.0, 0.9, 1.1) for m in METHODS},  # none above 1
    3: {**{m: (1.4, 1.2, 1.6) for m in METHODS}, "cka": (1.4, NAN, NAN)},  # one CI missing
}


def pooled_rows(alpha: float, intervals: dict) -> list[dict]:
    """Rows as the off-axis analysis writes them: one condition, pooled over seeds."""
    rows = []
    for layer_index, by_method in intervals.items():
        for method, values in by_method.items():
            for suffix, value in zip(("", "_ci_low", "_ci_high", "_pairs", "_baseline_pairs"), values + (6, 3)):
                rows.append({"run_id": f"off_axis/{alpha:g}", "model": "resnet20", "dataset": "cifar10",
                             "alpha": alpha, "alpha_label": f"{alpha:g}", "seed": -1, "epoch": 3,
                             "layer": f"layer{layer_index + 1}.relu", "layer_index": layer_index, "unit": -1,
                             "metric": f"{method}_ratio{suffix}", "value": value})
    return rows


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("report")
    table = pd.concat([sweep_table(alphas=(-10.0, 0.0, 1.0), seeds=(0, 1), with_cca=False),
                       pd.DataFrame(pooled_rows(-10.0, INTERVALS))], ignore_index=True)
    return write_report(table, out_dir), out_dir


def test_verdict_by_hand():
    assert verdict(INTERVALS[0] | {}) == NOT_ROTATED
    assert verdict({m: v[1:] for m, v in INTERVALS[1].items()}) == f"{DISAGREE} (CI above 1 for svcca, pwcca, cka only)"
    assert verdict({m: v[1:] for m, v in INTERVALS[2].items()}) == WITHIN_SEEDS
    assert verdict({m: v[1:] for m, v in INTERVALS[3].items()}) == f"{UNDETERMINED} (no CI for cka)"
    assert verdict({"pwcca": (1.2, 1.5)}) == f"{UNDETERMINED} (no CI for svcca, pwcca_svcca, cka)"
    assert verdict({m: (1.0, 1.2) for m in METHODS}) == WITHIN_SEEDS  # a bound at exactly 1 is not above
    # intervals wholly below 1 are not "no change": closer than two alpha = 0 seeds (issue 32)
    assert verdict({m: (0.7, 0.9) for m in METHODS}) == CLOSER
    mixed = {"svcca": (0.7, 0.9), "pwcca": (0.9, 1.1), "pwcca_svcca": (1.1, 1.3), "cka": (0.8, 1.2)}
    assert verdict(mixed) == f"{DISAGREE} (CI above 1 for pwcca_svcca; below 1 for svcca only)"
    assert verdict({**mixed, "pwcca_svcca": (0.9, 1.3)}) == f"{DISAGREE} (below 1 for svcca only)"


def test_table_shows_every_method_and_the_verdict_per_layer(report):
    _, out_dir = report
    by_layer = pd.read_csv(out_dir / "cca_by_layer.csv").set_index("layer_index")
    assert list(by_layer.index) == [0, 1, 2, 3]
    for layer_index, by_method in INTERVALS.items():
        for method, (ratio, low, high) in by_method.items():
            assert by_layer.loc[layer_index, f"{method}_ratio"] == ratio
            assert by_layer.loc[layer_index, f"{method}_ci_low"] == low or math.isnan(low)
    assert by_layer["verdict"].str.split(" \\(").str[0].tolist() == [NOT_ROTATED, DISAGREE, WITHIN_SEEDS,
                                                                     UNDETERMINED]
    page = (out_dir / "index.html").read_text()
    markdown = (out_dir / "report.md").read_text()
    for text in ("PWCCA (google/svcca code)", "linear CKA", "1.50 [1.20, 1.90]", "0.95 [0.80, 1.10]",
                 "not merely rotated", "methods disagree (CI above 1 for svcca, pwcca, cka only)"):
        assert text in page and text in markdown, text
    assert (out_dir / "fig5_cca_ratio_vs_alpha.png").stat().st_size > 0


def test_old_per_run_ratio_rows_are_shown_without_a_verdict(tmp_path):
    """Tables written before the CIs existed: per-seed pwcca_ratio rows, averaged, undetermined."""
    write_report(sweep_table(alphas=(-10.0, 0.0), seeds=(0, 1)), tmp_path)
    by_layer = pd.read_csv(tmp_path / "cca_by_layer.csv")
    # report_fixture: ratio = 1 + 0.05 * 10 * (layer_index + 1) + 0.02 * seed, seeds 0 and 1
    assert by_layer["pwcca_ratio"].tolist() == pytest.approx([1.51, 2.01, 2.51, 3.01])
    assert by_layer["verdict"].str.startswith(UNDETERMINED).all()
