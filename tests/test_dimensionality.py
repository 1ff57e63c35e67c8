"""Participation ratio and principal components for a variance share, on known spectra."""

import math

import numpy as np
import pytest
import torch

from selectivity.analysis.dimensionality import (
    covariance_eigenvalues,
    participation_ratio,
    principal_components_for_variance,
)
from selectivity.errors import SelectivityError


def data_with_covariance_eigenvalues(eigenvalues, sample_count=200, seed=0) -> np.ndarray:
    """[N, d] activations whose sample covariance has exactly these eigenvalues."""
    rng = np.random.default_rng(seed)
    dimension = len(eigenvalues)
    random = rng.standard_normal((sample_count, dimension))
    # orthonormal, zero-mean columns: a basis of the centred random columns
    basis, _ = np.linalg.qr(random - random.mean(axis=0))  # [N, d]
    rotation, _ = np.linalg.qr(rng.standard_normal((dimension, dimension)))  # mixes the units
    return (basis * np.sqrt(np.asarray(eigenvalues) * (sample_count - 1))) @ rotation + 5.0


def test_hand_worked_spectrum():
    x = data_with_covariance_eigenvalues([4.0, 2.0, 1.0, 1.0])
    np.testing.assert_allclose(covariance_eigenvalues(x), [4.0, 2.0, 1.0, 1.0], atol=1e-10)
    assert participation_ratio(x) == pytest.approx(8.0**2 / (16 + 4 + 1 + 1))  # 64 / 22
    assert principal_components_for_variance(x, 0.5) == 1  # 4/8 exactly
    assert principal_components_for_variance(x, 0.75) == 2  # 6/8 exactly
    assert principal_components_for_variance(x, 0.76) == 3
    assert principal_components_for_variance(x, 1.0) == 4
    # 0.7 + 0.2 rounds to 0.8999999999999999 in float64: a share reached up to rounding counts
    tenths = data_with_covariance_eigenvalues([0.7, 0.2, 0.1], seed=1)
    assert principal_components_for_variance(tenths, 0.9) == 2


def test_dead_units_do_not_change_dimensionality():
    x = data_with_covariance_eigenvalues([3.0, 1.0, 0.5])
    with_dead = np.hstack([x, np.zeros((200, 5)), np.full((200, 2), 0.3)])
    assert participation_ratio(with_dead) == pytest.approx(participation_ratio(x))
    assert principal_components_for_variance(with_dead, 0.95) == principal_components_for_variance(x, 0.95)


def test_isotropic_gaussian_uses_every_dimension():
    dimension = 20
    x = np.random.default_rng(1).standard_normal((20000, dimension))
    # sample eigenvalues spread by ~ 2 sqrt(d / N) = 6%: PR ~ d / (1 + d / N)
    assert participation_ratio(x) == pytest.approx(dimension, abs=0.5)
    assert abs(principal_components_for_variance(x, 0.95) - math.ceil(0.95 * dimension)) <= 1


def test_rank_k_data_needs_at_most_k_components():
    rng = np.random.default_rng(2)
    rank = 4
    x = rng.standard_normal((500, rank)) @ rng.standard_normal((rank, 12))  # [N, 12], rank 4
    assert principal_components_for_variance(x, 0.95) <= rank
    assert principal_components_for_variance(x, 1.0) == rank
    assert 1.0 <= participation_ratio(x) <= rank + 1e-9


def test_single_direction_has_participation_ratio_one():
    x = np.outer(np.random.default_rng(3).standard_normal(100), [1.0, -2.0, 0.5])
    assert participation_ratio(x) == pytest.approx(1.0)
    assert principal_components_for_variance(x, 0.999) == 1


def test_torch_input_and_bad_inputs():
    x = data_with_covariance_eigenvalues([4.0, 2.0, 1.0, 1.0])
    assert participation_ratio(torch.from_numpy(x).float()) == pytest.approx(64 / 22, rel=1e-5)
    with pytest.raises(SelectivityError, match="zero variance"):
        participation_ratio(np.ones((10, 3)))
    with pytest.raises(SelectivityError, match="fraction"):
        principal_components_for_variance(x, 1.5)
    with pytest.raises(SelectivityError, match="at least 2 samples"):
        participation_ratio(x[:1])


def test_streamed_covariance_equals_the_covariance_of_all_rows():
    from selectivity.analysis.dimensionality import StreamingCovariance

    rows = np.random.default_rng(4).standard_normal((300, 6)) * [1, 2, 3, 1, 1, 0.5] + 1e6  # large common offset
    streamed = StreamingCovariance()
    for start in range(0, 300, 70):  # uneven batches
        streamed.update(torch.from_numpy(rows[start : start + 70]))
    np.testing.assert_allclose(streamed.covariance(), np.cov(rows, rowvar=False), rtol=1e-9, atol=1e-9)
    with pytest.raises(SelectivityError, match=r"expected \[B, 6\]"):
        streamed.update(torch.zeros(3, 5))


def test_streamed_rank_k_data_gives_k_and_isotropic_data_gives_d():
    from selectivity.analysis.dimensionality import (StreamingCovariance, components_for_variance,
                                                     participation_ratio_of)

    rng = np.random.default_rng(5)
    rank, units = 3, 10
    # k equal-variance orthogonal directions in 10 units: 95% of the variance needs all k
    directions, _ = np.linalg.qr(rng.standard_normal((units, rank)))
    planted = StreamingCovariance()
    isotropic = StreamingCovariance()
    for _ in range(10):
        planted.update(torch.from_numpy(rng.standard_normal((200, rank)) @ directions.T + 3.0))
        isotropic.update(torch.from_numpy(rng.standard_normal((200, units))))
    assert components_for_variance(planted.eigenvalues(), 0.95) == rank
    assert components_for_variance(planted.eigenvalues(), 1.0) == rank  # rounding-level eigenvalues add nothing
    assert participation_ratio_of(planted.eigenvalues()) == pytest.approx(rank, rel=0.1)
    assert participation_ratio_of(isotropic.eigenvalues()) == pytest.approx(units, rel=0.05)  # N = 2000, d = 10
    dead = StreamingCovariance()
    dead.update(torch.ones(5, 3))
    with pytest.raises(SelectivityError, match="zero variance"):
        dead.eigenvalues()
