"""Linear centred kernel alignment (CKA, Kornblith et al. 2019) between two layers.

    CKA(X, Y) = ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F * ||Yc^T Yc||_F)

with Xc, Yc the column-centred [N, U] activations. It equals the HSIC of the linear
kernels K = Xc Xc^T and L = Yc Yc^T normalised by sqrt(HSIC(K, K) HSIC(L, L)); computing it
from the [U, U] feature-space products costs O(N U^2) instead of O(N^2 U).

Unlike CCA it is not blind to every invertible linear map: it is invariant to orthogonal
transforms and isotropic scaling of either side, but not to stretching some directions
more than others, so a regularizer that reweights directions moves CKA and not CCA. It
needs no samples-over-units rule and ignores dead units (their centred columns are zero).
"""
import numpy as np

from selectivity.analysis.cca import as_samples_by_units
from selectivity.errors import SelectivityError


def linear_cka(x, y) -> float:
    """Linear CKA similarity of two activation matrices over the same stimuli.

    Args:
        x: [N, U1] activations, numpy or torch. y: [N, U2] activations on the same N stimuli.
    Returns:
        Similarity in [0, 1]; 1 for representations equal up to rotation and isotropic scale.
    Raises:
        SelectivityError: shapes differ, non-finite values, or a side with no varying unit.
    """
    x, _ = as_samples_by_units(x, "x")
    y, _ = as_samples_by_units(y, "y")
    if x.shape[0] != y.shape[0]:
        raise SelectivityError(
            f"x and y must hold the same stimuli (rows); got {x.shape[0]} and {y.shape[0]} samples"
        )
    x = x - x.mean(axis=0, keepdims=True)
    y = y - y.mean(axis=0, keepdims=True)
    self_x = np.linalg.norm(x.T @ x)  # Frobenius norm, sqrt(HSIC(K, K)) up to a constant
    self_y = np.linalg.norm(y.T @ y)
    for name, norm in (("x", self_x), ("y", self_y)):
        if norm == 0:
            raise SelectivityError(f"{name} has no non-constant units; expected at least one live unit")
    cross = np.linalg.norm(y.T @ x) ** 2  # [Uy, Ux] -> HSIC(K, L) up to the same constant
    return float(np.clip(cross / (self_x * self_y), 0.0, 1.0))
