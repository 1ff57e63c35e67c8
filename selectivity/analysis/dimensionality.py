"""Dimensionality of a layer's representation (docs/definitions.md#dimensionality): how many directions it uses.

Both measures read the eigenvalues of the units' covariance over stimuli, computed as
squared singular values of the centred activations (no covariance matrix is formed).
"""

import numpy as np

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
    if not 0.0 < fraction <= 1.0:
        raise SelectivityError(f"fraction must be in (0, 1]; got {fraction}")
    eigenvalues = covariance_eigenvalues(activations)
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
    eigenvalues = covariance_eigenvalues(activations)
    return float(np.sum(eigenvalues) ** 2 / np.sum(eigenvalues**2))
