"""Dimensionality of a layer's representation (docs/definitions.md#dimensionality): how many directions it uses.

Both measures read the eigenvalues of the units' covariance over stimuli: from the whole
[N, U] activations (squared singular values of the centred matrix), or from a covariance
streamed batch by batch (StreamingCovariance: float64 sums of x and x x^T, never the rows).
"""

import numpy as np
import torch

from selectivity.analysis.cca import as_samples_by_units
from selectivity.errors import SelectivityError


def covariance_eigenvalues(activations) -> np.ndarray:
    """Eigenvalues of the [U, U] unit covariance (divisor N - 1), sorted descending.

    Args:
        activations: [N, U] numpy array or torch tensor, rows = stimuli, N >= 2.
    Returns:
        [min(N, U)] float64 eigenvalues >= 0 (the rest are exactly zero).
    """
    activations, _ = as_samples_by_units(activations)
    sample_count = activations.shape[0]
    if sample_count < 2:
        raise SelectivityError(f"dimensionality needs at least 2 samples; got N={sample_count}")
    centred = activations - activations.mean(axis=0, keepdims=True)  # [N, U]
    singular_values = np.linalg.svd(centred, compute_uv=False)  # [min(N, U)]
    eigenvalues = singular_values**2 / (sample_count - 1)
    if eigenvalues[0] == 0.0:
        raise SelectivityError("activations have zero variance (all units constant); expected a live unit")
    return eigenvalues


def principal_components_for_variance(activations, fraction: float = 0.95) -> int:
    """Number of principal components needed to explain `fraction` of the total variance.

    Args:
        activations: [N, U] activations.
        fraction: share of variance, in (0, 1].
    Returns:
        The smallest k with (sum of top-k eigenvalues) / (sum of all) >= fraction.
    """
    return components_for_variance(covariance_eigenvalues(activations), fraction)


def components_for_variance(eigenvalues: np.ndarray, fraction: float = 0.95) -> int:
    """The smallest k whose top-k eigenvalues hold `fraction` of their sum.

    Args:
        eigenvalues: covariance eigenvalues >= 0, sorted descending, not all zero.
        fraction: share of variance, in (0, 1].
    Returns:
        k >= 1.
    """
    if not 0.0 < fraction <= 1.0:
        raise SelectivityError(f"fraction must be in (0, 1]; got {fraction}")
    variance_share = np.cumsum(eigenvalues) / np.sum(eigenvalues)  # [K], ends at 1
    # slack for rounding, so that e.g. 2 equal components reach exactly 0.5 at k = 1
    return int(np.searchsorted(variance_share, fraction - 1e-12)) + 1


def participation_ratio(activations) -> float:
    """Participation ratio (sum λ)^2 / sum λ^2 of the covariance eigenvalues λ.

    Equals d for d equal-variance directions and 1 for a single direction; lies in [1, rank].

    Args:
        activations: [N, U] activations.
    Returns:
        Participation ratio as a float.
    """
    return participation_ratio_of(covariance_eigenvalues(activations))


def participation_ratio_of(eigenvalues: np.ndarray) -> float:
    """(sum λ)^2 / sum λ^2 of covariance eigenvalues λ >= 0 (not all zero)."""
    return float(np.sum(eigenvalues) ** 2 / np.sum(eigenvalues**2))


class StreamingCovariance:
    """Unit covariance of activations seen batch by batch: float64 sums of x and x x^T.

    Memory is [U, U] whatever the number of stimuli; the result equals the covariance of all
    rows stacked (divisor N - 1). Rows are shifted by the first batch's mean before summing,
    so a large common offset does not cancel the variance away in float64.
    """

    def __init__(self):
        self.count = 0
        self.shift: torch.Tensor | None = None  # [U] float64, the first batch's mean
        self.sum: torch.Tensor | None = None  # [U] float64, sum of (x - shift)
        self.outer: torch.Tensor | None = None  # [U, U] float64, sum of (x - shift)(x - shift)^T

    def update(self, activations: torch.Tensor) -> None:
        """Add a [B, U] batch (any float dtype or device; summed in float64 on the CPU)."""
        rows = activations.detach().to("cpu", torch.float64)
        if self.shift is None:
            units = rows.shape[1]
            self.shift = rows.mean(0)
            self.sum = torch.zeros(units, dtype=torch.float64)
            self.outer = torch.zeros(units, units, dtype=torch.float64)
        if rows.dim() != 2 or rows.shape[1] != self.shift.shape[0]:
            raise SelectivityError(f"batch of shape {tuple(rows.shape)}; expected [B, {self.shift.shape[0]}]")
        rows = rows - self.shift
        self.count += rows.shape[0]
        self.sum += rows.sum(0)
        self.outer += rows.T @ rows

    def covariance(self) -> np.ndarray:
        """[U, U] float64 covariance (divisor N - 1)."""
        if self.count < 2:
            raise SelectivityError(f"dimensionality needs at least 2 samples; got N={self.count}")
        mean = self.sum / self.count
        return ((self.outer - self.count * torch.outer(mean, mean)) / (self.count - 1)).numpy()

    def eigenvalues(self) -> np.ndarray:
        """Covariance eigenvalues, sorted descending (rounding's tiny negatives clipped to 0)."""
        eigenvalues = np.clip(np.linalg.eigvalsh(self.covariance())[::-1], 0, None)
        if eigenvalues[0] <= 0:
            raise SelectivityError("activations have zero variance (all units constant); expected a live unit")
        return eigenvalues
