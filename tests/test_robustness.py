"""Robustness and dimensionality of one model through measure_model's perturb/observe hooks, on planted models."""
import numpy as np
import pytest
import torch
from torch import nn

from selectivity.analysis.corruptions import corrupt_images
from selectivity.data.base import LabelledImages
from selectivity.errors import SelectivityError
from selectivity.measure import measure_model
from selectivity.sweep.robustness import (ModelUnderTest, corruption_accuracies, layer_dimensionalities,
                                          parse_perturbation)

K = 4


class Memorizer(nn.Module):
    """Knows a set of images exactly: predicts an image's stored label, any other image's label + 1 (wrong)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        super().__init__()
        self.seen = nn.Identity()  # a capturable, non-negative unit layer (the normalised pixels, mean 0 std 1)
        self.keys, self.labels = images.flatten(1).float(), labels

    def forward(self, x):
        flat = self.seen(x.flatten(1))
        distance = torch.cdist(flat * 255, self.keys)  # [B, M] in grey levels
        nearest = distance.argmin(1)
        exact = distance.gather(1, nearest[:, None])[:, 0] < 1e-3
        return nn.functional.one_hot(torch.where(exact, self.labels[nearest], 0), K).float() * exact[:, None] \
            + nn.functional.one_hot(torch.full_like(nearest, 1), K).float() * (~exact[:, None])


def clean_split(count=40, size=8, seed=0) -> LabelledImages:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (count, 3, size, size), generator=generator, dtype=torch.uint8)
    return LabelledImages(images, torch.full((count,), 2, dtype=torch.int64))  # label 2: a miss predicts 1


def target_for(model) -> ModelUnderTest:
    return ModelUnderTest(model, K, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), layers=["seen"], batch_size=16)


def test_corruption_files_give_the_planted_accuracy_per_severity(tmp_path):
    split = clean_split()
    # severity s keeps the first 8 s images clean and blanks the rest: accuracy 8 s / 40
    images = np.concatenate([split.images.numpy().copy() for _ in range(5)]).transpose(0, 2, 3, 1).copy()
    for severity in range(1, 6):
        images[(severity - 1) * 40 + 8 * severity : severity * 40] = 0
    np.save(tmp_path / "contrast.npy", images)
    np.save(tmp_path / "labels.npy", np.tile(split.labels.numpy(), 5).astype(np.uint8))
    accuracies = corruption_accuracies(target_for(Memorizer(split.images, split.labels)), split, "cifar10",
                                       ("contrast",), folder=str(tmp_path))
    assert accuracies == {("contrast", s): pytest.approx(8 * s / 40) for s in range(1, 6)}


def test_generated_corruptions_use_the_dataset_table_severity_and_seed():
    split = clean_split()
    noisy = corrupt_images(split.images, "cifar10", "gaussian_noise", 2, seed=7)
    # the model knows the severity-2 noisy versions of the first half only
    target = target_for(Memorizer(noisy[:20], split.labels[:20]))
    accuracies = corruption_accuracies(target, split, "cifar10", ("gaussian_noise",), (1, 2, 3), seed=7)
    assert accuracies == {("gaussian_noise", 1): 0.0, ("gaussian_noise", 2): 0.5, ("gaussian_noise", 3): 0.0}
    assert corruption_accuracies(target, split, "cifar10", ("gaussian_noise",), (2,), seed=8)[
        ("gaussian_noise", 2)] == 0.0
    with pytest.raises(SelectivityError, match="no published corruption parameters for dataset 'digits'"):
        corruption_accuracies(target, split, "digits", ("gaussian_noise",), (2,))


def test_measure_model_hooks_see_every_batch_once():
    split = clean_split(count=37)
    model = Memorizer(split.images, split.labels)
    seen = []
    blank = measure_model(model, split, K, (0.0,) * 3, (1.0,) * 3, layers=["seen"], batch_size=10,
                          perturb=lambda images, labels: torch.zeros_like(images),
                          observe=lambda activations: seen.append(activations["seen"]))
    assert blank.accuracy == 0.0  # blank images are unknown: every prediction is the wrong class 1
    assert torch.equal(torch.cat(seen), torch.zeros(37, 3 * 8 * 8))
    assert measure_model(model, split, K, (0.0,) * 3, (1.0,) * 3, layers=["seen"],
                         perturb=lambda images, labels: images).accuracy == 1.0


def planted_images(count=1000, seed=0) -> torch.Tensor:
    """Grey 128 plus two orthogonal pixel patterns with equal random weights: rank 2 up to uint8 rounding."""
    rng = np.random.default_rng(seed)
    patterns, _ = np.linalg.qr(rng.standard_normal((16, 2)))
    pixels = 128 + (rng.standard_normal((count, 2)) * 40) @ patterns.T
    return torch.from_numpy(np.round(pixels).clip(0, 255).astype(np.uint8).reshape(count, 1, 4, 4))


def test_dimensionality_of_activations_and_of_a_corruptions_change():
    torch.manual_seed(0)
    linear = nn.Linear(16, 8, bias=False)
    with torch.no_grad():
        linear.weight.abs_()  # non-negative units on non-negative pixels (SI needs them)
    model = nn.Sequential(nn.Flatten(), linear, nn.Linear(8, K))
    images = planted_images()
    target = ModelUnderTest(model, K, (0.0,), (1.0,), layers=["1"], batch_size=250)
    split = LabelledImages(images, torch.zeros(len(images), dtype=torch.int64))
    result = layer_dimensionalities(target, split, 0.95, "gaussian_noise:1", "cifar10")["1"]
    assert result["dim_pcs"] == 2  # the planted rank
    # gaussian noise (sigma 0.04) is isotropic in pixels: the change's covariance is s^2 W W^T
    weight = linear.weight.detach().double().numpy()
    eigenvalues = np.linalg.eigvalsh(weight @ weight.T)
    assert result["perturbation_dim_pr"] == pytest.approx(eigenvalues.sum() ** 2 / (eigenvalues**2).sum(), rel=0.05)
    clean_only = layer_dimensionalities(target, split, 0.95)["1"]
    assert set(clean_only) == {"dim_pcs", "dim_pr"} and clean_only["dim_pr"] == pytest.approx(result["dim_pr"])


def test_perturbations_are_parsed_or_refused():
    assert parse_perturbation("gaussian_noise:3") == ("gaussian_noise", 3)
    assert parse_perturbation("pgd:2") == ("pgd", pytest.approx(2 / 255))
    for bad in ("gaussian_noise:6", "fog:1", "pgd:0", "pgd"):
        with pytest.raises(SelectivityError, match="expected '<corruption>:<severity 1-5>'"):
            parse_perturbation(bad)
