"""A run that failed and is retried to the end holds no failed.json and reads as done everywhere.

Otherwise the folder says both "done" and "failed": a later reader that looks at
failed.json first, or a person listing the folder, sees a failure the run no longer has.
"""
import json

import pandas as pd
import pytest

from selectivity.cli import main
from selectivity.store import RunDirectory
from selectivity.sweep import SweepFolder, load_sweep_spec, make_executor, run_sweep
from selectivity.sweep.run_state import run_state
from tests.sweep_fake_trainer import _record

FAIL_ONCE = "tests.sweep_fake_trainer:fail_once_train_run"


def interrupted_train_run(config, run_dir, progress=True, heartbeat=None):
    """Checkpoints one epoch (as tests/sweep_fake_trainer.py does), then the sweep is stopped."""
    run = RunDirectory(run_dir)
    run.claim_settings(config)
    run.write_metrics([_record(config, 0)])
    run.checkpoint_path.write_text(json.dumps({"epoch": 0}))
    raise KeyboardInterrupt


def spec_folder_runs(tmp_path):
    (tmp_path / "base.toml").write_text("[train]\nepochs = 2\n")
    spec = tmp_path / "retry.toml"
    spec.write_text('name = "retry"\nbase = "base.toml"\nalphas = [0]\nseeds = 1\n')
    loaded, folder = load_sweep_spec(spec), SweepFolder(tmp_path / "sweep")
    return loaded, folder, folder.runs_for(loaded)


def sweep(loaded, folder, runs, trainer, **options):
    executor = make_executor("local", workers=0)  # inline: runs in this process, one after another
    try:
        return run_sweep(loaded.name, folder, runs, executor, progress=False, trainer=trainer, **options)
    finally:
        executor.close()


def test_marking_a_run_done_removes_its_earlier_failure_record(tmp_path):
    run = RunDirectory(tmp_path / "run")
    run.path.mkdir()
    (run.path / "config.json").write_text('{"hash": "abc"}')
    run.mark_failed("loss is nan", 2)
    run.write_metrics([{"epoch": 1, "mean_si": 0.5}])
    run.write_units(pd.DataFrame({"layer": ["relu"], "unit": [0], "si": [0.5]}))
    run.mark_done({"epoch": 1, "mean_si": 0.5})
    assert not run.failed_path.exists() and run.failure() is None
    assert run_state(run).state == "done"


def test_a_failed_run_retried_to_the_end_is_done_without_failed_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_FAIL_ONCE_DIR", str(tmp_path))
    loaded, folder, runs = spec_folder_runs(tmp_path)
    assert sweep(loaded, folder, runs, FAIL_ONCE).exit_code == 1
    assert runs[0].directory.failed_path.exists()  # the first attempt failed and said why
    assert sweep(loaded, folder, runs, FAIL_ONCE, retry_failed=True).exit_code == 0
    assert not runs[0].directory.failed_path.exists()
    assert run_state(runs[0].directory).state == "done"
    capsys.readouterr()
    assert main(["status", str(folder.path)]) == 0
    output = capsys.readouterr().out
    assert "sweep retry: 1 of 1 done, 0 running, 0 failed" in output
    (row,) = [line for line in output.splitlines() if line.startswith(runs[0].run_id)]
    assert row.split()[3] == "done"


def test_a_retry_stopped_midway_resumes_in_the_next_sweep_instead_of_reading_failed(tmp_path, monkeypatch):
    """The retry drops the old failure record when it starts: the run it began is no longer that failure."""
    monkeypatch.setenv("FAKE_FAIL_ONCE_DIR", str(tmp_path))
    loaded, folder, runs = spec_folder_runs(tmp_path)
    assert sweep(loaded, folder, runs, FAIL_ONCE).exit_code == 1
    with pytest.raises(KeyboardInterrupt):
        sweep(loaded, folder, runs, "tests.test_retried_run_clears_failure:interrupted_train_run", retry_failed=True)
    assert run_state(runs[0].directory).state == "interrupted"
    assert sweep(loaded, folder, runs, FAIL_ONCE).exit_code == 0  # no --retry-failed needed: it resumes
    assert not runs[0].directory.failed_path.exists() and run_state(runs[0].directory).state == "done"
