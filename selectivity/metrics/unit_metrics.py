"""Single-unit metrics beside SI (docs/definitions.md#other-single-unit-metrics), from streamed class statistics."""
import torch

from selectivity.metrics.streaming import UnitStatistics


def preferred_versus_rest_d_prime(stats: UnitStatistics) -> torch.Tensor:
    """[U] d' between the inputs of a unit's preferred class and all other inputs.

    d' = (mean_preferred - mean_rest) / sqrt((var_preferred + var_rest) / 2), with the rest
    pooled over inputs (not over class means). 0 where both variances are 0.
    """
    counts = stats.counts.unsqueeze(1)  # [K, 1]
    preferred = stats.preferred_class().unsqueeze(0)  # [1, U]
    total = counts.sum()
    sums, squares = stats.means * counts, (stats.variances + stats.means.square()) * counts  # [K, U]
    n_preferred = counts.squeeze(1)[preferred.squeeze(0)]  # [U]
    mean_preferred = stats.means.gather(0, preferred).squeeze(0)
    var_preferred = stats.variances.gather(0, preferred).squeeze(0)
    n_rest = (total - n_preferred).clamp_min(1)
    mean_rest = (sums.sum(0) - sums.gather(0, preferred).squeeze(0)) / n_rest
    var_rest = ((squares.sum(0) - squares.gather(0, preferred).squeeze(0)) / n_rest - mean_rest.square()).clamp_min(0)
    spread = ((var_preferred + var_rest) / 2).sqrt()
    return torch.where(spread > 0, (mean_preferred - mean_rest) / spread.clamp_min(1e-12), torch.zeros_like(spread))
