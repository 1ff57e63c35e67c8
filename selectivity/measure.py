"""Streamed test-time measurement: accuracy, loss and per-unit SI of a model on a labelled split.

Wires data -> model -> capture -> metrics; used by the trainer's evaluations and by
`selectivity measure`. Activations are reduced to class sums batch by batch, never kept.
"""
from dataclasses import dataclass
from typing import Callable

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from selectivity.capture import UnitCapture
from selectivity.data.base import LabelledImages
from selectivity.data.batches import normalize_images
from selectivity.metrics import SelectivityAccumulator, layer_summary, network_mean_si, unit_table


@dataclass(frozen=True)
class Measurement:
    units: pd.DataFrame  # one row per unit: layer, unit, si, preferred_class, mu_max, mu_rest, d_prime, dead
    layers: pd.DataFrame  # one row per layer: layer, num_units, mean_si, dead_units, dead_fraction
    accuracy: float
    loss: float
    mean_si: float  # mean over units in a layer, then over layers

    @property
    def dead_fraction(self) -> float:
        return float(self.units["dead"].mean())


@torch.no_grad()
def measure_model(
    model: nn.Module,
    split: LabelledImages,
    num_classes: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    layers: str | list[str] | tuple[str, ...] = "relu",
    batch_size: int = 1000,
    device: torch.device | str = "cpu",
    channels_last: bool = False,
    progress: bool = False,
    description: str = "measure",
    perturb: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    observe: Callable[[dict[str, torch.Tensor]], None] | None = None,
) -> Measurement:
    """Accuracy, cross-entropy and per-unit selectivity of `model` on `split`, streamed.

    Args:
        model: any nn.Module mapping normalised [B, C, H, W] to [B, num_classes] logits;
            it is put in eval mode and restored afterwards.
        split: uint8 images and labels (on the CPU or already on `device`).
        num_classes: K.
        mean, std: normalisation statistics of the training data.
        layers: unit layers ("relu", "blocks", or module names).
        batch_size: inputs per forward pass.
        device: where the model runs.
        progress: show a progress bar.
        perturb: optional (images, labels) -> images applied to each batch before normalisation,
            on float [B, C, H, W] images in [0, 1] (a corruption or an attack; it may enable
            gradients itself). None: the uint8 images are normalised directly.
        observe: optional callback given each batch's {layer: [B, U]} unit activations
            (e.g. a covariance accumulator); called after the batch's forward pass.

    Returns:
        A Measurement with the per-unit and per-layer tables and the summaries.
    """
    was_training = model.training
    model.eval()
    accumulator = SelectivityAccumulator(num_classes)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    starts = range(0, len(split), batch_size)
    try:
        with UnitCapture(model, layers) as capture:
            for start in tqdm(starts, desc=description, disable=not progress, unit="batch", leave=False):
                images = split.images[start : start + batch_size].to(device, non_blocking=True)
                labels = split.labels[start : start + batch_size].to(device, non_blocking=True)
                if perturb is not None:  # on the [0, 1] scale; back to 0..255 for the one normalisation
                    images = perturb(images.float() / 255.0, labels) * 255.0
                logits = model(normalize_images(images, mean, std, channels_last)).float()  # [B, K]
                accumulator.update(capture.activations, labels)
                if observe is not None:
                    observe(capture.activations)
                correct += (logits.argmax(1) == labels).sum()
                loss_sum += nn.functional.cross_entropy(logits, labels, reduction="sum").double()
    finally:
        model.train(was_training)
    units = unit_table(accumulator.result())
    return Measurement(
        units=units,
        layers=layer_summary(units),
        accuracy=int(correct) / len(split),
        loss=float(loss_sum) / len(split),
        mean_si=network_mean_si(units),
    )
