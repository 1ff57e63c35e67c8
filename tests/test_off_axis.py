"""The off-axis control on a real (smoke-size) digits sweep, checked against a plain forward pass
and distances computed in the test; the ratio's interval against its formula."""
import itertools
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from selectivity.config import ExperimentConfig, RegularizerSettings, TrainSettings
from selectivity.data.base import LabelledImages
from selectivity.measure import unit_activations
from selectivity.model_loading import load_run_model
from selectivity.models import create_model
from selectivity.store import run_path
from selectivity.sweep.analyses import AnalysisContext
from selectivity.sweep.layout import SweepFolder, SweepRun
from selectivity.sweep.off_axis import layer_activations, off_axis_control, ratio_of_means_interval
from selectivity.sweep.results import run_rows
from selectivity.train import train_run
from selectivity.setup import load_data
from tests.reference import reference_stratified_indices

LAYERS = ["relu1", "relu2", "relu3", "relu4"]
METHODS = ["svcca", "pwcca", "pwcca_svcca", "cka"]
TEST_IMAGES = 450  # the whole digits test set; 45 units per layer at most


def settings(alpha, seed) -> ExperimentConfig:
    return ExperimentConfig(train=TrainSettings(epochs=1), regularizer=RegularizerSettings(alpha=alpha),
                            seed=seed, device="cpu")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """alpha = 0 at seeds 0, 1, 2 and alpha = -10 at seed 0 (one epoch each)."""
    store = tmp_path_factory.mktemp("sweep") / "runs"
    made = []
    for alpha, seed in [(0.0, 0), (0.0, 1), (0.0, 2), (-10.0, 0)]:
        config = settings(alpha, seed)
        made.append(SweepRun(config, format(alpha, "g"), run_path(store, config)))
        train_run(config, made[-1].path, progress=False)
    return made


def context(runs, folder):
    """What the sweep hands an analysis: the done runs and their rows of the results table."""
    table = pd.concat([run_rows(run) for run in runs], ignore_index=True)
    return AnalysisContext(folder=SweepFolder(folder), runs=runs, table=table)


def plain_eval_activations(model, images, mean, std) -> dict[str, np.ndarray]:
    """Post-ReLU spatial means of `images` by one plain eval-mode forward pass with hooks."""
    model.eval()
    captured = {}
    handles = [getattr(model, name).register_forward_hook(
        lambda module, inputs, output, name=name: captured.__setitem__(name, output.mean(dim=(2, 3))
                                                                      if output.dim() == 4 else output))
        for name in LAYERS]
    scaled = (images.float() / 255 - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)
    with torch.no_grad():
        model(scaled)
    for handle in handles:
        handle.remove()
    return {name: units.numpy() for name, units in captured.items()}


def test_activations_are_a_stratified_test_sample_in_eval_mode(runs):
    run = runs[3]
    data = load_data(run.config)
    model = load_run_model(run.path, run.config, data).model
    chosen = reference_stratified_indices(data.test.images.numpy(), data.test.labels.numpy(), TEST_IMAGES, 0)
    expected = plain_eval_activations(model, data.test.images[chosen], data.mean, data.std)
    model.train()  # the evaluation path must switch to eval mode itself
    got = layer_activations(run, data, TEST_IMAGES)
    assert list(got) == LAYERS
    for name in LAYERS:
        assert got[name].dtype == np.float32  # float32 keeps float32's rank tolerance in CCA
        np.testing.assert_allclose(got[name], expected[name], atol=1e-5)
    assert (run.path / f"off_axis_activations_test_stratified{TEST_IMAGES}_seed0_eval.npz").exists()


def test_unit_activations_take_the_first_images_in_eval_mode_and_restore_the_mode():
    torch.manual_seed(0)
    model = create_model("small_cnn", num_classes=10)
    for module in model.modules():  # running statistics unlike any batch's: train mode would differ
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
    images = torch.randint(0, 256, (30, 1, 8, 8), dtype=torch.uint8)
    split = LabelledImages(images, torch.arange(30) % 10)
    expected = plain_eval_activations(model, images[:25], (0.3,), (0.2,))
    model.train()
    got = unit_activations(model, split, (0.3,), (0.2,), num_images=25, batch_size=7)
    assert model.training
    for name in LAYERS:
        np.testing.assert_allclose(got[name].numpy(), expected[name], atol=1e-5)


def hsic_cka_distance(x, y) -> float:
    """1 - linear CKA, written from the HSIC definition."""
    n = x.shape[0]
    centring = np.eye(n) - np.ones((n, n)) / n
    k, l = x.astype(float) @ x.T.astype(float), y.astype(float) @ y.T.astype(float)
    hsic = lambda a, b: np.trace(a @ centring @ b @ centring)  # noqa: E731
    return 1 - hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l))


def subsample_by_hand(units: np.ndarray, max_units: int, seed: int = 0) -> np.ndarray:
    """The documented unit subsample: max_units units drawn without replacement by numpy's seeded
    generator, kept in their original order (all of them when there are no more)."""
    if units.shape[1] <= max_units:
        return units
    return units[:, np.sort(np.random.default_rng(seed).choice(units.shape[1], size=max_units, replace=False))]


def pwcca_distance_by_hand(x, y) -> float:
    """1 - PWCCA of Morcos et al. (2018), written from the paper in float64.

    CCA of the centred activations via QR and SVD: the singular values of Qx^T Qy are the
    canonical correlations rho_i, and Qx times the left singular vectors are x's unit-norm
    canonical variates h_i. Weights alpha_i = sum over x's neurons x_j of |<h_i, x_j>|, the
    paper's equation; PWCCA = sum_i alpha_i rho_i / sum_i alpha_i.
    """
    x, y = x.astype(np.float64), y.astype(np.float64)
    x, y = x[:, x.max(0) != x.min(0)], y[:, y.max(0) != y.min(0)]  # dead units carry no variance
    x, y = x - x.mean(0), y - y.mean(0)
    basis_x, _ = np.linalg.qr(x)  # [N, Ux]
    basis_y, _ = np.linalg.qr(y)  # [N, Uy]
    left, correlations, _ = np.linalg.svd(basis_x.T @ basis_y, full_matrices=False)  # [Ux, m], [m]
    variates = basis_x @ left  # [N, m], orthonormal columns
    weights = np.abs(variates.T @ x).sum(axis=1)  # [m]
    return 1 - float(np.sum(weights * np.minimum(correlations, 1.0)) / weights.sum())


def expected_interval(numerator, denominator):
    """Delta-method t-interval of log(mean ratio), Welch-Satterthwaite degrees of freedom."""
    mean_n, mean_d = np.mean(numerator), np.mean(denominator)
    a = np.var(numerator, ddof=1) / len(numerator) / mean_n**2
    b = np.var(denominator, ddof=1) / len(denominator) / mean_d**2
    dof = (a + b) ** 2 / (a**2 / (len(numerator) - 1) + b**2 / (len(denominator) - 1))
    half_width = stats.t.ppf(0.975, dof) * np.sqrt(a + b)
    ratio = mean_n / mean_d
    return ratio, ratio * np.exp(-half_width), ratio * np.exp(half_width)


def test_rows_pool_seeds_and_match_distances_computed_here(runs, tmp_path):
    rows = pd.DataFrame(off_axis_control(context(runs, tmp_path)))
    ratios = rows[rows["layer"] != "network"]
    assert set(ratios["run_id"]) == {"off_axis/-10"} and set(ratios["seed"]) == {-1}
    assert len(ratios) == len(LAYERS) * len(METHODS) * 5 and np.isfinite(ratios["value"]).all()
    assert ratios.groupby("layer")["layer_index"].first().to_dict() == {"relu1": 0, "relu2": 1, "relu3": 2, "relu4": 3}
    network = rows[rows["layer"] == "network"]
    assert network.loc[network["metric"] == "pwcca_subsample", "value"].tolist() == [TEST_IMAGES]
    # every run records the sample: seed 0 and each class's count (the whole digits test split here)
    labels = load_data(runs[0].config).test.labels.numpy()
    for run in runs:
        recorded = network[network["run_id"] == run.run_id].set_index("metric")["value"]
        assert recorded["off_axis_subset_seed"] == 0
        assert {k: recorded[f"off_axis_subset_count:{k}"] for k in range(10)} == {
            k: int((labels == k).sum()) for k in range(10)}
    value = ratios.set_index(["layer", "metric"])["value"]
    data = load_data(runs[0].config)
    nets = [plain_eval_activations(load_run_model(run.path, run.config, data).model,
                                   data.test.images[:TEST_IMAGES], data.mean, data.std) for run in runs]
    base, regularized = nets[:3], nets[3]
    for layer in LAYERS:
        def units(net):
            return subsample_by_hand(net[layer], TEST_IMAGES // 10, seed=0)
        # numerator: the seed-0 regularized net against the alpha = 0 nets of seeds 1 and 2 only
        numerator = [hsic_cka_distance(units(regularized), units(b)) for b in base[1:]]
        denominator = [hsic_cka_distance(units(a), units(b)) for a, b in itertools.combinations(base, 2)]
        ratio, low, high = expected_interval(numerator, denominator)
        assert value[layer, "cka_ratio"] == pytest.approx(ratio, rel=1e-4)
        assert value[layer, "cka_ratio_ci_low"] == pytest.approx(low, rel=1e-4)
        assert value[layer, "cka_ratio_ci_high"] == pytest.approx(high, rel=1e-4)
        assert (value[layer, "cka_ratio_pairs"], value[layer, "cka_ratio_baseline_pairs"]) == (2, 3)
        # PWCCA: regularized side first; a baseline pair counts both orders
        pwcca = lambda a, b: pwcca_distance_by_hand(units(a), units(b))  # noqa: E731
        numerator = [pwcca(regularized, b) for b in base[1:]]
        denominator = [(pwcca(a, b) + pwcca(b, a)) / 2 for a, b in itertools.combinations(base, 2)]
        assert value[layer, "pwcca_ratio"] == pytest.approx(np.mean(numerator) / np.mean(denominator), rel=1e-4)


def test_a_copy_of_an_unregularized_net_is_closer_than_seed_to_seed(runs, tmp_path):
    """Seed 0's alpha = 0 network filed as an alpha = 1 run of seed 3: one numerator pair has distance 0."""
    config = settings(1.0, 3)
    copy = SweepRun(config, "1", tmp_path / "copy")
    shutil.copytree(runs[0].path, copy.path, ignore=shutil.ignore_patterns("off_axis_activations_*"))
    rows = pd.DataFrame(off_axis_control(context(runs[:3] + [copy], tmp_path)))
    ratios = rows[rows["metric"].isin([f"{method}_ratio" for method in METHODS])]
    assert len(ratios) == len(LAYERS) * len(METHODS) and (ratios["value"] < 0.9).all()


def test_needs_two_unregularized_seeds(runs, tmp_path):
    with pytest.warns(UserWarning, match="needs >= 2 alpha = 0 seeds"):
        assert off_axis_control(context([runs[0], runs[3]], tmp_path)) == []


def test_ratio_interval_by_hand():
    ratio, low, high = ratio_of_means_interval([0.3, 0.5], [0.2, 0.2, 0.2])
    # only the numerator varies: se(log R) = sd / (sqrt(2) * 0.4) = 0.25, 1 dof
    assert ratio == pytest.approx(2.0)
    assert (low, high) == pytest.approx((2.0 * np.exp(-12.7062047 * 0.25), 2.0 * np.exp(12.7062047 * 0.25)))
    assert ratio_of_means_interval([0.3, 0.5, 0.4], [0.2, 0.3]) == pytest.approx(
        expected_interval([0.3, 0.5, 0.4], [0.2, 0.3]))
    ratio, low, high = ratio_of_means_interval([0.4], [0.2, 0.3])
    assert ratio == pytest.approx(1.6) and np.isnan(low) and np.isnan(high)
    assert ratio_of_means_interval([0.4, 0.4], [0.2, 0.2]) == (2.0, 2.0, 2.0)
