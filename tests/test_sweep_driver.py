"""run_sweep and `selectivity sweep` with a stand-in trainer (tests/sweep_fake_trainer.py).

Resume, skip, failure, corrupt folders and crash-and-retry, at a size that runs in seconds.
tests/test_sweep_processes.py races whole sweep processes; tests/test_sweep_faults.py repeats
the key faults with the real trainer.
"""
import json
from pathlib import Path

import pandas as pd
import pytest

from selectivity.cli import main
from selectivity.sweep import SweepFolder, load_sweep_spec, make_executor, run_sweep
from selectivity.sweep.run_state import TIMING_FILE, training_seconds

FAKE = "tests.sweep_fake_trainer:train_run"


def write_spec(tmp_path: Path, alphas: str = "[-1, 0, 999]", seeds: int = 2, epochs: int = 3) -> Path:
    (tmp_path / "base.toml").write_text(f"[train]\nepochs = {epochs}\n")
    spec = tmp_path / "fake.toml"
    spec.write_text(f'name = "fake"\nbase = "base.toml"\nalphas = {alphas}\nseeds = {seeds}\n')
    return spec


def sweep(tmp_path, spec, executor=None, trainer=FAKE, **options):
    loaded = load_sweep_spec(spec)
    folder = SweepFolder(tmp_path / "sweep")
    executor = executor or make_executor("local", workers=0)
    try:
        result = run_sweep(loaded.name, folder, folder.runs_for(loaded), executor, progress=False,
                           trainer=trainer, poll_seconds=0.2, **options)
    finally:
        executor.close()
    return result, folder, folder.runs_for(loaded)


def attempts(run) -> list[dict]:
    path = run.path / TIMING_FILE
    return json.loads(path.read_text())["attempts"] if path.exists() else []


def test_sweep_runs_each_run_once_and_records_failures(tmp_path, capsys):
    spec = write_spec(tmp_path)
    result, folder, runs = sweep(tmp_path, spec)
    assert (result.total, result.done, result.exit_code) == (6, 4, 2)
    assert all("loss is nan" in reason for reason in result.failed.values())
    table = pd.read_parquet(folder.results_parquet)
    assert set(table["alpha_label"]) == {"-1", "0"} and table["run_id"].nunique() == 4
    pd.testing.assert_frame_equal(pd.read_csv(folder.results_csv, dtype={"alpha_label": str}), table)
    output = capsys.readouterr().out
    assert "start  [1/6]" in output and "finish [6/6]" in output and "(4 done, 2 failed)" in output
    again, _, _ = sweep(tmp_path, spec)  # nothing is run twice; failures stay failures
    assert (again.done, again.exit_code) == (4, 2)
    assert [len(attempts(run)) for run in runs] == [1] * 6
    pd.testing.assert_frame_equal(pd.read_parquet(folder.results_parquet), table)
    retried, _, _ = sweep(tmp_path, spec, retry_failed=True)
    assert retried.exit_code == 2 and [len(attempts(run)) for run in runs] == [1, 1, 1, 1, 2, 2]


def test_an_exception_in_the_trainer_is_a_recorded_failure(tmp_path):
    result, _, runs = sweep(tmp_path, write_spec(tmp_path, alphas="[0]", seeds=1),
                            trainer="tests.sweep_fake_trainer:crash_train_run")
    assert result.exit_code == 1 and "OSError: disk full (simulated)" in result.failed[runs[0].run_id]
    assert runs[0].directory.failure()["reason"] == "OSError: disk full (simulated)"
    assert "Traceback" in (runs[0].path / "failed_traceback.txt").read_text()


def test_corrupt_and_half_written_runs_are_redone(tmp_path):
    spec = write_spec(tmp_path, alphas="[-1, 0]")
    _, folder, runs = sweep(tmp_path, spec)
    clean = pd.read_parquet(folder.results_parquet)
    metrics = runs[0].directory.metrics_path
    metrics.write_bytes(metrics.read_bytes()[:-40])  # truncated (done.json stays)
    runs[1].directory.done_path.unlink()  # killed between units.parquet and done.json
    units = runs[2].directory.units_path
    units.write_bytes(units.read_bytes()[:100])
    result, _, _ = sweep(tmp_path, spec)
    assert result.exit_code == 0 and [len(attempts(run)) for run in runs] == [2, 2, 2, 1]
    assert [attempts(run)[-1]["resumed"] for run in runs[:3]] == [False, True, False]  # corrupt: from scratch
    pd.testing.assert_frame_equal(pd.read_parquet(folder.results_parquet), clean)


def test_a_killed_worker_is_replaced_and_its_run_resumes(tmp_path, monkeypatch):
    spec = write_spec(tmp_path, alphas="[-1, 0]", seeds=1)
    _, clean_folder, _ = sweep(tmp_path / "clean", spec)
    monkeypatch.setenv("FAKE_KILL_ONCE_DIR", str(tmp_path))  # the first run SIGKILLs its worker at epoch 1
    monkeypatch.setenv("FAKE_EPOCH_SECONDS", "0.3")
    result, folder, runs = sweep(tmp_path, spec, executor=make_executor("local", workers=1))
    assert (tmp_path / "killed").exists() and result.exit_code == 0
    killed = [run for run in runs if len(attempts(run)) == 2]
    assert len(killed) == 1 and attempts(killed[0])[1]["resumed"] and attempts(killed[0])[0]["end"] is None
    # the killed attempt trained epochs 0-1 (0.3 s each) and marked itself alive after each
    # checkpoint, so its time still counts: 2 epochs of it plus the resumed attempt's 1
    first = attempts(killed[0])[0]
    assert first["alive"] - first["start"] >= 0.6 and first["epochs_done"] == 2
    assert training_seconds(killed[0].path) >= 0.9
    pd.testing.assert_frame_equal(pd.read_parquet(folder.results_parquet),
                                  pd.read_parquet(clean_folder.results_parquet))


def test_bad_sweep_arguments_are_refused(tmp_path, capsys):
    spec = write_spec(tmp_path, alphas="[0]", seeds=1)
    assert main(["sweep", str(spec), "--store", str(tmp_path / "s"), "--workers", "-1"]) == 2
    assert "expected >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["sweep", str(spec), "--executor", "dask"])
    assert "invalid choice" in capsys.readouterr().err
