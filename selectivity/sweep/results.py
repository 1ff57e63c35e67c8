"""The sweep's tidy results table, built from done runs only and written atomically.

One row per run x layer x metric, plus one per unit for unit metrics (the columns that
selectivity.report.tables reads; see docs/report.md and docs/sweeps.md):

    network rows (layer "network", layer_index -1, unit -1): NETWORK_METRICS of the run's
        last metrics.jsonl record
    layer rows (unit -1): LAYER_METRICS of that record's "layers", layer_index = its recorded depth order
    unit rows (unit >= 0): UNIT_METRICS from units.parquet
    analysis rows: whatever the sweep's post-sweep analyses return (selectivity.sweep.analyses)
"""
import pandas as pd

from selectivity.atomic import write_table
from selectivity.config import config_hash
from selectivity.errors import SelectivityError
from selectivity.sweep.analyses import AnalysisContext, run_analyses
from selectivity.sweep.layout import SweepFolder, SweepRun
from selectivity.sweep.provenance import PROVENANCE_FILE

COLUMNS = ("run_id", "model", "dataset", "alpha", "alpha_label", "seed", "epoch",
           "layer", "layer_index", "unit", "metric", "value")
DTYPES = {"run_id": str, "model": str, "dataset": str, "alpha": float, "alpha_label": str, "seed": "int64",
          "epoch": "int64", "layer": str, "layer_index": "int64", "unit": "int64", "metric": str, "value": float}
NETWORK_LAYER = "network"
NETWORK_METRICS = ("test_accuracy", "test_loss", "mean_si", "dead_fraction", "train_loss", "train_batch_si")
LAYER_METRICS = ("mean_si", "dead_fraction", "num_units")
UNIT_METRICS = ("si", "dead")


def typed_table(rows: pd.DataFrame | list[dict]) -> pd.DataFrame:
    """Rows as a DataFrame with exactly COLUMNS, in order and with the table's dtypes."""
    frame = pd.DataFrame(rows, columns=list(COLUMNS)) if isinstance(rows, list) else rows
    missing = [column for column in COLUMNS if column not in frame.columns]
    if missing:
        raise SelectivityError(f"result rows lack columns {missing}; expected {list(COLUMNS)}")
    return frame[list(COLUMNS)].astype(DTYPES).reset_index(drop=True)


def _final_record(run: SweepRun) -> dict:
    records = run.directory.read_metrics(strict=True)
    if not records:
        raise SelectivityError(f"{run.path} is marked done but has no metrics records; it must be redone")
    return records[-1]


def recorded_layer_order(record: dict, source) -> dict[str, int]:
    """Layer name -> depth (capture) order, as the trainer recorded it with every layer.

    Never recovered from key order: metrics.jsonl is written with sorted keys.
    """
    order = {}
    for layer, values in record.get("layers", {}).items():
        if not isinstance(values.get("layer_index"), int):
            raise SelectivityError(
                f"{source}: layer {layer!r} has no recorded layer_index (written by an older version); "
                "expected every layer record to carry its depth order: redo the run"
            )
        order[layer] = values["layer_index"]
    return order


def run_rows(run: SweepRun) -> pd.DataFrame:
    """Every row of one done run (network, layer and unit rows) at its final evaluation."""
    record = _final_record(run)
    config = run.config
    layer_index = recorded_layer_order(record, run.directory.metrics_path)
    units = run.directory.read_units()
    unnamed = sorted(set(units["layer"]) - set(layer_index))
    if unnamed:
        raise SelectivityError(f"{run.path}: units.parquet has layers {unnamed} that the final metrics record lacks; "
                               "expected the same layers in both")
    rows = [(NETWORK_LAYER, -1, -1, metric, record[metric]) for metric in NETWORK_METRICS if metric in record]
    for layer, values in record.get("layers", {}).items():
        rows += [(layer, layer_index[layer], -1, metric, values[metric]) for metric in LAYER_METRICS
                 if metric in values]
    aggregate = pd.DataFrame(rows, columns=["layer", "layer_index", "unit", "metric", "value"])
    unit_rows = units.melt(id_vars=["layer", "unit"], value_vars=list(UNIT_METRICS), var_name="metric",
                           value_name="value")
    unit_rows["value"] = unit_rows["value"].astype(float)  # dead is boolean in units.parquet
    unit_rows.insert(1, "layer_index", unit_rows["layer"].map(layer_index))
    table = pd.concat([aggregate, unit_rows], ignore_index=True)
    table.insert(0, "run_id", f"{config_hash(config)}/seed_{config.seed}")
    table.insert(1, "model", config.model.name)
    table.insert(2, "dataset", config.data.dataset)
    table.insert(3, "alpha", float(record["alpha"]))
    table.insert(4, "alpha_label", run.alpha_label)
    table.insert(5, "seed", config.seed)
    table.insert(6, "epoch", int(record["epoch"]))
    return typed_table(table)


def build_results(runs: list[SweepRun], folder: SweepFolder, analyses=()) -> pd.DataFrame:
    """The tidy table of every done run among `runs`, then the rows of each post-sweep analysis.

    Args:
        runs: the sweep's runs; those not `is_done()` are left out (never read as results).
        folder: the sweep folder, handed to the analyses.
        analyses: names or "module:function" of post-sweep analyses, or an AnalysisPlan that also
            carries their settings (selectivity.sweep.analyses).
    Returns:
        The table with exactly COLUMNS (empty, with those columns, if no run is done).
    """
    done = [run for run in runs if run.directory.is_done()]
    frames = [run_rows(run) for run in done]
    table = typed_table(pd.concat(frames, ignore_index=True) if frames else [])
    if analyses and done:
        extra = run_analyses(analyses, AnalysisContext(folder=folder, runs=done, table=table))
        table = typed_table(pd.concat([table] + [typed_table(rows) for rows in extra], ignore_index=True))
    return table


def write_results(folder: SweepFolder, table: pd.DataFrame, provenance: pd.DataFrame | None = None) -> None:
    """Write results.parquet and results.csv atomically (a reader never sees half a table), and
    provenance.csv beside them when given (sweep.provenance.provenance_table)."""
    folder.path.mkdir(parents=True, exist_ok=True)
    write_table(folder.results_parquet, table)
    write_table(folder.results_csv, table)
    if provenance is not None:
        write_table(folder.path / PROVENANCE_FILE, provenance)
