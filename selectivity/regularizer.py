"""The selectivity regularizer: loss = cross_entropy - alpha * mu_SI(mini-batch).

Definition: docs/definitions.md#the-regularizer (Leavitt & Morcos, ICLR 2021).
"""
import math
import numbers
from contextlib import nullcontext

import torch
from torch import nn

from selectivity.capture import UnitCapture
from selectivity.capture.units import reduce_to_units
from selectivity.errors import SelectivityError
from selectivity.metrics import batch_network_selectivity
from selectivity.metrics.class_means import check_class_count
from selectivity.metrics.selectivity_index import EPS


def _check_alpha(alpha) -> None:
    """A finite number, or a 0-dim floating tensor (read once here, so later steps stay sync-free)."""
    if isinstance(alpha, torch.Tensor):
        if alpha.dim() != 0 or not alpha.dtype.is_floating_point or not bool(torch.isfinite(alpha)):
            raise SelectivityError(f"alpha tensor of shape {tuple(alpha.shape)}, dtype {alpha.dtype} is invalid; "
                                   "expected a finite 0-dim floating tensor")
    elif isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not math.isfinite(alpha):
        raise SelectivityError(f"alpha = {alpha!r} is invalid; expected a finite number or a 0-dim tensor")

SIGNED_CHOICES = (None, "positive")


class SelectivityRegularizer:
    """Gives -alpha * mu_SI on each mini-batch of a model it is attached to.

    Usage:
        regularizer = SelectivityRegularizer(alpha=-1.0, num_classes=10)
        with regularizer.attach(model):
            logits = model(images)
            loss = cross_entropy(logits, labels) + regularizer.penalty(labels)

    alpha < 0 pushes selectivity down, alpha > 0 up. With alpha == 0 (a Python number) no
    activation keeps a graph and the penalty is an exact 0, so training is plain training.
    `alpha` may also be a 0-dim tensor, so a compiled or graph-captured step can change it
    without recompiling.

    Logging every k-th step: a trainer that calls `start_step(index)` before each step's
    forward pass gets mu_SI measured at alpha == 0 only on steps with index % track_every == 0;
    on the others the capture records nothing, no SI is computed and `last_mean_si` is None.
    An active regularizer measures every step (the penalty needs it), whatever track_every.

    Args:
        alpha: the knob (number or 0-dim tensor).
        num_classes: K.
        layers: unit layers, as for UnitCapture ("relu", "blocks" or module names).
        eps: the SI denominator's epsilon.
        track_selectivity: also measure mu_SI (detached) when alpha == 0, for logging.
        track_every: when alpha == 0, measure on every k-th step only (see start_step); 1 = every step.
        signed: None: the layers must be non-negative (post-ReLU), as the paper's; "positive": each
            layer's response is the spatial mean of max(x, 0), so signed layers (GELU, SiLU, ...) work.
    """

    def __init__(
        self,
        alpha: float | torch.Tensor,
        num_classes: int,
        layers: str | list[str] = "relu",
        eps: float = EPS,
        track_selectivity: bool = True,
        track_every: int = 1,
        signed: str | None = None,
    ):
        if not (isinstance(track_every, int) and not isinstance(track_every, bool) and track_every >= 1):
            raise SelectivityError(f"track_every = {track_every!r} is invalid; expected an integer >= 1")
        if signed not in SIGNED_CHOICES:
            raise SelectivityError(f"signed = {signed!r} is invalid; expected None or 'positive' (the positive part, "
                                   "differentiable almost everywhere)")
        _check_alpha(alpha)
        check_class_count(num_classes)
        if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not math.isfinite(eps) or eps < 0:
            raise SelectivityError(f"eps = {eps!r} is invalid; expected a finite number >= 0")
        self.alpha = alpha
        self.num_classes = num_classes
        self.layers = layers
        self.eps = eps
        self.track_selectivity = track_selectivity
        self.track_every = track_every
        self.signed = signed
        self.last_mean_si: torch.Tensor | None = None  # detached mu_SI of the last batch
        self._capture: UnitCapture | None = None
        self._checked = False

    @property
    def active(self) -> bool:
        """False only for a Python-number alpha of exactly 0: then nothing is added."""
        return isinstance(self.alpha, torch.Tensor) or self.alpha != 0

    @property
    def measure_every(self) -> int:
        """Steps from one measured step to the next: 1 while the penalty needs every step, else track_every."""
        return 1 if self.active else self.track_every

    def start_step(self, step_index: int) -> bool:
        """Announce the next step (its index in the epoch); returns whether it will measure mu_SI.

        Call it before the step's forward pass. A step that does not measure leaves the
        capture's hooks idle, so it stores no activation and penalty() computes no SI.
        """
        if self._capture is None:
            return False
        self._capture.enabled = step_index % self.measure_every == 0
        return self._capture.enabled

    def attach(self, model: nn.Module):
        """Context manager that captures the unit activations the penalty needs."""
        if not self.active and not self.track_selectivity:
            self._capture = None
            return nullcontext()
        # "positive": each layer's output is rectified before it is pooled into units (max(x, 0) is
        # differentiable almost everywhere, so the penalty's gradient reaches the layer where it is > 0);
        # token maps are pooled by the layout the model states (UnitCapture), never over channels.
        self._capture = UnitCapture(model, self.layers, detach=not self.active, signed=self.signed)
        return self._capture

    def penalty(self, labels: torch.Tensor) -> torch.Tensor:
        """-alpha * mu_SI for the batch just run (a scalar tensor; exact 0 when inactive)."""
        if self._capture is None and self.active:  # a forgotten attach() would train without the penalty
            raise SelectivityError("penalty() of an active regularizer before attach(); expected a forward pass "
                                   "inside `with regularizer.attach(model):` first")
        if self._capture is None or not self._capture.enabled:  # not tracking, or a step start_step skips
            self.last_mean_si = None
            return torch.zeros((), device=labels.device)
        activations = list(self._capture.activations.values())
        if not activations:
            raise SelectivityError("the regularizer saw no unit activations; call penalty() after a forward pass inside attach()")
        if labels.dim() != 1 or any(units.shape[0] != labels.shape[0] for units in activations):
            raise SelectivityError(f"labels {tuple(labels.shape)} do not match the batch of "
                                   f"{activations[0].shape[0]} inputs the model just ran; expected labels [B]")
        if not self._checked:
            self._check_once(activations)
        mean_si = batch_network_selectivity(activations, labels, self.num_classes, self.eps)
        self.last_mean_si = mean_si.detach()
        if not self.active:
            return torch.zeros((), device=labels.device)
        return -self.alpha * mean_si

    def layer_selectivity(self, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """Detached mu_SI of each captured layer for the batch just run, for logging.

        Empty when nothing was captured on this step (not attached, or a step start_step skips).
        Each value is `batch_network_selectivity` of that layer alone, so their mean is the
        mu_SI the penalty uses.
        """
        if self._capture is None or not self._capture.enabled:
            return {}
        return {name: batch_network_selectivity([units.detach()], labels, self.num_classes, self.eps)
                for name, units in self._capture.activations.items()}

    def _check_once(self, activations: list[torch.Tensor]) -> None:
        """SI is undefined on negative activations: refuse them (one host sync, first batch only)."""
        names = list(self._capture.activations)
        for name, units in zip(names, activations):
            if float(units.detach().min()) < 0:
                raise SelectivityError(
                    f"layer {name} has negative activations; the selectivity regularizer needs non-negative "
                    "(post-ReLU) unit layers"
                )
        self._checked = True
