"""Streamed test-time measurement: accuracy, loss and per-unit SI of a model on a labelled split.

Wires data -> model -> capture -> metrics. `evaluation_batches` is the one evaluation pass:
the trainer's evaluations and `selectivity measure` (via `measure_model`, which reduces
activations to class sums batch by batch, never keeping them) and the post-sweep analyses
(via `unit_activations`, which keeps the first N images' activations) all iterate it.
"""
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Callable

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from selectivity.capture import UnitCapture
from selectivity.data.base import LabelledImages
from selectivity.data.batches import normalize_images
from selectivity.errors import SelectivityError
from selectivity.metrics import network_mean_si
from selectivity.metrics.shuffles import ShuffleSettings, label_shuffles
from selectivity.metrics.unit_tables import UnitTables


@dataclass(frozen=True)
class Measurement:
    units: pd.DataFrame  # one row per unit: layer, unit, si, preferred_class, mu_max, mu_rest, d_prime, dead,
    #                      layout, reduction, signed
    layers: pd.DataFrame  # one row per layer: layer, num_units, mean_si, dead_units, dead_fraction, layout, ...
    accuracy: float
    loss: float
    mean_si: float  # mean over units in a layer, then over layers
    class_recall: tuple[float, ...] = ()  # per class: correct / inputs of that class (NaN where absent)

    @property
    def dead_fraction(self) -> float:
        return float(self.units["dead"].mean())


@torch.no_grad()  # on a generator torch applies it around each step, not across yields
def evaluation_batches(
    model: nn.Module,
    split: LabelledImages,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    layers: str | list[str] | tuple[str, ...] = "relu",
    batch_size: int = 1000,
    device: torch.device | str = "cpu",
    channels_last: bool = False,
    progress: bool = False,
    description: str = "measure",
    perturb: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    capture_options: dict | None = None,
    capture_ready: Callable[[UnitCapture], None] | None = None,
) -> Iterator[tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]]:
    """The one evaluation pass: `split` streamed through `model` in eval mode, no gradients.

    Every test-time consumer (the trainer's evaluations, `selectivity measure`, the
    post-sweep analyses) iterates this, so none can drift to the train split, train-mode
    BatchNorm or augmentation. The model's mode is restored when the iteration ends.

    Args:
        model: maps normalised [B, C, H, W] to [B, K] logits.
        split: uint8 images and labels (on the CPU or already on `device`), in order.
        mean: per-channel mean of the training data (the normalisation statistics, [0, 1] scale).
        std: per-channel std of the training data.
        layers: unit layers ("relu", "blocks", or module names).
        batch_size: inputs per forward pass.
        device: where the model runs.
        progress: show a progress bar.
        perturb: optional (images, labels) -> images applied to each batch before normalisation,
            on float [B, C, H, W] images in [0, 1] (a corruption or an attack; it may enable
            gradients itself). None: the uint8 images are normalised directly.
        capture_options: UnitCapture's layouts, tokens, signed, keep_raw (None: its defaults).
        capture_ready: called with the UnitCapture once it is installed (for its raw responses and settings).
    Yields:
        ({layer: [B, U] unit activations}, logits [B, K] float32, labels [B]) per batch.
    """
    was_training = model.training
    model.eval()
    starts = range(0, len(split), batch_size)
    try:
        with UnitCapture(model, layers, **(capture_options or {})) as capture:
            if capture_ready is not None:
                capture_ready(capture)
            for start in tqdm(starts, desc=description, disable=not progress, unit="batch", leave=False):
                images = split.images[start : start + batch_size].to(device, non_blocking=True)
                labels = split.labels[start : start + batch_size].to(device, non_blocking=True)
                if perturb is not None:  # on the [0, 1] scale; back to 0..255 for the one normalisation
                    images = perturb(images.float() / 255.0, labels) * 255.0
                logits = model(normalize_images(images, mean, std, channels_last)).float()  # [B, K]
                yield capture.activations, logits, labels
    finally:
        model.train(was_training)


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
    shuffles: ShuffleSettings | None = None,
    perturb: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    observe: Callable[[dict[str, torch.Tensor]], None] | None = None,
    layouts=None,
    tokens: str | None = None,
    signed=None,
) -> Measurement:
    """Accuracy, cross-entropy and per-unit selectivity of `model` on `split`, streamed.

    Args:
        model: any nn.Module mapping normalised [B, C, H, W] to [B, num_classes] logits;
            it is put in eval mode and restored afterwards.
        split: uint8 images and labels (on the CPU or already on `device`).
        num_classes: K.
        mean: per-channel mean of the training data (the normalisation statistics, [0, 1] scale).
        std: per-channel std of the training data.
        layers: unit layers ("relu", "blocks", or module names).
        batch_size: inputs per forward pass.
        device: where the model runs.
        progress: show a progress bar.
        shuffles: None for SI and d' only; else the units table also gets ROC-AUC, mutual
            information, lifetime sparseness and label-shuffle nulls (metrics.null_table),
            from the same pass, and the layers table the fractions of units above chance.
        perturb: as for `evaluation_batches`.
        observe: optional callback given each batch's {layer: [B, U]} unit activations
            (e.g. a covariance accumulator); called after the batch's forward pass.
        layouts, tokens, signed: each layer's declared layout, the token reduction and the
            signed choice (see UnitCapture); recorded in the tables' layout/reduction/signed columns.

    Returns:
        A Measurement with the per-unit and per-layer tables and the summaries.
    """
    signed_any = signed is not None and (not isinstance(signed, dict) or any(signed.values()))
    tables = UnitTables(num_classes, signed_any, shuffles)
    options = {"layouts": layouts, "tokens": tokens, "signed": signed, "keep_raw": signed_any}
    captures = []
    correct = torch.zeros((), dtype=torch.int64, device=device)
    correct_per_class = torch.zeros(num_classes, dtype=torch.int64, device=device)
    inputs_per_class = torch.zeros(num_classes, dtype=torch.int64, device=device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    labelings = label_shuffles(split.labels, num_classes, shuffles.shuffles, shuffles.seed).to(device) if shuffles else None
    start = 0  # evaluation_batches streams `split` in order
    batches = evaluation_batches(model, split, mean, std, layers, batch_size, device, channels_last, progress,
                                 description, perturb, options, captures.append)
    for activations, logits, labels in batches:
        # label_shuffles checked every label up front
        tables.update(captures[0], labels, labelings[:, start : start + len(labels)] if shuffles else None)
        if observe is not None:
            observe(activations)
        start += len(labels)
        hits = logits.argmax(1) == labels  # [B]
        correct += hits.sum()
        # index_add_ on clamped labels: no host sync; bad labels weigh 0 (the accumulator reports them)
        valid = (labels >= 0) & (labels < num_classes)
        index = labels.clamp(0, num_classes - 1)
        correct_per_class.index_add_(0, index, (hits & valid).long())
        inputs_per_class.index_add_(0, index, valid.long())
        loss_sum += nn.functional.cross_entropy(logits, labels, reduction="sum").double()
    units, layers = tables.tables()
    return Measurement(
        units=units,
        layers=layers,
        accuracy=int(correct) / len(split),
        loss=float(loss_sum) / len(split),
        mean_si=network_mean_si(units),
        class_recall=tuple((correct_per_class.double() / inputs_per_class.double()).tolist()),  # 0/0 = NaN
    )


def unit_activations(
    model: nn.Module,
    split: LabelledImages,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    num_images: int,
    layers: str | list[str] | tuple[str, ...] = "relu",
    batch_size: int = 1000,
    device: torch.device | str = "cpu",
) -> dict[str, torch.Tensor]:
    """Unit activations of the first `num_images` images of `split`, kept (for CCA-like analyses).

    Args:
        model: as for `evaluation_batches`.
        split: as for `evaluation_batches`.
        mean: as for `evaluation_batches`.
        std: as for `evaluation_batches`.
        layers: as for `evaluation_batches`.
        batch_size: as for `evaluation_batches`.
        device: as for `evaluation_batches`.
        num_images: how many images, from the start of `split` (at most len(split)).
    Returns:
        {layer: [num_images, U] CPU tensor in the model's activation dtype}, in capture order.
    """
    if not 0 < num_images <= len(split):
        raise SelectivityError(f"num_images must be in [1, {len(split)}] (the split's size); got {num_images}")
    first = LabelledImages(split.images[:num_images], split.labels[:num_images])
    collected: dict[str, list[torch.Tensor]] = {}
    for activations, _, _ in evaluation_batches(model, first, mean, std, layers, batch_size, device):
        for name, units in activations.items():
            collected.setdefault(name, []).append(units.cpu())
    return {name: torch.cat(parts) for name, parts in collected.items()}
