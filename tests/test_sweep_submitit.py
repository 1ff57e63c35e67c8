"""SLURM-style sweeps: the submitit executor (its local cluster runs the same pickled tasks as
`sbatch --array`), worker mode (--max-runs) and --dry-run.

The killed-task test uses the real trainer at smoke size, as tests/test_sweep_faults.py does:
a resumed run must give the same table as an uninterrupted local sweep.
"""
import json
import re
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from selectivity import claims
from selectivity.cli import main
from selectivity.errors import SelectivityError
from selectivity.sweep import SweepFolder, make_executor
from selectivity.sweep.layout import open_sweep
from selectivity.sweep.run_state import TIMING_FILE

pytest.importorskip("submitit")

REPO = Path(__file__).resolve().parents[1]
BASE = "[train]\nepochs = 2\n[evaluation]\nevery = 2\nbatch_size = 2000\n"
FAKE = "tests.sweep_fake_trainer:train_run"


def write_spec(root: Path, base: str = BASE) -> Path:
    (root / "base.toml").write_text(base)
    spec = root / "smoke.toml"
    spec.write_text('name = "smoke"\nbase = "base.toml"\nalphas = [-1, 0]\nseeds = 1\n')
    return spec


def assert_same_table(table: pd.DataFrame, expected: pd.DataFrame) -> None:
    order = ["run_id", "layer_index", "layer", "unit", "metric"]
    pd.testing.assert_frame_equal(table.sort_values(order).reset_index(drop=True),
                                  expected.sort_values(order).reset_index(drop=True), rtol=0, atol=1e-12)


def starts(store: Path) -> dict[str, list[bool]]:
    found = {}
    for event in SweepFolder(store).read_events():
        if event["event"] == "start":
            found.setdefault(event["run_id"], []).append(event["resumed"])
    return found


def attempts(run_dir: Path) -> list[dict]:
    try:
        return json.loads((run_dir / TIMING_FILE).read_text())["attempts"]
    except (OSError, ValueError, KeyError):  # not written yet
        return []


def first_attempt_pid(run_dir: Path) -> int:
    return attempts(run_dir)[0]["pid"]


def checkpointed_once(run_dir: Path) -> bool:
    """Epoch 1 of 2 is checkpointed (and recorded), the run is still training."""
    recorded = attempts(run_dir)
    return bool(recorded) and recorded[-1].get("epochs_done") == 1 and not (run_dir / "done.json").exists()


@pytest.mark.slow
def test_submitit_local_array_with_a_killed_task_resumes_and_gives_the_local_table(tmp_path):
    spec = write_spec(tmp_path)
    assert main(["sweep", str(spec), "--store", str(tmp_path / "local"), "--workers", "0", "--no-progress"]) == 0
    expected = pd.read_parquet(tmp_path / "local" / "results.parquet")
    store = tmp_path / "array"
    driver = subprocess.Popen(
        [sys.executable, "-m", "selectivity", "sweep", str(spec), "--store", str(store), "--no-progress",
         "--executor", "submitit", "--cluster", "local", "--submitit-folder",  # 2 threads per task, as inline
         str(tmp_path / "submitit")], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    unfinished, deadline = [], time.time() + 240
    while time.time() < deadline and driver.poll() is None and not unfinished:
        unfinished = [run for run in store.glob("runs/*/seed_0") if checkpointed_once(run)]
        time.sleep(0.02)
    assert unfinished, f"no checkpoint appeared: {driver.communicate()[0]}"
    killed_run = unfinished[0]
    task_pid = json.loads((killed_run / "claim.json").read_text())["pid"]
    assert task_pid != driver.pid and first_attempt_pid(killed_run) == task_pid  # an array task's process
    os.kill(task_pid, signal.SIGKILL)  # one array task dies mid-run
    output = driver.communicate(timeout=300)[0]
    assert driver.returncode == 0, output
    assert "submitit task" in output and "died" in output  # the driver saw the task die and resubmitted it
    history = starts(store)
    killed_id = f"{killed_run.parent.name}/seed_0"
    assert history.pop(killed_id) == [False, True]  # trained once, then resumed from its checkpoint
    assert list(history.values()) == [[False]]
    first, second = attempts(killed_run)
    assert first["epochs_done"] == 1 and first["outcome"] is None  # killed after checkpointing epoch 1
    assert second["resumed"] and second["outcome"] == "done" and second["epochs_done"] == 2  # only epoch 2 left
    assert_same_table(pd.read_parquet(store / "results.parquet"), expected)


def test_worker_mode_skips_a_held_run_without_waiting_then_the_last_worker_writes_the_table(tmp_path, capsys):
    spec = write_spec(tmp_path, "[train]\nepochs = 3\n")
    common = ["sweep", str(spec), "--store", str(tmp_path / "sweep"), "--workers", "0", "--no-progress",
              "--trainer", FAKE]
    _, folder, runs, _ = open_sweep(spec, str(tmp_path / "sweep"))
    held = claims.try_claim(runs[0].path)  # another live process holds the first run
    try:
        assert main([*common, "--max-runs", "2"]) == 0  # returns at once: nothing waited for
        assert not runs[0].directory.is_done() and runs[1].directory.is_done()
        assert not folder.results_parquet.exists()  # the grid is not complete yet
        output = capsys.readouterr().out
        assert "ran 1 of 2 runs (1 skipped: held by other workers)" in output and "--collect" in output
        assert main([*common, "--dry-run"]) == 0
        listing = capsys.readouterr().out
        assert f"skip       {runs[0].run_id}" in listing and "held by" in listing
        assert f"skip       {runs[1].run_id}" in listing and "0 of 2 runs would run" in listing
    finally:
        held.release()
    assert main([*common, "--max-runs", "1"]) == 0
    assert runs[0].directory.is_done() and folder.results_parquet.exists()
    assert sorted(starts(folder.path).values()) == [[False], [False]]  # no run trained twice
    assert main(["sweep", str(spec), "--store", str(tmp_path / "plain"), "--workers", "0", "--no-progress",
                 "--trainer", FAKE]) == 0
    expected = pd.read_parquet(tmp_path / "plain" / "results.parquet")
    assert_same_table(pd.read_parquet(folder.results_parquet), expected)


def test_dry_run_lists_the_runs_it_would_take_and_claims_nothing(tmp_path, capsys):
    spec = write_spec(tmp_path)
    store = tmp_path / "sweep"
    _, _, runs, _ = open_sweep(spec, str(store))
    assert main(["sweep", str(spec), "--store", str(store), "--dry-run", "--max-runs", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == f"would run  {runs[0].run_id} alpha=-1 seed=0: start"
    assert lines[2] == f"left       {runs[1].run_id} alpha=0 seed=0: start (beyond --max-runs 1)"
    assert lines[3] == "1 of 2 runs would run (dry run: nothing trained or claimed)"
    assert not list(store.rglob("claim.json")) and not list(store.rglob("checkpoint.pt"))


def test_bad_submitit_settings_are_one_line_errors(tmp_path, monkeypatch, capsys):
    with pytest.raises(SelectivityError, match="unknown submitit cluster 'pbs'"):
        make_executor("submitit", submitit_options={"folder": tmp_path, "cluster": "pbs"})
    with pytest.raises(SelectivityError, match=r"timeout minutes = 0; expected an integer >= 1"):
        make_executor("submitit", submitit_options={"folder": tmp_path, "cluster": "local", "timeout_min": 0})
    spec = write_spec(tmp_path)
    assert main(["sweep", str(spec), "--store", str(tmp_path / "s"), "--max-runs", "0"]) == 2
    assert capsys.readouterr().err == ("selectivity sweep: error: --max-runs 0 is out of range; "
                                       "expected an integer >= 1\n")
    monkeypatch.setitem(sys.modules, "submitit", None)
    with pytest.raises(SelectivityError, match=r"pip install 'selectivity\[slurm\]'"):
        make_executor("submitit", submitit_options={"folder": tmp_path})


def recipe_commands() -> list[list[str]]:
    """The `selectivity sweep ...` lines of docs/sweeps.md's sbatch recipe, as argument lists."""
    text = (REPO / "docs" / "sweeps.md").read_text()
    section = text[text.index("### On a SLURM cluster without a long-running driver"):]
    block = section[section.index("```bash"):section.index("```", section.index("```bash") + 7)]
    return [line.split() for line in re.findall(r'selectivity (sweep [^"\n]+)', block)]


def test_the_documented_sbatch_recipe_runs_the_grid_to_its_table(tmp_path, capsys):
    """Dry run, then one `--max-runs 1` worker per array task (run here one after another, as tasks
    that never overlap would), then `--collect`: the table equals a plain sweep's on the same spec."""
    dry, worker, collect = recipe_commands()
    assert "--dry-run" in dry and "--max-runs" in worker and "--collect" in collect
    spec = write_spec(tmp_path)
    store, table = tmp_path / "runs", tmp_path / "table"

    def as_run(command):
        argv = [str(spec) if part.endswith(".toml") else part for part in command]
        argv = [part.replace("$SCRATCH/runs", str(store)).replace("$SCRATCH/table", str(table)) for part in argv]
        return main(argv + ["--no-progress"])

    assert as_run(dry) == 0 and not list(store.rglob("claim*"))
    assert "2 of 2 runs would run" in capsys.readouterr().out
    for task in range(3):  # one task more than the grid has runs: it finds nothing to do and exits 0
        assert as_run(worker) == 0
        assert len(list(store.rglob("done.json"))) == min(task + 1, 2)  # --max-runs 1: one run per task
    assert as_run(collect) == 0
    plain = tmp_path / "plain"
    assert main(["sweep", str(spec), "--store", str(plain), "--workers", "0", "--no-progress"]) == 0
    assert_same_table(pd.read_parquet(table / "results.parquet"), pd.read_parquet(plain / "results.parquet"))
    assert all(flags == [False] for flags in starts(store).values())  # each run trained once, never resumed
