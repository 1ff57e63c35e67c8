"""Whole `selectivity sweep` processes (stand-in trainer): two at once on one store, and Ctrl-C."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from selectivity.cli import main
from selectivity.sweep import SweepFolder
from selectivity.sweep.run_state import TIMING_FILE
from tests.test_sweep_driver import FAKE, write_spec

REPO = Path(__file__).resolve().parents[1]


def cli_sweep(spec: Path, store: Path, *extra: str, epoch_seconds: float = 0.0) -> subprocess.Popen:
    environment = {**os.environ, "FAKE_EPOCH_SECONDS": str(epoch_seconds)}
    return subprocess.Popen([sys.executable, "-m", "selectivity", "sweep", str(spec), "--store", str(store),
                             "--trainer", FAKE, "--no-progress", "--stale-after", "30", *extra],
                            cwd=REPO, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_sweep_processes_run_every_run_exactly_once(tmp_path):
    spec = write_spec(tmp_path, alphas="[-1, 0, 1]", seeds=2, epochs=2)
    processes = [cli_sweep(spec, tmp_path / "sweep", "--workers", "0", epoch_seconds=0.3) for _ in range(2)]
    outputs = [process.communicate(timeout=120) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    folder = SweepFolder(tmp_path / "sweep")
    starts = [event["run_id"] for event in folder.read_events() if event["event"] == "start"]
    assert len(starts) == 6 and len(set(starts)) == 6
    assert len({event["pid"] for event in folder.read_events()}) == 2  # both processes did work
    assert pd.read_parquet(folder.results_parquet)["run_id"].nunique() == 6


def test_ctrl_c_stops_workers_keeps_checkpoints_and_says_how_to_resume(tmp_path):
    spec = write_spec(tmp_path, alphas="[0]", seeds=1, epochs=20)
    process = cli_sweep(spec, tmp_path / "sweep", "--workers", "1", epoch_seconds=0.5)
    runs_dir = tmp_path / "sweep" / "runs"
    deadline = time.time() + 90
    while not list(runs_dir.glob("*/seed_0/checkpoint.pt")) and time.time() < deadline:
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130 and "Resume with: selectivity sweep" in stderr
    run_dir = next(runs_dir.glob("*/seed_0"))
    assert (run_dir / "checkpoint.pt").exists() and not (run_dir / "claim.json").exists()
    assert not (run_dir / "done.json").exists()
    assert main(["sweep", str(spec), "--store", str(tmp_path / "sweep"), "--workers", "0", "--trainer", FAKE,
                 "--no-progress"]) == 0
    history = json.loads((run_dir / TIMING_FILE).read_text())["attempts"]
    assert [a["resumed"] for a in history] == [False, True] and history[0]["outcome"] == "interrupted"
