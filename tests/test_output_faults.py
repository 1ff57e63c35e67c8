"""Outputs that cannot be written: every command says so in one line (exit 2) before it works.

Root ignores file permissions, so an unwritable location is made the way that stops root
too: a folder below a regular file. A full disk is simulated by a write that raises ENOSPC.
"""
import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from selectivity.cli import main
from selectivity.sweep import SweepFolder, load_sweep_spec
from selectivity.train.checkpoint import save_checkpoint
from tests.test_sweep_driver import FAKE, write_spec

REPO = Path(__file__).resolve().parents[1]


def refuse(*_, **__):
    raise AssertionError("the command started working before it checked its output location")


@pytest.fixture
def unwritable(tmp_path) -> Path:
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file, not a folder")
    return blocker / "out"


def one_line_error(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0], lines
    return lines[0]


def test_every_command_checks_its_output_location_before_working(tmp_path, unwritable, monkeypatch, capsys):
    import selectivity.cli.measure_command
    import selectivity.train

    monkeypatch.setattr(selectivity.train, "train_run", refuse)
    monkeypatch.setattr(selectivity.cli.measure_command, "measure_model", refuse)
    (tmp_path / "run.toml").write_text("[train]\nepochs = 1\n")
    spec = write_spec(tmp_path, alphas="[0]", seeds=1)
    commands = {
        "train": ["train", str(tmp_path / "run.toml"), "--out", str(unwritable), "--no-progress"],
        "sweep": ["sweep", str(spec), "--store", str(unwritable), "--workers", "0", "--trainer", FAKE, "--no-progress"],
        "measure": ["measure", "--model", "small_cnn", "--dataset", "digits", "--out", str(unwritable), "--no-progress"],
        "report": ["report", str(tmp_path), "--out", str(unwritable)],
    }
    for name, argv in commands.items():
        assert main(argv) == 2, name
        line = one_line_error(capsys)
        assert str(unwritable) in line and os.strerror(errno.ENOTDIR) in line, line


def test_a_full_disk_while_writing_the_results_table_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    import selectivity.sweep.results

    def disk_full(path, frame):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(selectivity.sweep.results, "write_table", disk_full)
    spec = write_spec(tmp_path, alphas="[0]", seeds=1)
    assert main(["sweep", str(spec), "--store", str(tmp_path / "sweep"), "--workers", "0", "--trainer", FAKE,
                 "--no-progress"]) == 2
    line = one_line_error(capsys)
    assert "No space left on device" in line and "results.parquet" in line, line


def test_a_checkpoint_torch_cannot_write_is_an_oserror_and_the_old_one_stays(tmp_path, monkeypatch):
    model = torch.nn.Linear(2, 2)
    optimizer, generator = torch.optim.SGD(model.parameters(), lr=0.1), torch.Generator()
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, model, optimizer, generator, epoch=1, step=10)
    old = path.read_bytes()

    def stream_writer_failed(*_, **__):  # how torch reports a full disk
        raise RuntimeError("[enforce fail at inline_container.cc:603] . PytorchStreamWriter failed writing file")

    monkeypatch.setattr(torch, "save", stream_writer_failed)
    with pytest.raises(OSError, match="could not write the checkpoint .*checkpoint.pt"):
        save_checkpoint(path, model, optimizer, generator, epoch=2, step=20)
    assert path.read_bytes() == old and sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]


def test_status_into_a_closed_pipe_exits_without_a_traceback(tmp_path):
    """`selectivity status SWEEP | head -1`: the reader may leave before the table is written."""
    spec = load_sweep_spec(write_spec(tmp_path, alphas="[-1, 0, 1]", seeds=3))
    folder = SweepFolder(tmp_path / "sweep")
    folder.write_manifest(spec.name, folder.runs_for(spec))
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone: every write now fails with EPIPE
    try:
        done = subprocess.run([sys.executable, "-m", "selectivity", "status", str(folder.path)], cwd=REPO,
                              stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert done.stderr == "" and done.returncode == 141, done.stderr


def test_a_full_disk_in_a_sweep_worker_names_the_cause_and_exits_2(tmp_path, capsys):
    """In a pool worker the disk fills up: the sweep stops with one line naming ENOSPC and the file, exit 2
    (not "worker process died 2 times"), records no failure, and the run completes once there is room."""
    spec = write_spec(tmp_path, alphas="[0]", seeds=1)
    store = tmp_path / "sweep"
    code = main(["sweep", str(spec), "--store", str(store), "--workers", "1", "--no-progress",
                 "--trainer", "tests.sweep_fake_trainer:disk_full_train_run"])
    line = one_line_error(capsys)
    assert code == 2
    assert "No space left on device" in line and str(store / "runs") in line and "died" not in line, line
    assert not list(store.glob("runs/*/seed_0/failed.json"))  # not the run's fault: nothing to --retry-failed
    assert main(["sweep", str(spec), "--store", str(store), "--workers", "1", "--no-progress", "--trainer", FAKE]) == 0


def test_a_checkpoint_torch_cannot_write_on_a_nearly_full_disk_is_enospc_naming_the_file(tmp_path, monkeypatch):
    import collections
    import shutil

    import selectivity.train.checkpoint as checkpoint

    model = torch.nn.Linear(2, 2)
    optimizer, generator = torch.optim.SGD(model.parameters(), lr=0.1), torch.Generator()

    def stream_writer_failed(*_, **__):
        raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(torch, "save", stream_writer_failed)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 4096, 4096))
    with pytest.raises(OSError) as raised:
        checkpoint.save_checkpoint(tmp_path / "checkpoint.pt", model, optimizer, generator, epoch=1, step=1)
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(tmp_path / "checkpoint.pt")
    assert "4096 bytes free" in str(raised.value)
