"""One training epoch: walk the epoch's batch plan, one TrainStep per batch, lr from the schedule."""
import torch
from tqdm.auto import tqdm

from selectivity.config import ExperimentConfig
from selectivity.train.schedule import learning_rate
from selectivity.train.step import EpochTotals, TrainStep


class NonFiniteLoss(RuntimeError):
    pass


def train_epoch(
    stepper: TrainStep, plan: torch.Tensor, config: ExperimentConfig, first_step: int, progress: bool,
    description: str,
) -> tuple[EpochTotals, int]:
    """Run one epoch over `plan` ([4, N], see step.epoch_plan); returns the device-side totals and the steps taken.

    The regularizer must already be attached to the model (attach once per run, so a
    compiled model is traced once and a CUDA graph captured once).

    Raises NonFiniteLoss as soon as a loss that is NaN or inf is seen (checked every step
    on the CPU, every 50 steps and at the end on a GPU, to avoid host syncs).
    """
    batch_size, num_images = config.train.batch_size, plan.shape[1]
    steps = (num_images + batch_size - 1) // batch_size
    check_every = 1 if stepper.device.type == "cpu" else 50
    stepper.start_epoch()
    totals = stepper.totals
    bar = tqdm(range(steps), desc=description, disable=not progress, unit="batch", leave=False)
    for index in bar:
        stepper(plan[:, index * batch_size : (index + 1) * batch_size],
                learning_rate(config.train, first_step + index, steps))
        if (index + 1) % check_every == 0 or index + 1 == steps:
            if stepper.saw_nonfinite():
                raise NonFiniteLoss(f"loss became {stepper.last_objective.item()} at step {first_step + index}")
            if progress:
                bar.set_postfix(loss=f"{totals.loss.item() / totals.images:.3f}",
                                acc=f"{totals.correct.item() / totals.images:.3f}")
    return totals, steps
