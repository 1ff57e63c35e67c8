"""One training epoch over device-resident uint8 data: augment, normalise, step, on whole batches."""
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from selectivity.config import ExperimentConfig
from selectivity.data.base import DatasetSplits
from selectivity.data.batches import normalize_images
from selectivity.regularizer import SelectivityRegularizer
from selectivity.train.augment import EpochRandomness, crop_and_flip
from selectivity.train.schedule import learning_rate


class NonFiniteLoss(RuntimeError):
    pass


@dataclass
class EpochTotals:
    """Sums kept on the device during the epoch and read once at its end."""

    loss: torch.Tensor
    selectivity: torch.Tensor
    correct: torch.Tensor
    nonfinite: torch.Tensor
    batches: int = 0
    images: int = 0


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    regularizer: SelectivityRegularizer,
    data: DatasetSplits,
    train_images: torch.Tensor,
    train_labels: torch.Tensor,
    randomness: EpochRandomness,
    config: ExperimentConfig,
    first_step: int,
    use_bf16: bool,
    progress: bool,
    description: str,
) -> tuple[EpochTotals, int]:
    """Run one epoch; returns the device-side totals and the number of steps taken.

    The regularizer must already be attached to `model` (attach once per run, so a
    compiled model is traced once).

    Raises NonFiniteLoss as soon as a loss that is NaN or inf is seen (checked every step
    on the CPU, every 50 steps and at the end on a GPU, to avoid host syncs).
    """
    settings, device = config.train, train_images.device
    batch_size, num_images = settings.batch_size, train_images.shape[0]
    steps = (num_images + batch_size - 1) // batch_size
    augment = config.data.crop_padding > 0 or config.data.flip
    check_every = 1 if device.type == "cpu" else 50
    zero = lambda dtype=torch.float32: torch.zeros((), dtype=dtype, device=device)  # noqa: E731
    totals = EpochTotals(zero(), zero(), zero(torch.int64), zero(torch.bool))
    bar = tqdm(range(steps), desc=description, disable=not progress, unit="batch", leave=False)
    model.train()
    for index in bar:
        chosen = randomness.order[index * batch_size : (index + 1) * batch_size]  # [B]
        images = train_images[chosen]  # [B, C, H, W] uint8
        if augment:
            images = crop_and_flip(
                images, randomness.row_offsets[chosen], randomness.column_offsets[chosen],
                randomness.flips[chosen], config.data.crop_padding,
            )
        labels = train_labels[chosen]
        inputs = normalize_images(images, data.mean, data.std, settings.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            logits = model(inputs)
        loss = nn.functional.cross_entropy(logits.float(), labels, label_smoothing=settings.label_smoothing)
        objective = loss + regularizer.penalty(labels)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(settings, first_step + index, steps)
        optimizer.zero_grad(set_to_none=True)
        objective.backward()
        optimizer.step()
        totals.loss += loss.detach() * labels.shape[0]
        if regularizer.last_mean_si is not None:
            totals.selectivity += regularizer.last_mean_si
        totals.correct += (logits.detach().argmax(1) == labels).sum()
        totals.nonfinite |= ~torch.isfinite(objective.detach())
        totals.batches, totals.images = totals.batches + 1, totals.images + labels.shape[0]
        if (index + 1) % check_every == 0 or index + 1 == steps:
            if bool(totals.nonfinite):
                raise NonFiniteLoss(f"loss became {objective.item()} at step {first_step + index}")
            if progress:
                bar.set_postfix(loss=f"{totals.loss.item() / totals.images:.3f}",
                                acc=f"{totals.correct.item() / totals.images:.3f}")
    return totals, steps
