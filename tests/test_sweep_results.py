"""The tidy results table: built from done runs only, in the columns the report stage reads."""
import dataclasses
import json

import pandas as pd
import torch
import pytest

from selectivity.config import ExperimentConfig, TrainSettings
from selectivity.errors import SelectivityError
from selectivity.report.tables import load_results, prepare_table, run_network_table, unit_selectivity
from selectivity.sweep import (COLUMNS, SweepFolder, SweepRun, build_results, list_analyses, register_analysis,
                               write_results)
from selectivity.sweep.run_state import run_state
from selectivity.store import run_path
from tests import sweep_fake_trainer as fake


def make_runs(folder: SweepFolder, alphas=(-1.0, "0x1,-2"), seeds=(0, 1), epochs=2) -> list[SweepRun]:
    """Done run folders written through the store, as the trainer writes them."""
    runs = []
    for alpha in alphas:
        for seed in seeds:
            config = ExperimentConfig(train=TrainSettings(epochs=epochs), seed=seed)
            config = dataclasses.replace(config, regularizer=dataclasses.replace(config.regularizer, alpha=alpha))
            run = SweepRun(config, alpha if isinstance(alpha, str) else f"{alpha:g}",
                           run_path(folder.runs_dir, config))
            fake.train_run(config, run.path)
            runs.append(run)
    return runs


def test_table_has_the_report_columns_and_the_final_record(tmp_path):
    folder = SweepFolder(tmp_path)
    runs = make_runs(folder)
    table = build_results(runs, folder)
    assert tuple(table.columns) == COLUMNS
    assert len(table) == 4 * (6 + 3 * 3 + 9 * 2)  # network + layer x metric + unit x (si, dead)
    run = runs[2]  # alpha "0x1,-2", seed 0
    rows = table[table["run_id"] == run.run_id]
    record = run.directory.read_metrics()[-1]
    assert set(rows["alpha"]) == {-2.0} and set(rows["alpha_label"]) == {"0x1,-2"}
    assert set(rows["epoch"]) == {record["epoch"]} and set(rows["seed"]) == {0}
    assert set(rows["model"]) == {"small_cnn"} and set(rows["dataset"]) == {"digits"}
    network = rows[rows["layer"] == "network"].set_index("metric")
    assert set(network["layer_index"]) == {-1} and set(network["unit"]) == {-1}
    for metric in ("test_accuracy", "test_loss", "mean_si", "dead_fraction", "train_loss", "train_batch_si"):
        assert network.loc[metric, "value"] == record[metric]
    layers = rows[(rows["layer"] != "network") & (rows["unit"] == -1)]
    for index, name in enumerate(fake.LAYERS):  # the fake trainer's call order, not the JSON key order
        layer = layers[layers["layer"] == name].set_index("metric")
        assert set(layer["layer_index"]) == {index}
        values = record["layers"][name]
        assert {m: layer.loc[m, "value"] for m in ("mean_si", "dead_fraction", "num_units")} == {
            m: values[m] for m in ("mean_si", "dead_fraction", "num_units")}
    units = run.directory.read_units()
    si = rows[rows["metric"] == "si"].sort_values(["layer_index", "unit"])
    expected = units.assign(order=units["layer"].map(fake.LAYERS.index)).sort_values(["order", "unit"])
    assert si["value"].tolist() == expected["si"].tolist()
    dead = rows[rows["metric"] == "dead"]
    assert dead["value"].sum() == units["dead"].sum() and set(dead["value"]) <= {0.0, 1.0}


def test_report_stage_reads_the_written_table(tmp_path):
    folder = SweepFolder(tmp_path)
    table = build_results(make_runs(folder), folder)
    write_results(folder, table)
    from_parquet, from_csv = load_results(folder.results_parquet), load_results(folder.results_csv)
    pd.testing.assert_frame_equal(from_parquet, prepare_table(table))
    pd.testing.assert_frame_equal(from_csv, from_parquet)
    runs = run_network_table(from_parquet)
    assert len(runs) == 4 and set(runs["alpha_label"]) == {"-1", "0x1,-2"}
    assert len(unit_selectivity(from_parquet)) == 4 * 9
    assert not list(tmp_path.glob(".results*"))  # no temporary files left behind


def _truncate(path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.parametrize("damage, state", [
    (lambda d: _truncate(d.metrics_path), "corrupt"),
    (lambda d: d.metrics_path.write_text(d.metrics_path.read_text() + '{"epoch": 3, "alp\n'), "corrupt"),
    (lambda d: _truncate(d.units_path), "corrupt"),
    (lambda d: d.done_path.unlink(), "interrupted"),
    (lambda d: d.done_path.write_text('{"summary": {}, "metric_records": 2, "un'), "corrupt"),
])
def test_damaged_runs_are_never_read_as_results(tmp_path, damage, state):
    folder = SweepFolder(tmp_path)
    runs = make_runs(folder, alphas=(0.0,))
    damage(runs[0].directory)
    assert run_state(runs[0].directory).state == state
    table = build_results(runs, folder)
    assert set(table["run_id"]) == {runs[1].run_id}


def test_no_done_run_gives_an_empty_table_with_the_columns(tmp_path):
    table = build_results([], SweepFolder(tmp_path))
    assert tuple(table.columns) == COLUMNS and table.empty


@register_analysis("test-layer-count")
def layer_count_rows(context):
    """A post-sweep analysis: one network row per run with the number of unit layers."""
    rows = []
    for run_id, group in context.table[context.table["unit"] == -1].groupby("run_id"):
        first = group.iloc[0].to_dict()
        count = group.loc[group["layer"] != "network", "layer"].nunique()
        rows.append({**first, "layer": "network", "layer_index": -1, "metric": "unit_layers", "value": count})
    return rows


def missing_columns_rows(context):
    return pd.DataFrame({"run_id": ["x"], "metric": ["m"], "value": [1.0]})


def test_post_sweep_analyses_append_rows(tmp_path):
    folder = SweepFolder(tmp_path)
    runs = make_runs(folder, alphas=(0.0,))
    table = build_results(runs, folder, analyses=("test-layer-count",))
    extra = table[table["metric"] == "unit_layers"]
    assert len(extra) == 2 and set(extra["value"]) == {3.0} and tuple(table.columns) == COLUMNS
    with pytest.raises(SelectivityError, match="lack columns"):
        build_results(runs, folder, analyses=("tests.test_sweep_results:missing_columns_rows",))
    with pytest.raises(SelectivityError, match="unknown analysis 'nope'"):
        build_results(runs, folder, analyses=("nope",))
    with pytest.raises(SelectivityError, match="cannot be loaded"):
        build_results(runs, folder, analyses=("tests.nowhere:rows",))


def test_builtin_analyses_are_found_by_name():
    from selectivity.sweep.analyses import get_analysis
    from selectivity.sweep.off_axis import off_axis_control

    assert get_analysis("cca") is off_axis_control and "cca" in list_analyses()


def test_layer_index_is_the_recorded_call_order_not_the_json_key_order(tmp_path):
    folder = SweepFolder(tmp_path)
    run = make_runs(folder, alphas=(0.0,), seeds=(0,))[0]
    record = json.loads(run.directory.metrics_path.read_text().splitlines()[-1])
    assert list(record["layers"]) != list(fake.LAYERS)  # sorted keys scramble the call order on disk
    table = build_results([run], folder)
    order = table[table["unit"] == 0].drop_duplicates("layer").sort_values("layer_index")["layer"].tolist()
    assert order == list(fake.LAYERS)


def test_a_record_without_layer_index_is_refused_not_guessed(tmp_path):
    folder = SweepFolder(tmp_path)
    run = make_runs(folder, alphas=(0.0,), seeds=(0,))[0]
    records = run.directory.read_metrics()
    for values in records[-1]["layers"].values():
        del values["layer_index"]
    run.directory.write_metrics(records)
    run.directory.mark_done(records[-1])  # a run finished whole by a version that recorded no layer_index
    with pytest.raises(SelectivityError, match="no recorded layer_index"):
        build_results([run], folder)


class _CallOrderProbe(torch.nn.Module):
    """Registration, lexical and call orders all differ: `features` is registered first, the
    stem's `relu` runs first, and "features.12" sorts before "features.2"."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1):
        super().__init__()
        self.features = torch.nn.Sequential(*[torch.nn.Identity() for _ in range(13)])
        self.features[2], self.features[12] = torch.nn.ReLU(), torch.nn.ReLU()
        self.features[1] = torch.nn.Conv2d(4, 4, 3, padding=1)
        self.features[11] = torch.nn.Conv2d(4, 4, 3, padding=1)
        self.stem = torch.nn.Conv2d(in_channels, 4, 3, padding=1)
        self.relu = torch.nn.ReLU()
        self.fc = torch.nn.Linear(4, num_classes)
        self.unit_layers = ("relu", "features.2", "features.12")
        self.block_output_layers = ("features.12",)

    def forward(self, x):
        return self.fc(self.features(self.relu(self.stem(x))).mean((2, 3)))


def test_trained_run_table_is_in_call_order_for_a_model_whose_names_sort_otherwise(tmp_path):
    from selectivity.models.registry import _MODEL_FACTORIES, register_model
    from selectivity.store import RunDirectory
    from selectivity.train import train_run

    def call_order_probe(num_classes: int = 10, in_channels: int = 1):
        return _CallOrderProbe(num_classes, in_channels)

    _MODEL_FACTORIES.pop("call_order_probe", None)
    register_model(call_order_probe)
    try:
        config = ExperimentConfig(train=TrainSettings(epochs=1), device="cpu")
        config = dataclasses.replace(config, model=dataclasses.replace(config.model, name="call_order_probe"))
        folder = SweepFolder(tmp_path)
        run = SweepRun(config, "0", run_path(folder.runs_dir, config))
        train_run(config, run.path, progress=False)
        table = build_results([run], folder)
    finally:
        _MODEL_FACTORIES.pop("call_order_probe", None)
    layer_rows = table[(table["unit"] == -1) & (table["layer"] != "network")]
    order = layer_rows.drop_duplicates("layer").sort_values("layer_index")["layer"].tolist()
    assert order == ["relu", "features.2", "features.12"]  # the forward pass's order
    unit_rows = table[table["unit"] >= 0].drop_duplicates("layer").set_index("layer")["layer_index"]
    assert unit_rows.to_dict() == {"relu": 0, "features.2": 1, "features.12": 2}
    assert list(RunDirectory(run.path).read_metrics()[-1]["layers"]) == sorted(order)  # what the file alone gives
