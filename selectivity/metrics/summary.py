"""Per-unit tables and their summaries: mean over units in a layer, then over layers."""
import functools

import pandas as pd
import torch

from selectivity.errors import SelectivityError
from selectivity.metrics.class_means import class_conditional_means
from selectivity.metrics.selectivity_index import EPS, max_and_rest_means, selectivity_index
from selectivity.metrics.streaming import UnitStatistics
from selectivity.metrics.unit_metrics import preferred_versus_rest_d_prime


def unit_table(stats: UnitStatistics) -> pd.DataFrame:
    """One row per unit: layer, unit, si, preferred_class, mu_max, mu_rest, d_prime, dead.

    mu_rest is the mean of the other present classes' means (docs/definitions.md#class-selectivity-index).
    """
    if not isinstance(stats, UnitStatistics):
        raise SelectivityError(f"got a {type(stats).__name__}; expected the UnitStatistics of "
                               "SelectivityAccumulator.result()")
    si = stats.selectivity()  # [U]
    mu_max, mu_rest, _ = max_and_rest_means(stats.means, stats.counts)  # [U], [U]
    layer_column = [name for name, size in zip(stats.layer_names, stats.layer_sizes) for _ in range(size)]
    unit_column = [unit for size in stats.layer_sizes for unit in range(size)]
    return pd.DataFrame(
        {
            "layer": layer_column,
            "unit": unit_column,
            "si": si.cpu().numpy(),
            "preferred_class": stats.preferred_class().cpu().numpy(),
            "mu_max": mu_max.cpu().numpy(),
            "mu_rest": mu_rest.cpu().numpy(),
            "d_prime": preferred_versus_rest_d_prime(stats).cpu().numpy(),
            "dead": stats.dead.cpu().numpy(),
        }
    )


def layer_summary(units: pd.DataFrame) -> pd.DataFrame:
    """Per layer (in the table's order): num_units, mean_si, dead_units, dead_fraction."""
    _check_units_table(units)
    grouped = units.groupby("layer", sort=False)
    summary = pd.DataFrame(
        {
            "num_units": grouped.size(),
            "mean_si": grouped["si"].mean(),
            "dead_units": grouped["dead"].sum().astype(int),
        }
    )
    summary["dead_fraction"] = summary["dead_units"] / summary["num_units"]
    return summary.reset_index()


def network_mean_si(units: pd.DataFrame) -> float:
    """mu_SI = 1/L sum_l 1/U_l sum_u SI_u: wide layers do not dominate."""
    return float(layer_summary(units)["mean_si"].mean())


def batch_network_selectivity(
    activations: list[torch.Tensor], labels: torch.Tensor, num_classes: int, eps: float = EPS
) -> torch.Tensor:
    """Differentiable mu_SI of one mini-batch over several layers, with no host syncs.

    All layers' class means come from one matrix product over the concatenated units;
    per-layer means use a scatter-add, not a Python loop over layers or classes.

    Args:
        activations: L tensors [B, U_l] (post-ReLU unit activations of one batch).
        labels: [B] classes, already known to lie in [0, num_classes).
        num_classes: K.

    Returns:
        Scalar mean over layers of the mean SI over units; 0 (no term) when the batch
        holds fewer than 2 classes.
    """
    _check_batch(activations, labels)
    sizes = tuple(a.shape[1] for a in activations)
    units = torch.cat(activations, 1)  # [B, U]
    units = units.to(torch.promote_types(units.dtype, torch.float32))  # class means in fp32 or better, even under autocast
    means, counts = class_conditional_means(units, labels, num_classes, validate=False)  # [K, U], [K]
    si = selectivity_index(means, counts, eps).nan_to_num(0.0)  # [U]
    layer_of_unit, units_per_layer = _layer_index(sizes, si.device)  # [U], [L]
    per_layer = torch.zeros(len(sizes), device=si.device, dtype=si.dtype).index_add_(0, layer_of_unit, si)
    per_layer = per_layer / units_per_layer.to(si.dtype)  # [L]
    return torch.where((counts > 0).sum() >= 2, per_layer.mean(), torch.zeros_like(per_layer[0]))


def _check_batch(activations, labels: torch.Tensor) -> None:
    """Shapes only: they are known on the host, so this costs no device sync."""
    if not isinstance(activations, (list, tuple)) or len(activations) == 0:
        kind = "an empty list" if isinstance(activations, (list, tuple)) else f"a {type(activations).__name__}"
        raise SelectivityError(f"activations is {kind}; expected a non-empty list of [B, U_l] tensors, one per layer")
    if not _fits(activations, labels):  # the shapes are spelled out only for the error
        shapes = [tuple(a.shape) if isinstance(a, torch.Tensor) else type(a).__name__ for a in activations]
        label_shape = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise SelectivityError(f"activations {shapes} and labels {label_shape} do not fit; expected [B, U_l] tensors "
                               "and labels [B]")


def _fits(activations, labels) -> bool:
    if not isinstance(labels, torch.Tensor) or labels.dim() != 1:
        return False
    batch = labels.shape[0]
    return all(isinstance(a, torch.Tensor) and a.dim() == 2 and a.shape[0] == batch for a in activations)


def _check_units_table(units) -> None:
    missing = {"layer", "si", "dead"} - set(getattr(units, "columns", ()))
    if not isinstance(units, pd.DataFrame) or missing:
        lacking = f" lacking columns {sorted(missing)}" if isinstance(units, pd.DataFrame) else ""
        raise SelectivityError(f"got a {type(units).__name__}{lacking}; expected the per-unit DataFrame of "
                               "unit_table(stats)")


@functools.lru_cache(maxsize=64)
def _layer_index(sizes: tuple[int, ...], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Which layer each unit belongs to, and units per layer: made once, not copied to the device every step."""
    units_per_layer = torch.tensor(sizes, device=device)
    return torch.repeat_interleave(torch.arange(len(sizes), device=device), units_per_layer), units_per_layer
