"""Checkpoints: everything needed to continue a run as if it had never stopped."""
import errno
import os
import pickle
import shutil
from pathlib import Path

import torch

from selectivity import atomic
from selectivity.errors import SelectivityError
from selectivity.store import RunDirectory, is_damage


NEARLY_FULL_BYTES = 64 << 20  # a failed torch.save with less free than this was a full disk


class DamagedCheckpoint(Exception):
    """checkpoint.pt exists but cannot be read back (truncated, overwritten, not a checkpoint)."""


def save_checkpoint(path: Path, model, optimizer, generator: torch.Generator, epoch: int, step: int) -> None:
    """Atomically write the state after `epoch` finished epochs (a crash leaves the old file).

    Raises:
        OSError: the file could not be written (torch reports a full disk as a RuntimeError).
    """
    state = {
        "epoch": epoch,
        "step": step,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "generator": generator.get_state(),
    }
    with atomic.atomic_path(path) as tmp:
        try:
            torch.save(state, tmp)
        except RuntimeError as error:  # torch's stream writer wraps the write's OSError (and its errno)
            free = shutil.disk_usage(Path(path).parent).free
            if free < NEARLY_FULL_BYTES:  # the usual cause: say it, as an OSError the sweep knows
                raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} ({free} bytes free) while writing the "
                              "checkpoint", str(path)) from error
            raise OSError(f"could not write the checkpoint {path}: {error}") from error


def load_checkpoint(path: Path, model, optimizer, generator: torch.Generator) -> tuple[int, int] | None:
    """Restore a run; returns (epochs done, steps done), or None when there is no checkpoint.

    Raises:
        DamagedCheckpoint: the file exists but cannot be read back.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        return None
    except (RuntimeError, EOFError, pickle.UnpicklingError) as error:  # torch's ways of saying "not a checkpoint"
        raise DamagedCheckpoint(f"checkpoint.pt cannot be read ({type(error).__name__})") from error
    except Exception as error:
        if is_damage(error):
            raise DamagedCheckpoint(f"checkpoint.pt cannot be read ({type(error).__name__})") from error
        raise
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    generator.set_state(state["generator"])
    return state["epoch"], state["step"]


def resume_point(run: RunDirectory, model, optimizer, generator: torch.Generator) -> tuple[int, int]:
    """(epochs done, steps done) restored from the run's checkpoint, or (0, 0) to start over.

    A damaged checkpoint is moved aside with metrics.jsonl (whose records it alone could
    continue), so the restart never deletes what the earlier attempt produced.
    """
    try:
        return load_checkpoint(run.checkpoint_path, model, optimizer, generator) or (0, 0)
    except DamagedCheckpoint as damage:
        run.move_aside([run.checkpoint_path, run.metrics_path], f"{damage}; the run starts over")
        return 0, 0


def check_precision(run: RunDirectory, precision: str, epochs_done: int, allow_change: bool) -> None:
    """Refuse to continue a run in another precision than it started in, unless allowed; record it.

    train.precision = "auto" resolves per machine (bf16 or fp32) and is hashed as "auto", so a
    run moved to another machine could switch precision mid-run without anything saying so.

    Args:
        run: the run folder (config.json written).
        precision: what the precision setting resolves to here ("bf16" or "fp32").
        epochs_done: epochs in the loaded checkpoint (0: nothing trained yet, nothing to refuse).
        allow_change: train.allow_precision_change.
    """
    recorded = run.recorded_precision()
    if epochs_done > 0 and recorded is not None and recorded != precision and not allow_change:
        raise SelectivityError(
            f"{run.path} was trained in {recorded} for {epochs_done} epoch(s) but its precision setting resolves "
            f"to {precision} here; expected the same precision (set train.precision = \"{recorded}\", or "
            "--set train.allow_precision_change=true to continue in another precision)")
    if recorded is None or epochs_done == 0:
        run.record_precision(precision)
