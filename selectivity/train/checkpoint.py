"""Checkpoints: everything needed to continue a run as if it had never stopped."""
from pathlib import Path

import torch

from selectivity import atomic


def save_checkpoint(path: Path, model, optimizer, generator: torch.Generator, epoch: int, step: int) -> None:
    """Atomically write the state after `epoch` finished epochs (a crash leaves the old file)."""
    state = {
        "epoch": epoch,
        "step": step,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "generator": generator.get_state(),
    }
    with atomic.atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path, model, optimizer, generator: torch.Generator) -> tuple[int, int] | None:
    """Restore a run; returns (epochs done, steps done), or None when there is no usable checkpoint."""
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a checkpoint that cannot be read is no checkpoint: start over
        return None
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    generator.set_state(state["generator"])
    return state["epoch"], state["step"]
