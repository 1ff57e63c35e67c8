"""Robustness and dimensionality of one model, on a test subset, through `measure_model`.

Beyond the paper (Leavitt & Morcos, "Linking average- and worst-case perturbation
robustness via class selectivity and dimensionality", arXiv 2010.07693):

    corruption_accuracies   accuracy under common corruptions (generated, or read from -C files)
    attack_accuracies       accuracy under white-box FGSM / PGD (L-inf, pixel scale, eval mode, fp32)
    layer_dimensionalities  per layer: PCs for a variance share and participation ratio of the
                            test activations, and of the change a perturbation causes

Every pass is `measure_model` (the one evaluation loop); perturbations enter through its
`perturb` hook and activations leave through its `observe` hook, batch by batch.
"""
import itertools
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from selectivity.analysis.attacks import fgsm, pgd
from selectivity.analysis.corruptions import CORRUPTIONS, corrupt_images, read_corruption_file
from selectivity.analysis.dimensionality import StreamingCovariance, components_for_variance, participation_ratio_of
from selectivity.capture import UnitCapture
from selectivity.data.base import LabelledImages
from selectivity.data.batches import normalize_images
from selectivity.data.subsets import Subset, stratified_subset
from selectivity.errors import SelectivityError
from selectivity.measure import measure_model

ATTACKS = ("fgsm", "pgd")


@dataclass(frozen=True)
class ModelUnderTest:
    """A model and what evaluating it needs (its data's classes and normalisation, its unit layers)."""

    model: nn.Module
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    layers: str | list[str] | tuple[str, ...] = "relu"
    batch_size: int = 500

    def measure(self, split: LabelledImages, perturb=None, observe=None):
        return measure_model(self.model.float(), split, self.num_classes, self.mean, self.std, layers=self.layers,
                             batch_size=self.batch_size, perturb=perturb, observe=observe)

    def logits_of(self, images: torch.Tensor) -> torch.Tensor:
        """Logits of [B, C, H, W] float images in [0, 1] (normalisation inside, so attacks see pixels)."""
        return self.model(normalize_images(images * 255.0, self.mean, self.std))


def test_subset(split: LabelledImages, count: int, seed: int = 0) -> Subset:
    """`count` images of a split, class-stratified and seeded (all of them when count >= its size).

    Never the first `count`: dataset files are ordered by class.
    """
    if count < 1:
        raise SelectivityError(f"images = {count}; expected at least 1 test image")
    return stratified_subset(split, count, seed)


def corruption_accuracies(target: ModelUnderTest, split: LabelledImages, dataset: str,
                          corruptions=CORRUPTIONS, severities=(1, 2, 3, 4, 5), folder: str = "",
                          seed: int = 0, indices: torch.Tensor | None = None) -> dict[tuple[str, int], float]:
    """{(corruption, severity): accuracy} on `split` corrupted (or on the -C files in `folder`).

    Args:
        target: the model.
        split: the clean test subset; with `folder`, the files' images at `indices` (the
            subset's positions in the test split, which the -C files follow) per severity are
            used instead, with their own labels.
        dataset: which published parameter table generates the corruptions ("cifar10", "tiny-imagenet").
        corruptions, severities: which to evaluate.
        folder: a CIFAR-10-C style folder (<corruption>.npy, labels.npy); "" = generate.
        seed: seed of the generated noise.
    """
    accuracies = {}
    for corruption in corruptions:
        for severity in severities:
            if folder:
                positions = torch.arange(len(split)) if indices is None else indices
                images, labels = read_corruption_file(folder, corruption, severity, int(positions.max()) + 1)
                corrupted = LabelledImages(images[positions].contiguous(), labels[positions])
            else:
                corrupted = LabelledImages(corrupt_images(split.images, dataset, corruption, severity, seed),
                                           split.labels)
            accuracies[(corruption, severity)] = target.measure(corrupted).accuracy
    return accuracies


def attack(target: ModelUnderTest, name: str, eps: float, steps: int = 10, step_size: float | None = None,
           random_start: bool = False, seed: int = 0) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A `perturb` hook for measure_model: each batch replaced by its FGSM or PGD adversarial images."""
    if name not in ATTACKS:
        raise SelectivityError(f"unknown attack {name!r}; expected one of {', '.join(ATTACKS)}")
    generator = torch.Generator().manual_seed(seed)

    def perturb(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if name == "fgsm":
            return fgsm(target.logits_of, images, labels, eps)
        return pgd(target.logits_of, images, labels, eps, steps, step_size, random_start, generator)

    return perturb


def attack_accuracies(target: ModelUnderTest, split: LabelledImages, attacks=ATTACKS,
                      eps_grid=(0.0, 0.25 / 255, 0.5 / 255, 1 / 255, 2 / 255), steps: int = 10,
                      step_size: float | None = None, random_start: bool = False,
                      seed: int = 0) -> dict[tuple[str, float], float]:
    """{(attack, eps): accuracy on `split` under that white-box attack} (eps in pixel units)."""
    return {(name, eps): target.measure(split, perturb=attack(target, name, eps, steps, step_size, random_start,
                                                              seed)).accuracy
            for name in attacks for eps in eps_grid}


def parse_perturbation(text: str) -> tuple[str, float]:
    """"gaussian_noise:3" -> ("gaussian_noise", 3); "pgd:1" -> ("pgd", 1/255): eps in 1/255 units."""
    name, _, level = text.partition(":")
    try:
        value = float(level)
    except ValueError:
        value = None
    if name in CORRUPTIONS and value in (1, 2, 3, 4, 5):
        return name, int(value)
    if name in ATTACKS and value is not None and value > 0:
        return name, value / 255
    raise SelectivityError(f"perturbation {text!r}; expected '<corruption>:<severity 1-5>' or "
                           "'fgsm|pgd:<eps in 1/255 units>', e.g. 'gaussian_noise:3' or 'pgd:1'")


def perturbation(target: ModelUnderTest, text: str, dataset: str, seed: int = 0):
    """A measure_model `perturb` hook for a parsed perturbation (a corruption draws new noise per batch)."""
    name, level = parse_perturbation(text)
    if name in ATTACKS:
        return attack(target, name, level, seed=seed)
    batches = itertools.count()  # each batch its own noise: one seed for all would repeat the pattern

    def corrupt(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        pixels = (images * 255).round().to(torch.uint8)  # exact: the images were uint8 / 255
        return corrupt_images(pixels, dataset, name, level, seed=seed * 1_000_003 + next(batches)).float() / 255

    return corrupt


class _CleanAlongside:
    """A perturb hook that first runs the clean batch and keeps its unit activations."""

    def __init__(self, target: ModelUnderTest, perturb):
        self.target, self.perturb, self.clean = target, perturb, {}

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        with UnitCapture(self.target.model, self.target.layers) as capture:
            self.target.model(normalize_images(images * 255.0, self.target.mean, self.target.std))
        self.clean = capture.activations
        return self.perturb(images, labels)


def layer_dimensionalities(target: ModelUnderTest, split: LabelledImages, threshold: float = 0.95,
                           perturb_with: str = "", dataset: str = "", seed: int = 0) -> dict[str, dict[str, float]]:
    """{layer: {"dim_pcs", "dim_pr"[, "perturbation_dim_pcs", "perturbation_dim_pr"]}}, one streamed pass.

    Args:
        target, split: the model and the test subset.
        threshold: share of variance the principal components must explain.
        perturb_with: "" (clean only) or a perturbation ("gaussian_noise:3", "pgd:1"): then also
            the dimensionality of (perturbed - clean) activations.
        dataset: the corruption parameter table, for a corruption perturbation.
    """
    clean, change = {}, {}
    paired = _CleanAlongside(target, perturbation(target, perturb_with, dataset, seed)) if perturb_with else None

    def accumulate(activations: dict[str, torch.Tensor]) -> None:
        for layer, units in activations.items():
            if paired is None:
                clean.setdefault(layer, StreamingCovariance()).update(units)
                continue
            clean.setdefault(layer, StreamingCovariance()).update(paired.clean[layer])
            change.setdefault(layer, StreamingCovariance()).update(units - paired.clean[layer])

    target.measure(split, perturb=paired, observe=accumulate)
    results = {}
    for layer, covariance in clean.items():
        results[layer] = _dimensions(covariance, threshold, "dim")
        if layer in change:
            results[layer].update(_dimensions(change[layer], threshold, "perturbation_dim"))
    return results


def _dimensions(covariance: StreamingCovariance, threshold: float, prefix: str) -> dict[str, float]:
    """PCs and PR of one covariance; NaN for a layer with no variance (all units dead)."""
    try:
        eigenvalues = covariance.eigenvalues()
    except SelectivityError:
        return {f"{prefix}_pcs": float("nan"), f"{prefix}_pr": float("nan")}
    return {f"{prefix}_pcs": float(components_for_variance(eigenvalues, threshold)),
            f"{prefix}_pr": participation_ratio_of(eigenvalues)}
