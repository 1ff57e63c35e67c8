"""Streaming class statistics under the true labels and S label shuffles at once (one data pass).

Every input's label under each shuffle is fixed before the pass (a permutation of the whole
split's label vector per shuffle), so each batch adds to all S + 1 labelings: per-class
sums and sums of squares [S+1, K, U] and per-unit class-conditional response histograms
[S+1, K, U, B]. Activations are never kept.

Bins (per unit, fixed after the first batch): bin 0 holds exact zeros (a ReLU's silent
responses); bins 1..B-1 split (0, top] evenly, top = the unit's largest activation in the
first batch. Later values above top fall into the last bin and are counted in `overflow`.
"""
from dataclasses import dataclass

import torch

from selectivity.errors import SelectivityError


@dataclass(frozen=True)
class ShuffleSettings:
    """How `measure` computes the single-unit metrics and their label-shuffle nulls.

    Attributes:
        shuffles: label shuffles S (0: metrics without nulls; else >= 2, a null needs a spread).
        bins: response bins per unit for mutual information and ROC-AUC (>= 3).
        seed: seeds the S permutations.
    """

    shuffles: int = 10
    bins: int = 20
    seed: int = 0

    def __post_init__(self):
        if self.shuffles < 0 or self.shuffles == 1:
            raise SelectivityError(f"shuffles = {self.shuffles}; expected 0 (no null) or at least 2")
        if self.bins < 3:
            raise SelectivityError(f"bins = {self.bins}; expected at least 3 (a zero bin and two above it)")


def label_shuffles(labels: torch.Tensor, num_classes: int, shuffles: int, seed: int) -> torch.Tensor:
    """[S+1, N] labelings: row 0 the true labels, rows 1..S permutations of them (fixed by seed).

    Labels are checked here, up front, since the accumulator indexes with them.
    """
    labels = labels.cpu()
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise SelectivityError(f"labels span {int(labels.min())}..{int(labels.max())}; "
                               f"expected class indices 0..{num_classes - 1}")
    generator = torch.Generator().manual_seed(seed)
    rows = [labels] + [labels[torch.randperm(len(labels), generator=generator)] for _ in range(shuffles)]
    return torch.stack(rows)


def response_bins(units: torch.Tensor, top: torch.Tensor, bins: int) -> torch.Tensor:
    """[B, U] bin index of each response: 0 for r <= 0, else min(B - 1, 1 + floor(r / width)).

    width = top / (B - 1), so bin j >= 1 holds [(j - 1) width, j width); a response at a bin
    centre ((j - 0.5) width) always lands in bin j.
    """
    width = top / (bins - 1)  # [U]
    index = (units / width).floor().to(torch.int64) + 1
    return torch.where(units > 0, index.clamp(1, bins - 1), torch.zeros_like(index))


@dataclass(frozen=True)
class ShuffledStatistics:
    """Per-unit statistics under S + 1 labelings (row 0 = true labels); units concatenated over layers."""

    layer_names: tuple[str, ...]
    layer_sizes: tuple[int, ...]
    counts: torch.Tensor  # [K] inputs per class (a permutation keeps them)
    means: torch.Tensor  # [S+1, K, U]
    variances: torch.Tensor  # [S+1, K, U] population
    histograms: torch.Tensor  # [S+1, K, U, B]
    top: torch.Tensor  # [U] upper bin edge
    overflow: torch.Tensor  # [U] responses above top (put in the last bin)


class ShuffledAccumulator:
    """Consumes [B, U] unit activations with [S+1, B] labelings; see the module docstring.

    Args:
        num_classes: K.
        bins: response bins per unit.
    """

    def __init__(self, num_classes: int, bins: int):
        self.num_classes, self.bins = num_classes, bins
        self.layer_names: tuple[str, ...] | None = None

    def _start(self, activations: dict[str, torch.Tensor], units: torch.Tensor, labelings: int) -> None:
        self.layer_names = tuple(activations)
        self.layer_sizes = tuple(a.shape[1] for a in activations.values())
        shape, options = (labelings, self.num_classes, units.shape[1]), {"dtype": torch.float64, "device": units.device}
        self.sums, self.squares = torch.zeros(shape, **options), torch.zeros(shape, **options)
        self.histograms = torch.zeros(*shape, self.bins, dtype=torch.int64, device=units.device)
        top = units.amax(0)
        self.top = torch.where(top > 0, top, torch.ones_like(top))  # silent so far: any positive edge
        self.overflow = torch.zeros(units.shape[1], dtype=torch.int64, device=units.device)
        self.counts = torch.zeros(self.num_classes, dtype=torch.int64, device=units.device)

    def update(self, activations: dict[str, torch.Tensor], labelings: torch.Tensor) -> None:
        """Add one batch: `activations` maps layer -> [B, U_l]; `labelings` is [S+1, B] (checked valid)."""
        units = torch.cat([a.detach() for a in activations.values()], 1).to(torch.float64)  # [B, U]
        if self.layer_names is None:
            self._start(activations, units, labelings.shape[0])
        if labelings.shape != (self.sums.shape[0], units.shape[0]):
            raise SelectivityError(f"labelings of shape {tuple(labelings.shape)} for a batch of {units.shape[0]}; "
                                   f"expected [{self.sums.shape[0]}, {units.shape[0]}]")
        one_hot = torch.nn.functional.one_hot(labelings, self.num_classes).to(torch.float64)  # [S+1, B, K]
        self.counts += one_hot[0].sum(0).to(torch.int64)
        self.sums += torch.einsum("sbk,bu->sku", one_hot, units)
        self.squares += torch.einsum("sbk,bu->sku", one_hot, units.square())
        bins = response_bins(units, self.top, self.bins)  # [B, U]
        self.overflow += (units > self.top).sum(0)
        num_units = units.shape[1]
        cell = torch.arange(num_units, device=units.device) * self.bins + bins  # [B, U] (unit, bin) cell
        for row, labels in enumerate(labelings):  # one bincount per labeling bounds the memory to [B, U]
            index = labels.unsqueeze(1) * (num_units * self.bins) + cell  # [B, U] (class, unit, bin) cell
            counts = torch.bincount(index.flatten(), minlength=self.num_classes * num_units * self.bins)
            self.histograms[row] += counts.view(self.num_classes, num_units, self.bins)

    def result(self) -> ShuffledStatistics:
        if self.layer_names is None:
            raise SelectivityError("no batches were seen; expected at least one batch of activations")
        counts = self.counts.clone()
        divisor = counts.clamp_min(1).to(torch.float64).view(1, -1, 1)
        means = self.sums / divisor
        variances = (self.squares / divisor - means.square()).clamp_min(0)
        return ShuffledStatistics(self.layer_names, self.layer_sizes, counts, means, variances,
                                  self.histograms.clone(), self.top.clone(), self.overflow.clone())
