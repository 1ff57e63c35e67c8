"""Ablation curves of a whole model: settings, subsets, unit orders and clamp values, then the curves.

The order in which units are ablated and the clamp-to-mean values come from a fixed random
subset of *training* inputs (SI, d', AUC, MI, lifetime sparseness and mean activation by
`measure_model`, no shuffles); accuracy is measured on a fixed random subset of test inputs.
No test input chooses the order.
"""
import warnings
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd
import torch
from torch import nn

from selectivity.data.base import DatasetSplits, LabelledImages
from selectivity.errors import SelectivityError
from selectivity.measure import measure_model
from selectivity.metrics.shuffles import ShuffleSettings
from selectivity.units.ablation import ablation_curves, random_orders, unit_orders

RANKING_METRICS = ("si", "d_prime", "auc", "mutual_information", "lifetime_sparseness", "mean_activation")
CLAMPS = ("zero", "mean")


@dataclass(frozen=True)
class AblationSettings:
    """Settings of the ablation curves (`[analysis_settings.ablation]` in a sweep spec, or flags of `ablate`).

    Attributes:
        layers: layers to ablate, one at a time ([] = every captured layer of the run).
        orders: "random" and/or "<metric>_high" / "<metric>_low", metric in RANKING_METRICS.
        draws: random orders drawn (the CI is across them).
        fractions: ablated fractions.
        clamp: "zero" or "mean" (the unit's mean activation over the training subset).
        subset: test inputs the accuracy is measured on.
        train_images: training inputs that rank the units and give their means.
        seed: fixes both subsets and the random orders.
        batch_size: inputs per forward pass.
    """

    layers: tuple[str, ...] = ()
    orders: tuple[str, ...] = ("si_high", "si_low", "random")
    draws: int = 3
    fractions: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    clamp: str = "zero"
    subset: int = 1000
    train_images: int = 2000
    seed: int = 0
    batch_size: int = 500

    def __post_init__(self):
        if self.clamp not in CLAMPS:
            raise SelectivityError(f"ablation clamp {self.clamp!r}; expected one of {CLAMPS}")
        for order in self.orders:
            metric, _, side = order.rpartition("_")
            if order != "random" and (metric not in RANKING_METRICS or side not in ("high", "low")):
                raise SelectivityError(f"ablation order {order!r}; expected 'random' or <metric>_high/_low with "
                                       f"metric in {RANKING_METRICS}")
        for name in ("draws", "subset", "train_images", "batch_size"):
            if getattr(self, name) < 1:
                raise SelectivityError(f"ablation {name} = {getattr(self, name)}; expected an integer >= 1")
        if not self.fractions:
            raise SelectivityError("ablation fractions are empty; expected at least one fraction in [0, 1]")
        if not all(isinstance(f, (int, float)) and not isinstance(f, bool) and 0 <= f <= 1 for f in self.fractions):
            raise SelectivityError(f"ablation fractions {list(self.fractions)}; expected numbers in [0, 1]")

    @classmethod
    def from_dict(cls, values: dict) -> "AblationSettings":
        """Settings from a spec table; unknown keys are refused, lists become tuples."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise SelectivityError(f"unknown ablation settings {unknown}; expected some of {sorted(known)}")
        return cls(**{key: tuple(value) if isinstance(value, list) else value for key, value in values.items()})


def random_subset(split: LabelledImages, size: int, seed: int) -> LabelledImages:
    """`size` inputs drawn without replacement (in index order), fixed by seed; the whole split if smaller."""
    if size >= len(split):
        return split
    index = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))[:size].sort().values
    return LabelledImages(split.images[index], split.labels[index])


def layer_orders(units: pd.DataFrame, settings: AblationSettings) -> dict[str, np.ndarray]:
    """{order name: unit indices} for one layer's rows of the ranking table."""
    orders = {}
    for order in settings.orders:
        if order == "random":
            orders.update(random_orders(len(units), settings.draws, settings.seed))
        else:
            metric = order.rpartition("_")[0]
            orders[order] = unit_orders(units[metric].to_numpy(), metric)[order]
    return orders


def model_ablation_curves(model: nn.Module, data: DatasetSplits, mean, std, layers: str | list[str],
                          settings: AblationSettings, device: str | torch.device = "cpu") -> pd.DataFrame:
    """Ablation curves (selectivity.units.ablation.ablation_curves rows) of every requested layer.

    Args:
        model: the trained network.
        data: its dataset (train split ranks the units, test split measures accuracy).
        mean, std: input normalisation.
        layers: layers captured for ranking ("relu", "blocks" or names); settings.layers narrows them.
        settings: the AblationSettings.
    """
    train = random_subset(data.train, settings.train_images, settings.seed)
    test = random_subset(data.test, settings.subset, settings.seed + 1)
    ranking = measure_model(model, train, data.num_classes, mean, std, layers=list(settings.layers) or layers,
                            batch_size=settings.batch_size, device=device, shuffles=ShuffleSettings(0)).units
    curves, modules = [], dict(model.named_modules())
    for layer, units in ranking.groupby("layer", sort=False):
        if layer.partition("#")[0] not in modules:  # a functional ReLU call: no module output to clamp
            warnings.warn(f"layer {layer} is a functional call, not a module; it is not ablated")
            continue
        values = torch.zeros(len(units), dtype=torch.float64) if settings.clamp == "zero" else \
            torch.tensor(units["mean_activation"].to_numpy())
        curves.append(ablation_curves(model, test, data.num_classes, mean, std, layer, values,
                                      layer_orders(units, settings), settings.fractions, settings.batch_size, device))
    if not curves:
        raise SelectivityError("no module layer to ablate; expected layers that are nn.Module outputs (e.g. nn.ReLU)")
    return pd.concat(curves, ignore_index=True)
