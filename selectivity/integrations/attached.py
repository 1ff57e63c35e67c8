"""A regularizer attached to a model for a whole training run, shared by the framework adapters.

The frameworks own the loop, so the capture hooks are installed when training starts and
removed when it ends (not per step as in `with regularizer.attach(model):`).
"""
import torch
from torch import nn

from selectivity.errors import SelectivityError
from selectivity.metrics.selectivity_index import EPS
from selectivity.regularizer import SelectivityRegularizer

PREFIX = "selectivity"


class AttachedRegularizer:
    """-alpha * mu_SI of the last forward pass of a model whose hooks stay installed.

    Args:
        alpha: the knob; 0 (a Python number) makes training exactly plain training.
        num_classes: K.
        layers: unit layers of the attached model ("relu", "blocks" or module names).
        eps: the SI denominator's epsilon.
    """

    def __init__(self, alpha: float, num_classes: int, layers: str | list[str] = "relu", eps: float = EPS):
        self.regularizer = SelectivityRegularizer(alpha, num_classes, layers, eps, track_selectivity=True)
        self._context = None

    @property
    def attached(self) -> bool:
        return self._context is not None

    def attach(self, model: nn.Module) -> None:
        if self._context is not None:
            self.detach()
        context = self.regularizer.attach(model)
        context.__enter__()
        self._context = context

    def detach(self) -> None:
        if self._context is not None:
            self._context.__exit__(None, None, None)
            self._context = None

    def term(self, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """The penalty for the batch just run, and what to log: mu_SI, the penalty, SI of each layer."""
        if not self.attached:
            raise SelectivityError("the selectivity regularizer is not attached to a model; expected training to "
                                   "have started (the callback attaches it when fit begins)")
        if not isinstance(labels, torch.Tensor) or labels.dim() != 1 or labels.dtype.is_floating_point:
            shape = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
            raise SelectivityError(f"labels {shape} are invalid; expected integer class labels [B]")
        penalty = self.regularizer.penalty(labels)
        logged = {f"{PREFIX}/si/{name}": float(si) for name, si in self.regularizer.layer_selectivity(labels).items()}
        if self.regularizer.last_mean_si is not None:
            logged[f"{PREFIX}/mean_si"] = float(self.regularizer.last_mean_si)
        logged[f"{PREFIX}/penalty"] = float(penalty.detach())
        return penalty, logged
