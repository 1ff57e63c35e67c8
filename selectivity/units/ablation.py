"""Unit ablation curves (Morcos et al. 2018, "On the importance of single directions for generalization").

Accuracy and per-class recall on a fixed evaluation subset as a growing fraction of one
layer's units is ablated, in a given order. Ablating a unit clamps its post-activation
output (every spatial position of a conv channel) to a fixed value: 0, or the unit's mean
activation over training inputs. It is done with one forward hook per layer whose mask is
updated per level: no model copies, and no weight zeroing, which is not an ablation when a
BatchNorm follows (its shift would still pass through). Each level is one pass of
`measure_model`, the evaluation path the trainer uses (eval mode, same normalisation).
"""
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from selectivity.capture import resolve_layers
from selectivity.data.base import LabelledImages
from selectivity.errors import SelectivityError
from selectivity.measure import measure_model


class UnitAblation:
    """Context manager: clamp chosen units of one layer (`module` or `module#k`) to fixed values.

    Args:
        model: any nn.Module.
        layer: a module name, optionally `#k` for its k-th call in a forward pass.
        values: [U] the value each unit is clamped to when ablated.
    """

    def __init__(self, model: nn.Module, layer: str, values: torch.Tensor):
        resolve_layers(model, [layer])  # unknown names fail here, in one line
        self.model, self.values = model, values
        self.module_name, _, call = layer.partition("#")
        self.call = int(call) if call else None
        self.mask = torch.zeros(len(values), dtype=torch.bool, device=values.device)
        self._handles, self._calls = [], 0

    def set_ablated(self, units: torch.Tensor) -> None:
        """Ablate exactly `units` (indices) from the next forward pass on."""
        self.mask = torch.zeros_like(self.mask)
        self.mask[units.to(self.mask.device)] = True

    def __enter__(self) -> "UnitAblation":
        module = dict(self.model.named_modules())[self.module_name]
        self._handles = [self.model.register_forward_pre_hook(self._start_pass), module.register_forward_hook(self._clamp)]
        return self

    def __exit__(self, *exc_info) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _start_pass(self, module, inputs) -> None:
        self._calls = 0

    def _clamp(self, module, inputs, output: torch.Tensor) -> torch.Tensor:
        self._calls += 1
        if self.call is not None and self._calls != self.call:
            return output
        if output.shape[1] != len(self.values):
            raise SelectivityError(f"layer {self.module_name} has {output.shape[1]} units but {len(self.values)} "
                                   "clamp values were given; expected one value per unit")
        shape = (1, -1) + (1,) * (output.dim() - 2)  # [1, U, 1, 1] for conv maps
        mask, values = self.mask.view(shape), self.values.to(output.dtype).view(shape)
        return torch.where(mask, values, output)


def unit_orders(scores: pd.Series | np.ndarray, name: str) -> dict[str, np.ndarray]:
    """{f"{name}_high": indices by descending score, f"{name}_low": ascending}; ties keep unit order."""
    scores = np.nan_to_num(np.asarray(scores, dtype=float), nan=0.0)
    return {f"{name}_high": np.argsort(-scores, kind="stable"), f"{name}_low": np.argsort(scores, kind="stable")}


def random_orders(num_units: int, draws: int, seed: int) -> dict[str, np.ndarray]:
    """{"random#d": a random permutation} for d in 0..draws-1 (fixed by seed)."""
    generator = np.random.default_rng(seed)
    return {f"random#{draw}": generator.permutation(num_units) for draw in range(draws)}


def ablation_curves(model: nn.Module, split: LabelledImages, num_classes: int, mean: Sequence[float],
                    std: Sequence[float], layer: str, values: torch.Tensor, orders: dict[str, np.ndarray],
                    fractions: Sequence[float], batch_size: int = 500, device: str | torch.device = "cpu") -> pd.DataFrame:
    """Accuracy and per-class recall at each ablated fraction, for each order.

    Args:
        model: the network (put in eval mode by measure_model).
        split: the fixed evaluation subset.
        num_classes, mean, std: as for measure_model.
        layer: the layer whose units are ablated.
        values: [U] clamp values (zeros, or training-set means).
        orders: {name: [U] unit indices, first ablated first}; "name#d" marks draw d of a random order.
        fractions: ablated fractions in [0, 1]; level f ablates the first round(f U) units.
    Returns:
        One row per order x fraction: layer, order, draw, fraction, num_ablated, accuracy, recall_<k>.
    """
    if any(not 0 <= f <= 1 for f in fractions):
        raise SelectivityError(f"ablation fractions {list(fractions)}; expected values in [0, 1]")
    rows = []
    with UnitAblation(model, layer, values.to(device)) as ablation:
        for order_name, order in orders.items():
            base, _, draw = order_name.partition("#")
            for fraction in fractions:
                count = int(round(fraction * len(order)))
                ablation.set_ablated(torch.as_tensor(order[:count], dtype=torch.int64))
                result = measure_model(model, split, num_classes, mean, std, layers=[layer], batch_size=batch_size,
                                       device=device)
                row = {"layer": layer, "order": base, "draw": int(draw or 0), "fraction": float(fraction),
                       "num_ablated": count, "accuracy": result.accuracy}
                row.update({f"recall_{k}": recall for k, recall in enumerate(result.class_recall)})
                rows.append(row)
    return pd.DataFrame(rows)
