"""CCA, SVCCA, PWCCA (both variants) and linear CKA: invariances, planted structure, independent checks,
and figures produced by the public google/svcca code."""

import warnings

import numpy as np
import pytest
import torch

from selectivity.analysis.cka import linear_cka
from selectivity.analysis.cca import (
    canonical_correlations,
    cca_distance,
    pwcca_similarity,
    pwcca_weights,
    subsample_units,
    svcca_code_pwcca_weights,
    svcca_similarity,
)
from selectivity.errors import SelectivityError


def random_orthogonal(dimension: int, rng) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((dimension, dimension)))
    return q * np.sign(np.diag(r))  # [d, d]


def planted_pair(rng, sample_count=4000, dimension=6, shared=3):
    """x = [s, noise_x] @ Ax, y = [s, noise_y] @ Ay: `shared` latent dims in common."""
    latent = rng.standard_normal((sample_count, shared))  # [N, k]
    noise_x = rng.standard_normal((sample_count, dimension - shared))
    noise_y = rng.standard_normal((sample_count, dimension - shared))
    mixing_x = rng.standard_normal((dimension, dimension)) + 2 * np.eye(dimension)
    mixing_y = rng.standard_normal((dimension, dimension)) + 2 * np.eye(dimension)
    return np.hstack([latent, noise_x]) @ mixing_x, np.hstack([latent, noise_y]) @ mixing_y


def graded_pair(rng, sample_count=1000):
    """y sees four of x's five units at four distinct strengths: distinct correlations."""
    x = rng.standard_normal((sample_count, 5))
    signal = x[:, :4] * np.array([2.0, 1.0, 0.5, 0.25])  # [N, 4]
    return x, signal @ random_orthogonal(4, rng) + rng.standard_normal((sample_count, 4))


def textbook_canonical_correlations(x, y) -> np.ndarray:
    """sqrt of the eigenvalues of Sxx^-1 Sxy Syy^-1 Syx (the classical formulation)."""
    x = x - x.mean(axis=0)
    y = y - y.mean(axis=0)
    cov_xx, cov_yy, cov_xy = x.T @ x, y.T @ y, x.T @ y
    matrix = np.linalg.solve(cov_xx, cov_xy) @ np.linalg.solve(cov_yy, cov_xy.T)  # [Ux, Ux]
    eigenvalues = np.sort(np.linalg.eigvals(matrix).real)[::-1][: min(x.shape[1], y.shape[1])]
    return np.sqrt(np.clip(eigenvalues, 0, None))


def test_identical_inputs_are_fully_similar():
    x = np.random.default_rng(0).standard_normal((500, 10))
    assert svcca_similarity(x, x) == pytest.approx(1.0, abs=1e-12)
    assert pwcca_similarity(x, x) == pytest.approx(1.0, abs=1e-12)
    assert cca_distance(x, x, "pwcca") == pytest.approx(0.0, abs=1e-12)
    assert cca_distance(x, x, "svcca") == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(canonical_correlations(x, x), np.ones(10), atol=1e-12)


def test_matches_textbook_eigenvalue_formulation():
    rng = np.random.default_rng(1)
    x, y = graded_pair(rng)
    expected = textbook_canonical_correlations(x, y)
    assert expected.min() > 0.05 and expected.max() < 0.99  # a non-trivial spread to compare
    np.testing.assert_allclose(canonical_correlations(x, y), expected, atol=1e-8)


def test_pwcca_weights_match_a_slow_definition_loop():
    x, y = graded_pair(np.random.default_rng(13))
    x_centred, y_centred = x - x.mean(axis=0), y - y.mean(axis=0)
    cov_xx, cov_yy, cov_xy = x_centred.T @ x_centred, y_centred.T @ y_centred, x_centred.T @ y_centred
    matrix = np.linalg.solve(cov_xx, cov_xy) @ np.linalg.solve(cov_yy, cov_xy.T)  # [5, 5]
    eigenvalues, directions = np.linalg.eig(matrix)
    order = np.argsort(eigenvalues.real)[::-1][:4]
    expected = []
    for direction in directions[:, order].real.T:  # canonical weight vector a_i of x
        variate = x_centred @ direction
        variate /= np.linalg.norm(variate)  # h_i, unit norm
        expected.append(sum(abs(variate @ x_centred[:, unit]) for unit in range(5)))
    expected = np.array(expected) / sum(expected)
    correlations, weights = pwcca_weights(x, y)
    np.testing.assert_allclose(weights, expected, atol=1e-8)
    assert pwcca_similarity(x, y) == pytest.approx(float(np.sum(expected * correlations)), abs=1e-8)


def test_invariant_to_rotation_and_scaling_of_either_side():
    rng = np.random.default_rng(2)
    x, y = graded_pair(rng)
    # distinct correlations: with ties, canonical variates (hence PWCCA weights) are not unique
    rotation = random_orthogonal(4, rng)
    svcca = svcca_similarity(x, y)
    assert 0.3 < svcca < 0.9
    assert svcca_similarity(3.0 * x @ random_orthogonal(5, rng), y) == pytest.approx(svcca, abs=1e-10)
    assert svcca_similarity(x, 0.2 * y @ rotation) == pytest.approx(svcca, abs=1e-10)
    # PWCCA weights come from x's units: invariant to anything done to y, and to scaling x
    pwcca = pwcca_similarity(x, y)
    assert pwcca_similarity(x, 0.2 * y @ rotation) == pytest.approx(pwcca, abs=1e-10)
    assert pwcca_similarity(7.0 * x, y) == pytest.approx(pwcca, abs=1e-10)


def test_plain_correlations_invariant_to_invertible_linear_maps():
    rng = np.random.default_rng(3)
    x, y = planted_pair(rng, sample_count=2000)
    map_x = rng.standard_normal((6, 6)) + 3 * np.eye(6)
    map_y = rng.standard_normal((6, 6)) + 3 * np.eye(6)
    np.testing.assert_allclose(
        canonical_correlations(x @ map_x, y @ map_y), canonical_correlations(x, y), atol=1e-10
    )


def test_planted_shared_dimensions_are_recovered():
    x, y = planted_pair(np.random.default_rng(4), sample_count=4000, dimension=6, shared=3)
    correlations = canonical_correlations(x, y)
    assert correlations.shape == (6,)
    assert np.all(np.diff(correlations) <= 0)
    np.testing.assert_allclose(correlations[:3], 1.0, atol=1e-9)
    assert correlations[3:].max() < 0.15  # independent noise: ~ 2 sqrt(3 / 4000) = 0.055


def test_independent_inputs_have_small_correlations():
    rng = np.random.default_rng(5)
    sample_count, unit_count = 2000, 10
    x = rng.standard_normal((sample_count, unit_count))
    y = rng.standard_normal((sample_count, unit_count))
    # mean squared canonical correlation of independent data ~ U / N, so the mean is below
    # sqrt(U / N) = 0.07; the largest sits near 2 sqrt(U / N)
    assert np.mean(canonical_correlations(x, y)) < 1.5 * np.sqrt(unit_count / sample_count)
    assert svcca_similarity(x, y) < 1.5 * np.sqrt(unit_count / sample_count)


def dominated_pair(shared_scale: float, rng, sample_count=3000, dimension=5):
    """x's units mix one shared latent (scaled) with independent noise; y sees the latent."""
    latent = rng.standard_normal((sample_count, 1))
    x_sources = np.hstack([shared_scale * latent, rng.standard_normal((sample_count, dimension - 1))])
    y_sources = np.hstack([latent, rng.standard_normal((sample_count, dimension - 1))])
    return x_sources @ random_orthogonal(dimension, rng), y_sources @ random_orthogonal(dimension, rng)


def test_pwcca_weights_follow_how_much_of_x_each_direction_carries():
    rng = np.random.default_rng(6)
    x, y = dominated_pair(10.0, rng)
    correlations, weights = pwcca_weights(x, y)
    assert weights.sum() == pytest.approx(1.0)
    assert correlations[0] > 0.999 and weights[0] > 0.5  # uniform would be 0.2
    assert pwcca_similarity(x, y) > np.mean(correlations) + 0.3
    # the shared direction is now a whisper in x: PWCCA discounts it, mean CCA does not
    x, y = dominated_pair(0.1, rng)
    correlations, weights = pwcca_weights(x, y)
    assert correlations[0] > 0.999 and weights[0] < 0.1
    assert pwcca_similarity(x, y) < np.mean(correlations) - 0.1


def test_too_few_samples_raise_and_few_samples_warn():
    rng = np.random.default_rng(7)
    with pytest.raises(SelectivityError, match="more samples than units: got N=10 samples for U=10"):
        canonical_correlations(rng.standard_normal((10, 10)), rng.standard_normal((10, 3)))
    with pytest.raises(SelectivityError, match="U=25"):
        pwcca_similarity(rng.standard_normal((20, 5)), rng.standard_normal((20, 25)))
    with pytest.warns(UserWarning, match="chance correlations"):
        canonical_correlations(rng.standard_normal((30, 10)), rng.standard_normal((30, 10)))


def test_constant_units_are_dropped():
    rng = np.random.default_rng(8)
    live_x, y = rng.standard_normal((50, 4)), rng.standard_normal((50, 3))
    dead = np.hstack([np.zeros((50, 40)), np.full((50, 20), 0.7)])  # 60 dead > 50 samples
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 50 samples >= 10 * 4 live units: no warning either
        with_dead = canonical_correlations(np.hstack([live_x[:, :2], dead, live_x[:, 2:]]), y)
    np.testing.assert_allclose(with_dead, canonical_correlations(live_x, y), atol=1e-12)
    with pytest.raises(SelectivityError, match="no non-constant units"):
        canonical_correlations(np.zeros((50, 3)), y)


def test_linearly_dependent_units_are_not_counted_as_directions():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((400, 4))
    x = np.hstack([x, x[:, :1] + 2 * x[:, 1:2]])  # rank 4 in 5 units
    assert canonical_correlations(x, rng.standard_normal((400, 6))).shape == (4,)
    assert canonical_correlations(x, x).shape == (4,)


def test_torch_inputs_are_accepted():
    rng = np.random.default_rng(10)
    x, y = planted_pair(rng, sample_count=1000)
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    tensor_x = torch.from_numpy(x32).requires_grad_(True)
    np.testing.assert_allclose(
        canonical_correlations(tensor_x, torch.from_numpy(y32)), canonical_correlations(x32, y32), atol=1e-12
    )
    assert pwcca_similarity(tensor_x, torch.from_numpy(y32)) == pytest.approx(pwcca_similarity(x32, y32))


def test_bad_inputs_raise_one_line_errors():
    x = np.random.default_rng(11).standard_normal((100, 3))
    with pytest.raises(SelectivityError, match="same stimuli"):
        canonical_correlations(x, x[:50])
    with pytest.raises(SelectivityError, match="2-D"):
        canonical_correlations(x[:, 0], x)
    with pytest.raises(SelectivityError, match="unknown CCA method"):
        cca_distance(x, x, method="cka")
    with pytest.raises(SelectivityError, match="unknown PWCCA variant"):
        pwcca_similarity(x, x, variant="paper")
    with pytest.raises(SelectivityError, match="keep_variance"):
        svcca_similarity(x, x, keep_variance=0.0)
    with pytest.raises(SelectivityError, match="NaN"):
        canonical_correlations(np.full((100, 3), np.nan), x)


def test_svcca_keeps_only_the_top_variance_directions():
    rng = np.random.default_rng(12)
    strong = rng.standard_normal((3000, 2)) * 10
    x = np.hstack([strong, 0.01 * rng.standard_normal((3000, 3))])  # 2 dims hold > 99.99%
    y = np.hstack([strong, rng.standard_normal((3000, 3))])
    # x keeps its 2 strong dims, both shared with y; mean over min(2, 3 kept by y) -> 1
    assert svcca_similarity(x, y, keep_variance=0.99) == pytest.approx(1.0, abs=1e-6)
    # keeping everything lets x's 3 whisper dims in, each uncorrelated with y's
    assert svcca_similarity(x, y, keep_variance=1.0) < 0.6


def test_subsample_units_is_seeded_ordered_and_type_preserving():
    x = np.arange(40.0).reshape(2, 20)
    kept = subsample_units(x, 5, seed=3)
    assert kept.shape == (2, 5)
    assert np.all(np.diff(kept[0]) > 0) and set(kept[0]) <= set(x[0])
    np.testing.assert_array_equal(kept, subsample_units(x, 5, seed=3))
    assert not np.array_equal(kept, subsample_units(x, 5, seed=4))
    assert subsample_units(x, 50) is x
    assert isinstance(subsample_units(torch.from_numpy(x), 5, seed=3), torch.Tensor)
    np.testing.assert_array_equal(subsample_units(torch.from_numpy(x), 5, seed=3).numpy(), kept)
    with pytest.raises(SelectivityError, match="max_units"):
        subsample_units(x, 0)


def test_float32_inputs_keep_the_float32_rank_tolerance():
    """A direction at 1e-6 of the largest singular value is rounding noise in float32 (tolerance
    max(N, U) * 1.2e-7 = 4.8e-5) but a real direction in float64 (tolerance ~9e-14)."""
    rng = np.random.default_rng(14)
    x = rng.standard_normal((400, 4))
    x = np.hstack([x, x[:, :1] + 2 * x[:, 1:2] + 1e-6 * rng.standard_normal((400, 1))])
    y = rng.standard_normal((400, 6))
    assert canonical_correlations(x, y).shape == (5,)
    assert canonical_correlations(x.astype(np.float32), y).shape == (4,)
    assert canonical_correlations(torch.from_numpy(x.astype(np.float32)), y).shape == (4,)


def relu_pair(seed, samples, x_units, y_units, shared, x_dead=0, y_dead=0):
    """Two ReLU layers sharing `shared` latent dims, with dead (all-zero) columns appended."""
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((samples, shared))
    sides = []
    for units, dead in ((x_units, x_dead), (y_units, y_dead)):
        sources = np.hstack([latent, rng.standard_normal((samples, units - shared))])
        live = np.maximum(sources @ rng.standard_normal((units, units)) + 0.5, 0.0)
        sides.append(np.hstack([live, np.zeros((samples, dead))]))
    return sides[0], sides[1]


# compute_pwcca(x.T, y.T, epsilon=1e-10)[0] from pwcca.py (with cca_core.py) of
# github.com/google/svcca at commit 1f3fbf19bd31bd9b76e728ef75842aa1d9a4cd2b, run outside
# this project (numpy 2.4.6, python 3) on relu_pair(**case). The last two take its branch
# for a y with fewer live units, with the indexing bug fixed there (acts2[y_idxs] for
# acts1[y_idxs]); unfixed, the third raises IndexError and the fourth returns 0.3957113417183101.
SVCCA_CODE_REFERENCE = [
    (dict(seed=0, samples=500, x_units=6, y_units=8, shared=4), 0.3936336816092832),
    (dict(seed=1, samples=400, x_units=5, y_units=5, shared=3, x_dead=3), 0.504792995305269),
    (dict(seed=2, samples=600, x_units=8, y_units=4, shared=3), 0.5246259622948284),
    (dict(seed=3, samples=500, x_units=6, y_units=4, shared=2, y_dead=2), 0.4743093436048942),
]


@pytest.mark.parametrize("case, reference", SVCCA_CODE_REFERENCE)
def test_svcca_variant_reproduces_the_public_compute_pwcca(case, reference):
    x, y = relu_pair(**case)
    assert pwcca_similarity(x, y, variant="svcca") == pytest.approx(reference, abs=1e-6)
    # the paper's equation is a different number on the same input
    assert abs(pwcca_similarity(x, y, variant="equation") - reference) > 0.02


def test_svcca_variant_weighs_by_the_side_with_fewer_live_units():
    x, y = relu_pair(seed=2, samples=600, x_units=8, y_units=4, shared=3)
    correlations, weights = svcca_code_pwcca_weights(x, y)
    assert correlations.shape == weights.shape == (4,) and weights.sum() == pytest.approx(1.0)
    # y (4 live units < 8) sets the weights: dead columns added to y change nothing
    _, weights_dead_y = svcca_code_pwcca_weights(x, np.hstack([y, np.ones((600, 3))]))
    np.testing.assert_allclose(weights_dead_y, weights, atol=1e-12)


def hsic_cka(x, y) -> float:
    """Linear CKA from its definition: HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)), K = X X^T."""
    sample_count = x.shape[0]
    centring = np.eye(sample_count) - np.ones((sample_count, sample_count)) / sample_count

    def hsic(k, l):
        return np.trace(k @ centring @ l @ centring)

    k, l = x @ x.T, y @ y.T
    return hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l))


def test_linear_cka_matches_the_hsic_definition():
    rng = np.random.default_rng(15)
    for x, y in [graded_pair(rng, sample_count=80), relu_pair(4, 90, 7, 3, 2, x_dead=2)]:
        expected = hsic_cka(x, y)
        assert 0.05 < expected < 0.95
        assert linear_cka(x, y) == pytest.approx(expected, abs=1e-10)
        assert linear_cka(y, x) == pytest.approx(expected, abs=1e-10)


def test_linear_cka_invariances_by_hand():
    rng = np.random.default_rng(16)
    x, y = graded_pair(rng, sample_count=300)
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(x, 5.0 * x @ random_orthogonal(5, rng) + 3.0) == pytest.approx(1.0, abs=1e-12)
    cka = linear_cka(x, y)
    assert linear_cka(0.1 * x @ random_orthogonal(5, rng), 4.0 * y @ random_orthogonal(4, rng)) == pytest.approx(
        cka, abs=1e-12)
    # unlike CCA, stretching one direction changes it
    assert abs(linear_cka(x * np.array([10.0, 1, 1, 1, 1]), y) - cka) > 0.05
    with pytest.raises(SelectivityError, match="no non-constant units"):
        linear_cka(np.ones((300, 2)), y)
    with pytest.raises(SelectivityError, match="same stimuli"):
        linear_cka(x, y[:10])
