"""Streaming per-class statistics, so test-time SI never needs all activations in memory."""
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from selectivity.errors import SelectivityError
from selectivity.metrics.class_means import check_class_count
from selectivity.metrics.selectivity_index import preferred_class, selectivity_index


@dataclass(frozen=True)
class UnitStatistics:
    """Per-unit statistics over a whole dataset; layers are concatenated along units.

    Attributes:
        layer_names: the L layer names, in capture order.
        layer_sizes: units per layer (sums to U).
        counts: [K] inputs per class.
        means: [K, U] class-conditional means (float64).
        variances: [K, U] class-conditional variances (float64, population).
        max_activation: [U] largest activation seen; a unit with max <= 0 is dead.
    """

    layer_names: tuple[str, ...]
    layer_sizes: tuple[int, ...]
    counts: torch.Tensor
    means: torch.Tensor
    variances: torch.Tensor
    max_activation: torch.Tensor

    @property
    def dead(self) -> torch.Tensor:
        """[U] True for units never active on the data."""
        return self.max_activation <= 0

    def selectivity(self) -> torch.Tensor:
        """[U] SI of every unit (the one definition, metrics.selectivity_index)."""
        return selectivity_index(self.means, self.counts)

    def preferred_class(self) -> torch.Tensor:
        return preferred_class(self.means, self.counts)


class SelectivityAccumulator:
    """Consumes batches of unit activations and labels; gives the same SI as the whole data.

    Sums are kept in float64 on the activations' device. The batch path does no host
    syncs: bad labels, negative and non-finite activations are counted on the device and
    reported by `check()`, which runs after the first batch (fail fast) and in `result()`.
    """

    def __init__(self, num_classes: int, allow_negative: "set[str] | frozenset[str] | bool" = frozenset()):
        """`allow_negative`: layers (or True: every layer) whose negative responses are not refused:
        those with a signed choice (capture.layouts) and the raw responses d' is computed on."""
        check_class_count(num_classes)
        self.num_classes = num_classes
        self.allow_negative = allow_negative
        self.layer_names: tuple[str, ...] | None = None
        self.layer_sizes: tuple[int, ...] = ()
        self.num_batches = 0

    def _start(self, activations: dict[str, torch.Tensor], device: torch.device) -> None:
        self.layer_names = tuple(activations)
        self.layer_sizes = tuple(a.shape[1] for a in activations.values())
        units, classes = sum(self.layer_sizes), self.num_classes
        zeros = lambda *shape: torch.zeros(*shape, dtype=torch.float64, device=device)  # noqa: E731
        self.sums, self.sums_of_squares, self.counts = zeros(classes, units), zeros(classes, units), zeros(classes)
        self.max_activation = torch.full((units,), float("-inf"), dtype=torch.float64, device=device)
        self.min_activation = torch.full((units,), float("inf"), dtype=torch.float64, device=device)
        self.nonfinite = torch.zeros(units, dtype=torch.int64, device=device)
        self.bad_labels = torch.zeros((), dtype=torch.int64, device=device)
        self.label_range = torch.tensor([0, self.num_classes - 1], dtype=torch.int64, device=device)

    def update(self, activations: dict[str, torch.Tensor], labels: torch.Tensor) -> None:
        """Add one batch: `activations` maps layer name -> [B, U_l]; `labels` is [B]."""
        if not isinstance(activations, Mapping) or not isinstance(labels, torch.Tensor):
            raise SelectivityError(f"update({type(activations).__name__}, {type(labels).__name__}); expected a dict of "
                                   "layer name -> [B, U] tensor and a [B] label tensor")
        if not activations:
            raise SelectivityError("no unit activations were captured; expected at least one layer")
        for name, units in activations.items():
            if not isinstance(units, torch.Tensor) or units.dim() != 2:
                shape = tuple(units.shape) if isinstance(units, torch.Tensor) else type(units).__name__
                raise SelectivityError(f"layer {name} gave {shape}; expected a [B, U] tensor (inputs x units)")
        if self.layer_names is None:
            self._start(activations, labels.device)
        self._check_shapes(activations, labels)
        acts = torch.cat([a.detach() for a in activations.values()], 1).to(torch.float64)  # [B, U]
        valid = (labels >= 0) & (labels < self.num_classes)  # [B]
        self.bad_labels += (~valid).sum()
        self.label_range = torch.stack([self.label_range[0].minimum(labels.min()), self.label_range[1].maximum(labels.max())])
        one_hot = torch.nn.functional.one_hot(torch.where(valid, labels, 0), self.num_classes)
        one_hot = one_hot.to(torch.float64) * valid.unsqueeze(1)  # [B, K]; bad rows weigh 0
        finite = torch.isfinite(acts)
        self.nonfinite += (~finite).sum(0)
        self.sums += one_hot.T @ acts
        self.sums_of_squares += one_hot.T @ acts.square()
        self.counts += one_hot.sum(0)
        self.max_activation = torch.maximum(self.max_activation, acts.amax(0))
        self.min_activation = torch.minimum(self.min_activation, acts.amin(0))
        self.num_batches += 1
        if self.num_batches == 1:
            self.check()

    def _check_shapes(self, activations: dict[str, torch.Tensor], labels: torch.Tensor) -> None:
        sizes = tuple(a.shape[1] for a in activations.values())  # update() has checked each is [B, U]
        if tuple(activations) != self.layer_names or sizes != self.layer_sizes:
            got = dict(zip(activations, (tuple(a.shape) for a in activations.values())))
            raise SelectivityError(
                f"batch {self.num_batches}: layers {got} do not match the first batch's "
                f"{dict(zip(self.layer_names, self.layer_sizes))}; expected the same layers with [B, U] each"
            )
        for name, a in activations.items():
            if a.shape[0] != labels.shape[0] or labels.dim() != 1:
                raise SelectivityError(
                    f"layer {name} has {a.shape[0]} rows but labels have shape {tuple(labels.shape)}; "
                    "expected one label per input"
                )

    def check(self) -> None:
        """Raise a one-line error for bad labels, NaN/inf or negative activations seen so far."""
        if int(self.bad_labels) > 0:
            low, high = self.label_range.tolist()
            raise SelectivityError(
                f"{int(self.bad_labels)} labels are outside [0, {self.num_classes}) (seen range {low}..{high}); "
                f"expected class indices 0..{self.num_classes - 1}"
            )
        for name, nonfinite, minimum in zip(
            self.layer_names, self.nonfinite.split(self.layer_sizes), self.min_activation.split(self.layer_sizes)
        ):
            if int(nonfinite.sum()) > 0:
                raise SelectivityError(f"layer {name} produced {int(nonfinite.sum())} NaN/inf activations; expected finite values")
            allowed = self.allow_negative is True or name in self.allow_negative
            if not allowed and float(minimum.min()) < 0:
                raise SelectivityError(
                    f"layer {name} has negative activations (min {float(minimum.min()):.4g}); SI is defined only "
                    "for non-negative responses: select post-ReLU layers or choose signed = positive, min_shift "
                    "or abs (docs/definitions.md#signed-responses)"
                )

    def result(self) -> UnitStatistics:
        """The statistics of everything seen so far (checks first)."""
        if self.layer_names is None:
            raise SelectivityError("no batches were seen; expected at least one batch of activations")
        self.check()
        divisor = self.counts.clamp_min(1).unsqueeze(1)  # [K, 1]
        means = self.sums / divisor
        variances = (self.sums_of_squares / divisor - means.square()).clamp_min(0)
        return UnitStatistics(
            self.layer_names, self.layer_sizes, self.counts.clone(), means, variances, self.max_activation.clone()
        )
