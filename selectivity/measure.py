"""Streamed test-time measurement: accuracy, loss and per-unit SI of a model on a labelled split.

Wires data -> model -> capture -> metrics. `evaluation_steps` is the one evaluation pass,
over an in-memory split or a tree streamed from disk alike: the trainer's evaluations and
`selectivity measure` (via `measure_model`, which reduces activations to class sums batch
by batch and, for the shuffled metrics, spills them to disk by input index) and the
post-sweep analyses (via `unit_activations`, which keeps the first N images' activations)
all iterate it.
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
from selectivity.data.streamed import StreamedImages
from selectivity.errors import SelectivityError
from selectivity.metrics import network_mean_si
from selectivity.metrics.shuffles import ShuffleSettings
from selectivity.metrics.unit_tables import UnitTables

Split = LabelledImages | StreamedImages  # in memory (the small datasets' fast path) or read from disk per batch


def split_batches(split: Split, batch_size: int, device, workers: int = 0) -> Iterator[tuple[torch.Tensor, ...]]:
    """(uint8 images, labels, indices in the split) per batch, on `device`, in the split's order."""
    if isinstance(split, StreamedImages):
        for images, labels, index in split.batches(batch_size, workers):
            yield images.to(device, non_blocking=True), labels.to(device, non_blocking=True), index
        return
    for start in range(0, len(split), batch_size):
        stop = min(start + batch_size, len(split))
        yield (split.images[start:stop].to(device, non_blocking=True),
               split.labels[start:stop].to(device, non_blocking=True), torch.arange(start, stop))


@dataclass(frozen=True)
class Measurement:
    units: pd.DataFrame  # one row per unit: layer, unit, si, preferred_class, mu_max, mu_rest, d_prime, dead,
    #                      layout, reduction, signed
    layers: pd.DataFrame  # one row per layer: layer, num_units, mean_si, dead_units, dead_fraction, layout, ...
    accuracy: float
    loss: float
    mean_si: float  # mean over units in a layer, then over layers
    class_recall: tuple[float, ...] = ()  # per class: correct / inputs of that class (NaN where absent)
    num_inputs: int = 0  # inputs measured (a streamed tree's unreadable files left out)

    @property
    def dead_fraction(self) -> float:
        return float(self.units["dead"].mean())


@torch.no_grad()  # on a generator torch applies it around each step, not across yields
def evaluation_steps(
    model: nn.Module,
    split: Split,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    layers: str | list[str] | tuple[str, ...] = "relu",
    batch_size: int = 1000,
    device: torch.device | str = "cpu",
    channels_last: bool = False,
    progress: bool = False,
    description: str = "measure",
    perturb: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    workers: int = 0,
    capture_options: dict | None = None,
    capture_ready: Callable[[UnitCapture], None] | None = None,
) -> Iterator[tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor]]:
    """The one evaluation pass: `split` streamed through `model` in eval mode, no gradients.

    Every test-time consumer (the trainer's evaluations, `selectivity measure`, the
    post-sweep analyses) iterates this, so none can drift to the train split, train-mode
    BatchNorm or augmentation. The model's mode is restored when the iteration ends.

    Args:
        model: maps normalised [B, C, H, W] to [B, K] logits.
        split: uint8 images and labels in memory (on the CPU or already on `device`), or a
            StreamedImages tree decoded per batch (unreadable files left out and recorded).
        mean: per-channel normalisation mean of the training data.
        std: per-channel normalisation standard deviation of the training data.
        layers: unit layers ("relu", "blocks", or module names).
        batch_size: inputs per forward pass.
        device: where the model runs.
        progress: show a progress bar counting images (images/s and the time left).
        perturb: optional (images, labels) -> images applied to each batch before normalisation,
            on float [B, C, H, W] images in [0, 1] (a corruption or an attack; it may enable
            gradients itself). None: the uint8 images are normalised directly.
        workers: decoding processes of a StreamedImages split (0: in this process).
        capture_options: UnitCapture's layouts, tokens, signed, keep_raw (None: its defaults).
        capture_ready: called with the UnitCapture once it is installed (for its raw responses and settings).
    Yields:
        ({layer: [B, U] unit activations}, logits [B, K] float32, labels [B], indices [B] of the
        inputs in the split) per batch.
    """
    was_training = model.training
    model.eval()
    try:
        with UnitCapture(model, layers, **(capture_options or {})) as capture, \
                tqdm(total=len(split), desc=description, disable=not progress, unit="img", leave=False,
                     smoothing=0.05) as bar:
            if capture_ready is not None:
                capture_ready(capture)
            for images, labels, index in split_batches(split, batch_size, device, workers):
                if perturb is not None:  # on the [0, 1] scale; back to 0..255 for the one normalisation
                    images = perturb(images.float() / 255.0, labels) * 255.0
                logits = model(normalize_images(images, mean, std, channels_last)).float()  # [B, K]
                yield capture.activations, logits, labels, index
                bar.update(len(labels))
    finally:
        model.train(was_training)


def evaluation_batches(model: nn.Module, split: Split, mean: tuple[float, ...], std: tuple[float, ...],
                       layers: str | list[str] | tuple[str, ...] = "relu", batch_size: int = 1000,
                       device: torch.device | str = "cpu", channels_last: bool = False, progress: bool = False,
                       description: str = "measure",
                       perturb: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                       ) -> Iterator[tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]]:
    """`evaluation_steps` without the indices: ({layer: [B, U]}, logits [B, K], labels [B]) per batch."""
    for activations, logits, labels, _ in evaluation_steps(model, split, mean, std, layers, batch_size, device,
                                                           channels_last, progress, description, perturb):
        yield activations, logits, labels


@torch.no_grad()
def measure_model(
    model: nn.Module,
    split: Split,
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
    workers: int = 0,
    spill_dir: str | None = None,
    layouts=None,
    tokens: str | None = None,
    signed=None,
) -> Measurement:
    """Accuracy, cross-entropy and per-unit selectivity of `model` on `split`, streamed.

    Args:
        model: any nn.Module mapping normalised [B, C, H, W] to [B, num_classes] logits;
            it is put in eval mode and restored afterwards.
        split: uint8 images and labels (on the CPU or already on `device`), or a StreamedImages
            tree (its unreadable files are left out with a warning that names them).
        num_classes: K.
        mean: per-channel normalisation mean of the training data.
        std: per-channel normalisation standard deviation of the training data.
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
        workers: decoding processes of a StreamedImages split.
        spill_dir: where the shuffled metrics spill responses (metrics.shuffles; default: temp).
        layouts: each layer's declared layout (see UnitCapture); recorded in the tables' layout column.
        tokens: the token reduction of token layers; recorded in the reduction column.
        signed: the signed choice (see UnitCapture); recorded in the signed column.

    Returns:
        A Measurement with the per-unit and per-layer tables and the summaries.
    """
    signed_any = signed is not None and (not isinstance(signed, dict) or any(signed.values()))
    options = {"layouts": layouts, "tokens": tokens, "signed": signed, "keep_raw": signed_any}
    captures = []
    correct = torch.zeros((), dtype=torch.int64, device=device)
    correct_per_class = torch.zeros(num_classes, dtype=torch.int64, device=device)
    inputs_per_class = torch.zeros(num_classes, dtype=torch.int64, device=device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    tables = UnitTables(num_classes, signed_any, shuffles, split.labels if shuffles else None, spill_dir)
    measured = 0
    try:
        for activations, logits, labels, index in evaluation_steps(model, split, mean, std, layers, batch_size, device,
                                                                   channels_last, progress, description, perturb,
                                                                   workers, options, captures.append):
            tables.update(captures[0], labels, index)  # shuffled rows by input index: order- and batch-free
            if observe is not None:
                observe(activations)
            measured += len(labels)
            hits = logits.argmax(1) == labels  # [B]
            correct += hits.sum()
            # index_add_ on clamped labels: no host sync; bad labels weigh 0 (the accumulator reports them)
            valid = (labels >= 0) & (labels < num_classes)
            clamped = labels.clamp(0, num_classes - 1)
            correct_per_class.index_add_(0, clamped, (hits & valid).long())
            inputs_per_class.index_add_(0, clamped, valid.long())
            loss_sum += nn.functional.cross_entropy(logits, labels, reduction="sum").double()
        if isinstance(split, StreamedImages):
            split.report_unreadable()  # all unreadable: one line; a few: a warning naming them
    except BaseException:
        tables.close()  # the spill file goes, also on Ctrl-C
        raise
    units, layers = tables.tables()
    return Measurement(
        units=units,
        layers=layers,
        accuracy=int(correct) / measured,
        loss=float(loss_sum) / measured,
        mean_si=network_mean_si(units),
        class_recall=tuple((correct_per_class.double() / inputs_per_class.double()).tolist()),  # 0/0 = NaN
        num_inputs=measured,
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
