"""Sweep faults with the real trainer at smoke size (digits + small_cnn, 2 epochs, CPU).

Every faulted sweep must end with the same results table as an uninterrupted one (the
trainer resumes bit-exactly on CPU): a SIGKILLed sweep, two sweeps on one store at once,
corrupt run folders, and the Ray executor.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from selectivity.cli import main
from selectivity.errors import SelectivityError
from selectivity.sweep import SweepFolder, load_sweep_spec, make_executor, run_sweep, sweep_status
from selectivity.sweep.layout import open_sweep
from selectivity.sweep.run_state import TIMING_FILE

REPO = Path(__file__).resolve().parents[1]
BASE = "[train]\nepochs = 2\n[evaluation]\nevery = 2\nbatch_size = 2000\n"
TWO_ALPHAS = ["--set", "alphas=[-1, 0]"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted sweep (3 runs, in this process): its spec and results table."""
    root = tmp_path_factory.mktemp("reference")
    (root / "base.toml").write_text(BASE)
    spec = root / "smoke.toml"
    spec.write_text('name = "smoke"\nbase = "base.toml"\nalphas = [-1, 0, 1]\nseeds = 1\n')
    assert main(["sweep", str(spec), "--store", str(root / "sweep"), "--workers", "0", "--no-progress"]) == 0
    return spec, root / "sweep", pd.read_parquet(root / "sweep" / "results.parquet")


def assert_same_table(table: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Equal rows for the runs in `table` (values to 1e-12); `table` must cover its runs fully."""
    expected = expected[expected["run_id"].isin(table["run_id"])]
    order = ["run_id", "layer_index", "layer", "unit", "metric"]
    pd.testing.assert_frame_equal(table.sort_values(order).reset_index(drop=True),
                                  expected.sort_values(order).reset_index(drop=True), rtol=0, atol=1e-12)


def test_the_real_trainer_marks_each_checkpoint_in_the_timing_record(reference):
    """The trainer's heartbeat carries the checkpointed epoch count; the worker records it with the time."""
    _, store, _ = reference
    folders = sorted((store / "runs").glob("*/seed_*"))
    assert len(folders) == 3
    for folder in folders:
        (attempt,) = json.loads((folder / TIMING_FILE).read_text())["attempts"]
        assert attempt["epochs_done"] == 2  # BASE trains 2 epochs
        assert attempt["start"] < attempt["alive"] <= attempt["end"]


def starts(store: Path) -> dict[str, list[bool]]:
    """run_id -> the `resumed` flag of each start of that run, from events.jsonl."""
    found = {}
    for event in SweepFolder(store).read_events():
        if event["event"] == "start":
            found.setdefault(event["run_id"], []).append(event["resumed"])
    return found


def sweep_process(spec: Path, store: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "selectivity", "sweep", str(spec), "--store", str(store),
                             "--no-progress", *extra], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def test_sigkilled_sweep_resumes_and_runs_nothing_twice(reference, tmp_path):
    spec, _, expected = reference
    store = tmp_path / "sweep"
    process = sweep_process(spec, store, "--workers", "0", *TWO_ALPHAS)  # the sweep process is the worker
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        unfinished = [p for p in store.glob("runs/*/seed_0/checkpoint.pt") if not (p.parent / "done.json").exists()]
        if unfinished:
            break
        time.sleep(0.02)
    assert unfinished, f"no checkpoint appeared: {process.communicate()[1]}"
    os.killpg(process.pid, signal.SIGKILL)  # mid-run (a killed pool worker: tests/test_sweep_driver.py)
    process.wait()
    killed_run = unfinished[0].parent
    assert (killed_run / "claim.json").exists() and not (killed_run / "done.json").exists()
    assert main(["sweep", str(spec), "--store", str(store), "--workers", "0", "--no-progress", *TWO_ALPHAS]) == 0
    history = starts(store)
    killed_id = f"{killed_run.parent.name}/seed_0"
    assert history.pop(killed_id) == [False, True]  # started once, then resumed from its checkpoint
    assert list(history.values()) == [[False]]  # the other run: started once
    assert_same_table(pd.read_parquet(store / "results.parquet"), expected)


def test_two_sweeps_on_one_store_run_every_run_exactly_once(reference, tmp_path):
    spec, _, expected = reference
    store = tmp_path / "sweep"
    processes = [sweep_process(spec, store, "--workers", "0", *TWO_ALPHAS) for _ in range(2)]
    errors = [process.communicate(timeout=300)[1] for process in processes]
    assert [process.returncode for process in processes] == [0, 0], errors
    assert sorted(starts(store).values()) == [[False]] * 2
    for results in (store / "results.parquet", store / "results.csv"):
        table = pd.read_parquet(results) if results.suffix == ".parquet" else \
            pd.read_csv(results, dtype={"alpha_label": str})
        assert table["run_id"].nunique() == 2
        assert_same_table(table, expected)


def test_corrupt_and_half_written_runs_are_redone_not_read(reference, tmp_path):
    _, reference_store, expected = reference
    store = tmp_path / "sweep"
    shutil.copytree(reference_store, store)
    _, _, runs, _ = open_sweep(store)
    metrics = runs[0].directory.metrics_path
    metrics.write_bytes(metrics.read_bytes()[:-25])  # truncated metrics.jsonl
    runs[1].directory.done_path.unlink()  # missing done.json
    units = runs[2].directory.units_path
    units.write_bytes(units.read_bytes()[: len(units.read_bytes()) // 2])  # truncated units.parquet
    assert [row.shown_state for row in sweep_status(runs)] == ["pending-redo", "pending-resume", "pending-redo"]
    assert main(["sweep", str(store), "--workers", "0", "--no-progress"]) == 0  # the folder's recorded grid
    for run in runs:
        attempts = json.loads((run.path / TIMING_FILE).read_text())["attempts"]
        assert len(attempts) == 2 and run.directory.is_done()
    assert_same_table(pd.read_parquet(store / "results.parquet"), expected)


def test_a_done_runs_damaged_checkpoint_is_moved_aside_and_the_run_redone(reference, tmp_path):
    """The analyses and robustness read a done run's final model from checkpoint.pt: a truncated
    one (seen by status from its size) or one overwritten in place (seen by the sweep from its
    sha256) makes the run redone, the damaged file kept in damaged-*/."""
    _, reference_store, expected = reference
    store = tmp_path / "sweep"
    shutil.copytree(reference_store, store)
    _, _, runs, _ = open_sweep(store)
    truncated, overwritten = runs[0].directory.checkpoint_path, runs[1].directory.checkpoint_path
    truncated_bytes = truncated.read_bytes()[:-100]
    truncated.write_bytes(truncated_bytes)
    good = bytearray(overwritten.read_bytes())
    good[len(good) // 2] ^= 0xFF  # same size, one byte changed
    overwritten.write_bytes(bytes(good))
    assert [row.shown_state for row in sweep_status(runs)] == ["pending-redo", "done", "done"]
    assert main(["sweep", str(store), "--workers", "0", "--no-progress"]) == 0
    attempts = [len(json.loads((run.path / TIMING_FILE).read_text())["attempts"]) for run in runs]
    assert attempts == [2, 2, 1] and all(run.directory.is_done() for run in runs)
    assert [p.read_bytes() for p in runs[0].path.glob("damaged-*/checkpoint.pt")] == [truncated_bytes]
    assert [p.read_bytes() for p in runs[1].path.glob("damaged-*/checkpoint.pt")] == [bytes(good)]
    assert_same_table(pd.read_parquet(store / "results.parquet"), expected)


def test_ray_executor_gives_the_same_table_as_local(reference, tmp_path):
    ray = pytest.importorskip("ray")
    spec, _, expected = reference
    loaded = load_sweep_spec(spec, {"alphas": [-1, 0]})
    folder = SweepFolder(tmp_path / "sweep")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        executor = make_executor("ray")
        assert executor.options["num_cpus"] == 2 and executor.options["num_gpus"] == 0
        result = run_sweep(loaded.name, folder, folder.runs_for(loaded), executor, progress=False)
        executor.close()  # leaves the instance it did not start
        assert ray.is_initialized()
    finally:
        ray.shutdown()
    assert (result.done, result.exit_code) == (2, 0)
    assert_same_table(pd.read_parquet(folder.results_parquet), expected)


def test_missing_ray_is_a_one_line_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    with pytest.raises(SelectivityError, match=r"pip install 'selectivity\[ray\]'"):
        make_executor("ray")


def test_an_inline_sweep_trains_with_the_executors_threads_whatever_the_callers_setting(reference, tmp_path):
    """A caller with one torch thread (as under OMP_NUM_THREADS=1) gets the same table as the reference: each
    run trains with the executor's thread count (every usable core), recorded in its attempt; the caller's
    own setting is restored afterwards."""
    import torch

    spec, _, expected = reference
    loaded = load_sweep_spec(spec, {"alphas": [-1]})
    folder = SweepFolder(tmp_path / "sweep")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = run_sweep(loaded.name, folder, folder.runs_for(loaded), make_executor("local", 0), progress=False)
        assert torch.get_num_threads() == 1  # restored
    finally:
        torch.set_num_threads(before)
    assert (result.done, result.exit_code) == (1, 0)
    (run,) = folder.runs_for(loaded)
    attempts = json.loads((run.path / TIMING_FILE).read_text())["attempts"]
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert [attempt["threads"] for attempt in attempts] == [usable]
    assert_same_table(pd.read_parquet(folder.results_parquet), expected)
