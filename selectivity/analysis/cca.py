"""Canonical correlation analysis of layer activations: plain CCA, SVCCA and PWCCA (two variants).

Used for the off-axis control (docs/definitions.md#off-axis-control, docs/cca.md): is
selectivity removed by the regularizer, or only rotated away from the unit axes? Inputs
are activation matrices [N, U] (rows = stimuli, columns = units), numpy or torch;
everything runs on numpy float64. PWCCA comes as Morcos et al. (2018) write it (variant
"equation") and as google/svcca's public code computes it (variant "svcca"); on the
reference cases of tests/test_cca.py they differ by 0.03 to 0.13.

Method (the numerically sound one, no covariance inverses): centre each side, take an
orthonormal basis Q of its column space by SVD, and read the canonical correlations off
as the singular values of Qx^T Qy, clipped to [0, 1].

Rules shared by every function here (see docs/cca.md):
- Constant (dead) units are dropped first: they carry no variance and would make the
  covariance singular. ReLU networks often have many.
- Singular directions below `relative_tolerance * largest singular value` are dropped.
  The default is max(N, U) * eps of the *input* dtype (numpy.linalg.matrix_rank's rule),
  so float32 activations do not contribute rounding noise as "directions".
- N <= U (live units, either side) raises: CCA is then degenerate (correlations
  trivially 1). N < 10 * U warns: independent data then already shows mean correlations
  of order sqrt(U / N), so similarities are biased upwards. `subsample_units` helps.
"""

import warnings

import numpy as np
import torch

from selectivity.errors import SelectivityError

SAMPLES_PER_UNIT_FOR_WARNING = 10  # below this, chance-level correlations are ~sqrt(U/N) >= 0.3


def as_samples_by_units(activations, name: str = "activations") -> tuple[np.ndarray, float]:
    """Convert numpy/torch activations to a float64 [N, U] array; also return the input eps.

    Args:
        activations: [N, U] numpy array or torch tensor (any device).
        name: how to call the argument in error messages.
    Returns:
        (array [N, U] float64, machine epsilon of the input's floating dtype; float64's
        for integer inputs).
    """
    if isinstance(activations, torch.Tensor):
        activations = activations.detach().cpu()
        input_dtype = activations.dtype
        eps = torch.finfo(input_dtype).eps if input_dtype.is_floating_point else np.finfo(np.float64).eps
        array = activations.to(torch.float64).numpy()
    else:
        array = np.asarray(activations)
        floating = np.issubdtype(array.dtype, np.floating)
        eps = float(np.finfo(array.dtype).eps) if floating else float(np.finfo(np.float64).eps)
        array = array.astype(np.float64)
    if array.ndim != 2:
        raise SelectivityError(f"{name} must be 2-D [samples, units]; got shape {tuple(array.shape)}")
    if not np.all(np.isfinite(array)):
        raise SelectivityError(f"{name} contains NaN or inf; expected finite activations")
    return array, float(eps)


def drop_constant_units(activations: np.ndarray) -> np.ndarray:
    """Remove columns whose value never changes (dead units). max == min is an exact test."""
    varying = activations.max(axis=0) != activations.min(axis=0)  # [U]
    return activations[:, varying]


def subsample_units(activations, max_units: int, seed: int = 0):
    """Keep a random subset of at most `max_units` units so that samples can exceed units.

    Args:
        activations: [N, U] numpy array or torch tensor.
        max_units: the largest number of units to keep (>= 1).
        seed: seed of the random choice, so the same units are kept across calls.
    Returns:
        [N, min(U, max_units)] of the same type as the input, kept units in original order.
    """
    if max_units < 1:
        raise SelectivityError(f"max_units must be >= 1; got {max_units}")
    unit_count = activations.shape[1]
    if unit_count <= max_units:
        return activations
    kept = np.sort(np.random.default_rng(seed).choice(unit_count, size=max_units, replace=False))
    if isinstance(activations, torch.Tensor):
        return activations[:, torch.as_tensor(kept, device=activations.device)]
    return activations[:, kept]


def _prepared_pair(x, y) -> tuple[np.ndarray, np.ndarray, float, np.ndarray, np.ndarray]:
    """Validate, drop dead units, centre.

    Returns:
        (centred x [N, Ux], centred y [N, Uy], input eps, x's unit means [Ux], y's [Uy]).
    """
    x, eps_x = as_samples_by_units(x, "x")
    y, eps_y = as_samples_by_units(y, "y")
    if x.shape[0] != y.shape[0]:
        raise SelectivityError(
            f"x and y must hold the same stimuli (rows); got {x.shape[0]} and {y.shape[0]} samples"
        )
    x, y = drop_constant_units(x), drop_constant_units(y)
    for name, side in (("x", x), ("y", y)):
        if side.shape[1] == 0:
            raise SelectivityError(f"{name} has no non-constant units; expected at least one live unit")
    sample_count, unit_count = x.shape[0], max(x.shape[1], y.shape[1])
    if sample_count <= unit_count:
        raise SelectivityError(
            f"CCA needs more samples than units: got N={sample_count} samples for "
            f"U={unit_count} units (non-constant); subsample units or use more images"
        )
    if sample_count < SAMPLES_PER_UNIT_FOR_WARNING * unit_count:
        warnings.warn(
            f"CCA with N={sample_count} samples for U={unit_count} units: chance correlations "
            f"are of order sqrt(U/N)={np.sqrt(unit_count / sample_count):.2f}; "
            f"use N >= {SAMPLES_PER_UNIT_FOR_WARNING}*U for unbiased similarities",
            stacklevel=4,  # the caller of the public function (pwcca adds one level)
        )
    x_means, y_means = x.mean(axis=0), y.mean(axis=0)  # [Ux], [Uy]
    return x - x_means, y - y_means, max(eps_x, eps_y), x_means, y_means


def _truncated_svd(centred: np.ndarray, relative_tolerance: float, keep_variance: float = 1.0):
    """(left [N, r], right [U, r]) singular vectors, dropping near-zero singular directions.

    left is an orthonormal basis of the column space. keep_variance < 1 further keeps only
    the top directions explaining that variance share (the SV step of SVCCA).
    """
    left, singular_values, right_t = np.linalg.svd(centred, full_matrices=False)  # [N, K], [K], [K, U]
    rank = int(np.sum(singular_values > relative_tolerance * singular_values[0]))
    if keep_variance < 1.0:
        variance_share = np.cumsum(singular_values**2) / np.sum(singular_values**2)  # [K]
        # small slack so that exactly-representable shares (e.g. 0.5 of 2 equal dims) count
        rank = min(rank, int(np.searchsorted(variance_share, keep_variance - 1e-12)) + 1)
    return left[:, :rank], right_t[:rank].T


def _default_tolerance(x: np.ndarray, y: np.ndarray, eps: float) -> float:
    """numpy.linalg.matrix_rank's rule, max(N, U) * eps, with eps of the input dtype."""
    return max(x.shape[0], x.shape[1], y.shape[1]) * eps


def _canonical_analysis(x, y, relative_tolerance=None, keep_variance: float = 1.0):
    """Return (correlations [m] desc, x's canonical variates [N, m] unit-norm, centred x [N, Ux])."""
    x, y, eps, _, _ = _prepared_pair(x, y)
    if relative_tolerance is None:
        relative_tolerance = _default_tolerance(x, y, eps)
    basis_x, _ = _truncated_svd(x, relative_tolerance, keep_variance)  # [N, rx]
    basis_y, _ = _truncated_svd(y, relative_tolerance, keep_variance)  # [N, ry]
    left, correlations, _ = np.linalg.svd(basis_x.T @ basis_y, full_matrices=False)  # [rx, m], [m]
    x_canonical_variates = basis_x @ left  # [N, m], orthonormal columns
    return np.clip(correlations, 0.0, 1.0), x_canonical_variates, x


def canonical_correlations(x, y, relative_tolerance: float | None = None) -> np.ndarray:
    """Canonical correlations between two activation matrices over the same stimuli.

    Dead (constant) units are dropped first; singular directions below
    `relative_tolerance` (relative to the largest) are treated as absent.

    Args:
        x: [N, U1] activations, numpy or torch. y: [N, U2] activations on the same N stimuli.
        relative_tolerance: default max(N, U) * eps of the input dtype.
    Returns:
        [min(rank x, rank y)] float64 correlations in [0, 1], sorted descending.
    Raises:
        SelectivityError: N <= live units on either side, shapes differ, non-finite values.
    """
    correlations, _, _ = _canonical_analysis(x, y, relative_tolerance)
    return correlations


def svcca_similarity(x, y, keep_variance: float = 0.99) -> float:
    """SVCCA (Raghu et al. 2017): mean canonical correlation after SVD-reducing each side.

    Each side keeps its top singular directions explaining `keep_variance` of its variance.

    Args:
        x: [N, U1] activations. y: [N, U2] activations on the same stimuli.
        keep_variance: share of variance kept per side, in (0, 1].
    Returns:
        Similarity in [0, 1]; 1 for representations equal up to rotation and scale.
    """
    if not 0.0 < keep_variance <= 1.0:
        raise SelectivityError(f"keep_variance must be in (0, 1]; got {keep_variance}")
    correlations, _, _ = _canonical_analysis(x, y, keep_variance=keep_variance)
    return float(np.mean(correlations))


def pwcca_weights(x, y) -> tuple[np.ndarray, np.ndarray]:
    """Canonical correlations and their PWCCA weights, as Morcos et al. (2018) define them.

    The weight of canonical variate h_i (unit-norm, in x's space) is sum_j |<h_i, x_j>|
    over x's centred live units x_j: how much of x's units' activity that direction
    accounts for. Weights are normalised to sum to 1. They depend on x only, so PWCCA is
    asymmetric, and (being an L1 sum over units) not invariant to rotations of x's units.

    Returns:
        (correlations [m] desc, weights [m] summing to 1).
    """
    correlations, x_canonical_variates, x_centred = _canonical_analysis(x, y)
    weights = np.abs(x_canonical_variates.T @ x_centred).sum(axis=1)  # [m]
    return correlations, weights / weights.sum()


def svcca_code_pwcca_weights(x, y) -> tuple[np.ndarray, np.ndarray]:
    """Correlations and weights of PWCCA as google/svcca's `compute_pwcca` forms them.

    That code (see docs/cca.md) differs from the paper's equation in three ways, kept here
    on purpose: the side with fewer live units sets the weights (x on a tie); its
    directions are the centred units rotated by the left (right, for y) singular vectors
    of the whitened cross-covariance Sxx^-1/2 Sxy Syy^-1/2, *without* the Sxx^-1/2 that
    would make them canonical variates, with unit i's mean added to direction i, then
    orthonormalised in order; and the weights are sum_j |<p_i, a_j>| over the side's
    *uncentred* live units a_j. Because of the added means the result depends on the sign
    numpy's SVD gives each singular vector; numpy's choice is what the reference used.

    Returns:
        (correlations [m] desc, weights [m] summing to 1), m = min(live units of x, of y).
    """
    x, y, eps, x_means, y_means = _prepared_pair(x, y)
    tolerance = _default_tolerance(x, y, eps)
    basis_x, right_x = _truncated_svd(x, tolerance)  # [N, rx], [Ux, rx]
    basis_y, right_y = _truncated_svd(y, tolerance)  # [N, ry], [Uy, ry]
    # Sxx^-1/2 Sxy Syy^-1/2 in the units' coordinates (pseudo-inverse on a rank-deficient side)
    whitened_cross = right_x @ (basis_x.T @ basis_y) @ right_y.T  # [Ux, Uy]
    left, correlations, right_t = np.linalg.svd(whitened_cross)  # [Ux, Ux], [m], [Uy, Uy]
    if x.shape[1] <= y.shape[1]:
        centred, means, rotation = x, x_means, left  # rotation columns: x's directions
    else:
        centred, means, rotation = y, y_means, right_t.T
    directions = centred @ rotation + means  # [N, U]: direction i carries unit i's mean
    orthonormal, _ = np.linalg.qr(directions)  # [N, U], Gram-Schmidt in order
    weights = np.abs(orthonormal.T @ (centred + means)).sum(axis=1)  # [U] = [m]
    return np.clip(correlations, 0.0, 1.0), weights / weights.sum()


PWCCA_VARIANTS = {"equation": pwcca_weights, "svcca": svcca_code_pwcca_weights}


def pwcca_similarity(x, y, variant: str = "equation") -> float:
    """Projection-weighted CCA similarity: sum_i weight_i * correlation_i.

    Args:
        x: [N, U1] activations. y: [N, U2] activations on the same stimuli.
        variant: "equation" (Morcos et al. 2018's formula: true canonical variates of x
            set the weights) or "svcca" (what google/svcca's `compute_pwcca(x.T, y.T)`
            computes, with its y-side indexing bug fixed; see `svcca_code_pwcca_weights`).
    Returns:
        Similarity in [0, 1].
    """
    if variant not in PWCCA_VARIANTS:
        raise SelectivityError(f"unknown PWCCA variant {variant!r}; expected one of {sorted(PWCCA_VARIANTS)}")
    correlations, weights = PWCCA_VARIANTS[variant](x, y)
    return float(np.sum(weights * correlations))


def cca_distance(x, y, method: str = "pwcca") -> float:
    """1 - similarity, with method "pwcca" (default, weights from x) or "svcca"."""
    similarity_by_method = {"pwcca": pwcca_similarity, "svcca": svcca_similarity}
    if method not in similarity_by_method:
        raise SelectivityError(f"unknown CCA method {method!r}; expected one of {sorted(similarity_by_method)}")
    return 1.0 - similarity_by_method[method](x, y)
