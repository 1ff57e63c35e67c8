"""The report's unit-toolkit sections: history rows survive, figures appear only with their rows."""
import shutil

import matplotlib
import pandas as pd

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from selectivity.report.build import write_report
from selectivity.report.figures_toolkit import ablation_points
from selectivity.report.tables import prepare_table, run_network_table
from tests.report_fixture import FINAL_EPOCH, _row, sweep_table


def toolkit_rows(table: pd.DataFrame) -> pd.DataFrame:
    """Rows the four analyses would add to each run of the fixture sweep."""
    rows = []
    for run_id, alpha, label, seed in table[["run_id", "alpha", "alpha_label", "seed"]].drop_duplicates().itertuples(
            index=False):
        def add(layer, index, metric, value, epoch=FINAL_EPOCH):
            rows.append(_row(run_id, alpha, label, seed, layer, index, -1, metric, value, epoch=epoch))
        for epoch in range(1, FINAL_EPOCH + 1):
            add("network", -1, "epoch_mean_si", 0.1 * epoch, epoch)
            add("network", -1, "epoch_test_accuracy", 0.2 * epoch, epoch)
        for fraction in (0.0, 0.5, 1.0):
            add("layer2", 1, f"ablation_si_high@{fraction:g}", 0.9 - 0.8 * fraction)
            add("layer2", 1, f"ablation_random@{fraction:g}", 0.9 - 0.4 * fraction)
        add("layer2", 1, "ablation_si_high_area", 0.5)
        add("layer2", 1, "ablation_random_area", 0.7)
        add("layer2", 1, "si_above_chance", 0.3)
        for unit, fraction in ((0, 1.0), (5, 0.25)):
            rows.append(_row(run_id, alpha, label, seed, "layer2", 1, unit, "topk_preferred_fraction", fraction))
    return pd.DataFrame(rows)


def test_history_rows_are_kept_at_every_epoch_and_stay_out_of_the_run_table():
    base = sweep_table(seeds=(0,))
    table = prepare_table(pd.concat([base, toolkit_rows(base)], ignore_index=True))
    history = table[table["metric"] == "epoch_mean_si"]
    assert sorted(history["epoch"].unique()) == [1, 2, 3]
    assert (table.loc[table["metric"] == "test_accuracy", "epoch"] == FINAL_EPOCH).all()  # stale epoch 0 still dropped
    runs = run_network_table(table)
    assert not any(column.startswith("epoch_") for column in runs.columns)


def test_ablation_metric_names_parse_into_order_and_fraction():
    frame = pd.DataFrame({"metric": ["ablation_si_high@0.25", "ablation_random_area", "mean_si", "ablation_d_prime_low@1"]})
    points = ablation_points(frame)
    assert points[["order", "fraction"]].values.tolist() == [["si_high", 0.25], ["d_prime_low", 1.0]]


def test_toolkit_figures_are_drawn_with_their_rows_and_absent_without(tmp_path):
    base = sweep_table(seeds=(0, 1), with_cca=False)
    write_report(pd.concat([base, toolkit_rows(base)], ignore_index=True), tmp_path / "with")
    page = (tmp_path / "with" / "report.md").read_text()
    for stem, heading in [("figU1_units_above_chance", "U1."), ("figU2_ablation_curves", "U2."),
                          ("figU3_si_over_training", "U3."), ("figU4_top_unit_classes", "U4.")]:
        assert (tmp_path / "with" / f"{stem}.png").is_file() and heading in page
    write_report(base, tmp_path / "without")
    assert not list((tmp_path / "without").glob("figU*")) and "U1." not in (tmp_path / "without" / "report.md").read_text()



def test_top_unit_grids_beside_the_table_are_shown_on_the_sweep_page(tmp_path):
    import base64

    from selectivity.report.build import report_sweep
    from selectivity.sweep import SweepFolder, write_results

    base = sweep_table(seeds=(0, 1), with_cca=False)
    write_results(SweepFolder(tmp_path), base)
    grids = tmp_path / "analyses" / "top_units"
    grids.mkdir(parents=True)
    grid_bytes = {}
    for name in ("-1_seed0_layer2_most_unit0.png", "-1_seed0_layer2_least_unit5.png"):
        figure = plt.figure(figsize=(1, 1))
        figure.savefig(grids / name)
        plt.close(figure)
        grid_bytes[name] = (grids / name).read_bytes()
    page = report_sweep(tmp_path).read_text()
    for name, data in grid_bytes.items():
        assert (tmp_path / "report" / f"figU5_{name}").read_bytes() == data  # copied beside the page
        assert base64.b64encode(data).decode("ascii") in page  # and embedded in it
    assert "U5. Top and bottom inputs: alpha -1, seed 0 layer2, most, unit0" in page
    shutil.rmtree(grids)
    assert "U5." not in report_sweep(tmp_path).read_text()  # no grids, no section
