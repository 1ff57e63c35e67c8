"""A stand-in for selectivity.train.train_run with the same contract, for fast sweep tests.

It writes what the real trainer writes (config.json, metrics.jsonl, a checkpoint per epoch,
units.parquet, done.json), resumes from its checkpoint, calls heartbeat() after each checkpoint, and
fails like the trainer on a NaN loss. Its numbers are a pure function of (alpha, seed,
epoch), so an interrupted-and-resumed run gives the same table as an uninterrupted one.

Knobs (environment variables, inherited by spawned workers):
    FAKE_EPOCH_SECONDS   sleep per epoch (default 0)
    FAKE_KILL_ONCE_DIR   a folder: the first run to reach epoch 1 SIGKILLs its own process,
                         leaving a marker file there so it happens only once
    FAKE_FAIL_ONCE_DIR   a folder: fail_once_train_run raises on a run's first call (a marker
                         file per run there) and trains it on the next
alpha = 999 in any epoch makes the loss NaN.
"""
import json
import os
import random
import signal
import time
from pathlib import Path

import pandas as pd

from selectivity import atomic
from selectivity.alpha_schedule import alpha_at_epoch
from selectivity.store import RunDirectory

# Call order, which sorted JSON keys would scramble: "relu" (a stem) < "features.12" < "features.2" lexically.
LAYERS = ("relu", "features.2", "features.12")
UNITS_PER_LAYER = 3


class FakeRunFailed(RuntimeError):
    def __init__(self, reason: str, epoch: int):
        super().__init__(reason)
        self.reason, self.epoch = reason, epoch


def _record(config, epoch: int) -> dict:
    alpha = alpha_at_epoch(config.regularizer.alpha, epoch)
    rng = random.Random(f"{alpha}/{config.seed}/{epoch}")
    layers = {name: {"layer_index": index, "mean_si": rng.random(), "dead_fraction": rng.random() / 4,
                     "num_units": UNITS_PER_LAYER} for index, name in enumerate(LAYERS)}
    return {"epoch": epoch, "alpha": alpha, "lr": 0.1, "train_loss": rng.random(), "train_batch_si": rng.random(),
            "test_accuracy": rng.random(), "test_loss": rng.random(), "mean_si": rng.random(),
            "dead_fraction": rng.random(), "seconds": 0.0, "layers": layers}


def _units(config) -> pd.DataFrame:
    rng = random.Random(f"units/{config.regularizer.alpha}/{config.seed}")
    rows = [{"layer": layer, "unit": unit, "si": rng.random(), "preferred_class": rng.randrange(10),
             "mu_max": rng.random(), "mu_rest": rng.random(), "d_prime": rng.random(), "dead": rng.random() < 0.2}
            for layer in reversed(LAYERS) for unit in range(UNITS_PER_LAYER)]  # reversed: order comes from metrics
    return pd.DataFrame(rows)


def _maybe_kill_self(epoch: int) -> None:
    marker_dir = os.environ.get("FAKE_KILL_ONCE_DIR")
    if not marker_dir or epoch != 1:
        return
    try:
        os.close(os.open(Path(marker_dir) / "killed", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return
    os.kill(os.getpid(), signal.SIGKILL)


def train_run(config, run_dir, progress: bool = True, heartbeat=None) -> dict:
    directory = RunDirectory(run_dir)
    if directory.is_done():
        return directory.summary()
    directory.claim_settings(config)
    start, records = 0, []
    if directory.checkpoint_path.exists():
        start = json.loads(directory.checkpoint_path.read_text())["epoch"] + 1
        records = directory.read_metrics(strict=False)[:start]
    for epoch in range(start, config.train.epochs):
        time.sleep(float(os.environ.get("FAKE_EPOCH_SECONDS", "0")))
        if alpha_at_epoch(config.regularizer.alpha, epoch) == 999:
            directory.mark_failed("loss is nan", epoch)
            raise FakeRunFailed("loss is nan", epoch)
        records.append(_record(config, epoch))
        directory.write_metrics(records)
        atomic.write_json(directory.checkpoint_path, {"epoch": epoch})
        if heartbeat is not None:
            heartbeat(epoch + 1)
        _maybe_kill_self(epoch)
    directory.write_units(_units(config))
    directory.mark_done(records[-1])
    return records[-1]


def crash_train_run(config, run_dir, progress: bool = True, heartbeat=None) -> dict:
    """A trainer whose every call dies with an exception that is not a RunFailed."""
    raise OSError("disk full (simulated)")


def disk_full_train_run(config, run_dir, progress: bool = True, heartbeat=None) -> dict:
    """train_run on a disk that has just filled up: from now on, in this process, creating or writing
    a file in the sweep folder fails with ENOSPC (opening existing files, as locks do, still works)."""
    import builtins
    import errno
    import io

    sweep_folder = str(Path(run_dir).resolve().parents[2])
    real_os_open, real_open = os.open, builtins.open

    def refuse(path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    def os_open(path, flags, *args, **kwargs):
        if str(path).startswith(sweep_folder) and flags & os.O_CREAT and not os.path.exists(path):
            refuse(path)
        return real_os_open(path, flags, *args, **kwargs)

    def open_(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and str(file).startswith(sweep_folder) and set(mode) & set("wax+"):
            refuse(file)
        return real_open(file, mode, *args, **kwargs)

    os.open, builtins.open, io.open = os_open, open_, open_
    return train_run(config, run_dir, progress, heartbeat)


def fail_once_train_run(config, run_dir, progress: bool = True, heartbeat=None) -> dict:
    """A trainer whose first call for a run raises (as a bug fixed before a retry would), then trains."""
    marker = Path(os.environ["FAKE_FAIL_ONCE_DIR"]) / f"failed-{Path(run_dir).parent.name}-{Path(run_dir).name}"
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return train_run(config, run_dir, progress, heartbeat)
    raise RuntimeError("simulated failure on the first attempt")
