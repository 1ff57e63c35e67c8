"""Learning rate as a pure function of the step, so a resumed run needs no scheduler state."""
import math

from selectivity.config import TrainSettings


def learning_rate(settings: TrainSettings, step: int, steps_per_epoch: int) -> float:
    """lr at a 0-based optimisation step.

    step: lr * gamma ** (milestones passed); cosine: half-cosine from lr to 0;
    onecycle: linear rise from 0 to lr over warmup_epochs, then linear fall to 0;
    constant: lr. A warmup (linear from 0) applies to every schedule.
    """
    epoch = step / steps_per_epoch  # fractional epochs done
    total = settings.epochs
    warmup = settings.warmup_epochs
    if settings.schedule == "onecycle":
        if epoch < warmup:
            return settings.lr * epoch / warmup
        return settings.lr * max(0.0, (total - epoch) / max(total - warmup, 1e-12))
    if settings.schedule == "step":
        value = settings.lr * settings.gamma ** sum(epoch >= m for m in settings.milestones)
    elif settings.schedule == "cosine":
        value = settings.lr * 0.5 * (1 + math.cos(math.pi * min(epoch / total, 1.0)))
    else:
        value = settings.lr
    return value * min(1.0, epoch / warmup) if warmup > 0 else value
