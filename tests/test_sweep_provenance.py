"""provenance.csv: each done run's epochs, recipe, precision, device, CPU and start, beside its results table."""
import datetime
import json

import pandas as pd
import torch
from tests.test_sweep_driver import sweep, write_spec
from tests.test_sweep_results import make_runs

from selectivity.report.provenance import PROVENANCE_COLUMNS as READ_COLUMNS
from selectivity.report.provenance import load_provenance, sweep_factors
from selectivity.report.tables import load_results
from selectivity.setup import cpu_description, machine_description
from selectivity.sweep import SweepFolder
from selectivity.sweep.provenance import PROVENANCE_COLUMNS, RECIPE_COLUMNS, provenance_table
from selectivity.sweep.run_state import TIMING_FILE


def test_each_done_run_records_its_recipe_and_the_machine_of_its_attempts(tmp_path):
    runs = make_runs(SweepFolder(tmp_path), alphas=(-1.0,), seeds=(0, 1), epochs=2)
    (runs[0].path / TIMING_FILE).write_text(json.dumps({"attempts": [
        {"start": 1796600000.0, "device": "cpu", "cpu": "AMD EPYC 7B13 (AVX2)"},
        {"start": 1796603600.0, "device": "cpu", "cpu": "Intel Xeon (AVX512, AMX)"}]}))  # resumed elsewhere
    table = provenance_table(runs).set_index("run_id")
    first, second = table.loc[runs[0].run_id], table.loc[runs[1].run_id]
    train = runs[0].config.train
    assert [first[column] for column in RECIPE_COLUMNS] == [getattr(train, column) for column in RECIPE_COLUMNS]
    assert first["epochs"] == runs[0].directory.read_metrics()[-1]["epoch"]  # the final epoch, as the table has it
    assert first["cpu"] == "AMD EPYC 7B13 (AVX2) / Intel Xeon (AVX512, AMX)" and first["device"] == "cpu"
    assert first["started"] == datetime.datetime.fromtimestamp(1796600000, datetime.timezone.utc).isoformat()
    assert pd.isna(second["cpu"]) and pd.isna(second["started"])  # no timing record: not recorded, not guessed


def test_a_sweep_writes_provenance_csv_that_the_report_reads(tmp_path):
    result, folder, runs = sweep(tmp_path, write_spec(tmp_path, alphas="[-1, 0]", seeds=1, epochs=2))
    assert result.exit_code == 0
    provenance = load_provenance(folder.path)
    assert list(provenance["run_id"]) == [run.run_id for run in runs]
    assert set(provenance["cpu"]) == {cpu_description()} and set(provenance["device"]) == {"cpu"}
    factors = sweep_factors(load_results(folder.path), provenance)
    assert factors["machine"] == f"cpu: {cpu_description()}"
    assert factors["epochs"] == str(runs[0].directory.read_metrics()[-1]["epoch"])
    assert factors["lr"] == f"{runs[0].config.train.lr:g}"


def test_the_machine_names_the_cpu_model_and_instruction_set():
    machine = machine_description("cpu")
    assert machine["device"] == "cpu"
    assert machine["cpu"].endswith(")") and torch.backends.cpu.get_cpu_capability() in machine["cpu"]
    assert machine_description("cuda:7")["device"] in ("cuda:7",) or torch.cuda.device_count() > 7


def test_the_sweep_writes_the_columns_the_report_reads():
    assert PROVENANCE_COLUMNS == READ_COLUMNS
