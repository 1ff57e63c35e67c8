"""SI of signed layers by the minimum shift, from streamed statistics (docs/definitions.md#signed-responses).

Shifting every response r of unit u by its minimum m_u over the measured data, r' = r - m_u,
moves every class mean by the same m_u: mu'_k = mu_k - m_u. So the shifted SI needs only the
streamed class means and a running per-unit minimum, in the same pass, and is exact:
    SI' = (mu_max - mu_rest) / (mu_max + mu_rest - 2 m_u + eps).
The preferred class, variances and d' do not change.
"""
import torch

from selectivity.metrics.streaming import UnitStatistics


def min_shifted_statistics(stats: UnitStatistics, minimum: torch.Tensor, shifted: torch.Tensor) -> UnitStatistics:
    """`stats` with the class means of the `shifted` units moved by their minimum response.

    Args:
        stats: streamed statistics of the raw responses.
        minimum: [U] each unit's smallest response over the data (SelectivityAccumulator.min_activation).
        shifted: [U] bool, True for units of min_shift layers.
    Returns:
        UnitStatistics whose means (and max_activation, so a constant unit is dead) are shifted.
    """
    shift = torch.where(shifted, minimum, torch.zeros_like(minimum)).to(stats.means.dtype)  # [U]
    return UnitStatistics(stats.layer_names, stats.layer_sizes, stats.counts, stats.means - shift,
                          stats.variances, stats.max_activation - shift)


def layer_unit_mask(stats: UnitStatistics, layers: set[str]) -> torch.Tensor:
    """[U] True for the units of `layers`."""
    parts = [torch.full((size,), name in layers, dtype=torch.bool)
             for name, size in zip(stats.layer_names, stats.layer_sizes)]
    return torch.cat(parts).to(stats.means.device)
