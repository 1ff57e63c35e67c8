"""Damaged run folders: what cannot be read is moved aside (kept, named in one line), never deleted.

A damaged config.json is rewritten from the sweep's settings and the run's good results stay;
a corrupt run is redone with its damaged files kept; an unreadable checkpoint is kept with the
metrics it belonged to; is_done says "not done" only for absent or damaged files.
"""
import errno
import json

import pandas as pd
import pytest
import torch

from selectivity.store import RunDirectory
from selectivity.train.checkpoint import resume_point, save_checkpoint
from tests.test_sweep_driver import attempts, sweep, write_spec


def file_bytes(run: RunDirectory, names) -> dict[str, bytes]:
    return {name: (run.path / name).read_bytes() for name in names}


def test_a_damaged_config_json_is_rewritten_and_the_runs_results_are_kept(tmp_path, capsys):
    spec = write_spec(tmp_path, alphas="[-1, 0]", seeds=1)
    _, folder, runs = sweep(tmp_path, spec)
    clean = pd.read_parquet(folder.results_parquet)
    run = runs[0].directory
    results = file_bytes(run, ["metrics.jsonl", "units.parquet", "checkpoint.pt", "done.json"])
    run.config_path.write_text('{"hash": "3f2a')  # cut off mid-write by a crash
    capsys.readouterr()
    result, _, _ = sweep(tmp_path, spec)
    assert result.exit_code == 0 and len(attempts(runs[0])) == 1  # done, not trained again
    assert file_bytes(run, results) == results
    assert json.loads(run.config_path.read_text())["hash"] == runs[0].run_id.split("/")[0]
    damaged = list(run.path.glob("damaged-*/config.json"))
    assert [path.read_text() for path in damaged] == ['{"hash": "3f2a']
    lines = [line for line in capsys.readouterr().out.splitlines() if "moved aside" in line]
    assert len(lines) == 1 and str(damaged[0].parent) in lines[0]
    pd.testing.assert_frame_equal(pd.read_parquet(folder.results_parquet), clean)


def test_a_corrupt_run_is_redone_with_its_damaged_files_kept(tmp_path):
    spec = write_spec(tmp_path, alphas="[0]", seeds=1)
    _, _, runs = sweep(tmp_path, spec)
    run = runs[0].directory
    run.metrics_path.write_bytes(run.metrics_path.read_bytes()[:-40])  # truncated
    before = file_bytes(run, ["metrics.jsonl", "units.parquet", "done.json", "checkpoint.pt"])
    result, _, _ = sweep(tmp_path, spec)
    assert result.exit_code == 0 and run.is_done() and len(attempts(runs[0])) == 2
    [damaged] = run.path.glob("damaged-*")
    assert file_bytes(RunDirectory(damaged), before) == before


def test_a_done_run_whose_final_record_was_rewritten_is_redone_not_read_as_results(tmp_path):
    # valid JSON, so only a comparison with done.json's summary can see it (epoch 10**30 once overflowed the table)
    spec = write_spec(tmp_path, alphas="[0]", seeds=1)
    _, folder, runs = sweep(tmp_path, spec)
    clean = pd.read_parquet(folder.results_parquet)
    run = runs[0].directory
    lines = run.metrics_path.read_text().splitlines()
    record = json.loads(lines[-1])
    record.update(epoch=10**30, test_accuracy=1e308)
    run.metrics_path.write_text("\n".join(lines[:-1] + [json.dumps(record, sort_keys=True)]) + "\n")
    assert not run.is_done()
    result, _, _ = sweep(tmp_path, spec)
    assert result.exit_code == 0 and run.is_done() and len(attempts(runs[0])) == 2
    [damaged] = run.path.glob("damaged-*")
    assert json.loads(RunDirectory(damaged).metrics_path.read_text().splitlines()[-1])["epoch"] == 10**30
    pd.testing.assert_frame_equal(pd.read_parquet(folder.results_parquet), clean)  # the redo gives the same table


def test_is_done_answers_not_done_only_for_absent_or_damaged_files(tmp_path, monkeypatch):
    spec = write_spec(tmp_path, alphas="[0]", seeds=1)
    _, _, runs = sweep(tmp_path, spec)
    run = runs[0].directory
    assert run.is_done()

    def unreadable(self):
        raise PermissionError(errno.EACCES, "Permission denied", str(self.units_path))

    monkeypatch.setattr(RunDirectory, "read_units", unreadable)
    with pytest.raises(PermissionError):  # says nothing about the run: must not trigger a redo
        run.is_done()
    monkeypatch.undo()
    good = run.units_path.read_bytes()
    run.units_path.write_bytes(good[:200] + b"x" * 64 + good[264:])  # a corrupt page: pyarrow's errno-less OSError
    assert not run.is_done()
    run.units_path.write_bytes(good)
    run.done_path.write_text("[]")  # a marker that is not one
    assert not run.is_done()
    run.done_path.unlink()
    assert not run.is_done()


def tiny_training_state(seed: int):
    torch.manual_seed(seed)
    model = torch.nn.Linear(4, 3)
    return model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), torch.Generator().manual_seed(seed)


def test_an_unreadable_checkpoint_is_moved_aside_with_its_metrics_and_the_run_starts_over(tmp_path):
    run = RunDirectory(tmp_path / "run")
    run.path.mkdir()
    model, optimizer, generator = tiny_training_state(0)
    assert resume_point(run, model, optimizer, generator) == (0, 0)  # nothing yet
    save_checkpoint(run.checkpoint_path, model, optimizer, generator, epoch=3, step=30)
    restored = tiny_training_state(1)
    assert resume_point(run, *restored) == (3, 30)
    assert torch.equal(restored[0].weight, model.weight)
    records = "".join(json.dumps({"epoch": epoch}) + "\n" for epoch in (1, 2, 3))
    run.metrics_path.write_text(records)
    run.checkpoint_path.write_bytes(run.checkpoint_path.read_bytes()[:100])  # truncated
    damaged_checkpoint = run.checkpoint_path.read_bytes()
    assert resume_point(run, *tiny_training_state(2)) == (0, 0)
    [damaged] = run.path.glob("damaged-*")
    assert (damaged / "checkpoint.pt").read_bytes() == damaged_checkpoint
    assert (damaged / "metrics.jsonl").read_text() == records
    assert not run.checkpoint_path.exists() and not run.metrics_path.exists()


@pytest.mark.parametrize("damaged", ['{"reas', "[]", "null", b"\xff\xfe"])
def test_a_malformed_failure_record_still_reads_as_failed_and_can_be_retried(tmp_path, damaged):
    """It used to crash `status` and the sweep (AttributeError, JSONDecodeError), or ("null") to
    count the failed run as never tried."""
    from selectivity.sweep import sweep_status

    spec = write_spec(tmp_path, alphas="[0]", seeds=1)
    _, folder, runs = sweep(tmp_path, spec)
    run = runs[0]
    run.directory.done_path.unlink()  # as a failed run leaves it: results but no done.json
    run.directory.failed_path.write_bytes(damaged if isinstance(damaged, bytes) else damaged.encode())
    (row,) = sweep_status(runs)
    assert row.state.state == "failed" and "failed.json is malformed" in row.state.detail
    result, _, _ = sweep(tmp_path, spec)
    assert result.exit_code == 1 and "failed.json is malformed" in result.failed[run.run_id]
    assert len(attempts(run)) == 1  # not trained again
    retried, _, _ = sweep(tmp_path, spec, retry_failed=True)
    assert retried.exit_code == 0 and run.directory.is_done() and len(attempts(run)) == 2
    (kept,) = run.path.glob("damaged-*/failed.json")  # moved aside on the retry, byte for byte
    assert kept.read_bytes() == (damaged if isinstance(damaged, bytes) else damaged.encode())
