"""Seeded, class-stratified subsets of a split: what an analysis uses instead of "the first N".

Datasets on disk are ordered by class (every image-folder tree is, and so is the CIFAR-10
copy the results use), so the first 1,000 test images of CIFAR-10 are all airplanes. A
subset here keeps each class's share of the split (largest-remainder rounding, ties to the
lower class label) and picks, within a class, the images whose seeded content hash is
smallest. Hashing the image bytes (not drawing positions) makes the chosen images the same
whatever order the files come in; the seed changes which ones.
"""
import hashlib
from dataclasses import dataclass

import torch

from selectivity.data.base import LabelledImages
from selectivity.errors import SelectivityError


@dataclass(frozen=True)
class Subset:
    """A subset of a split: the images, their positions in the split and how they were drawn."""

    split: LabelledImages
    indices: torch.Tensor  # [n] int64 positions in the source split, ascending
    seed: int
    per_class: dict[int, int]  # class label -> images taken

    def metric_values(self, prefix: str) -> list[tuple[str, float]]:
        """How it was drawn, as result rows: (<prefix>_subset_seed, seed), (<prefix>_subset_count:<class>, n)."""
        return [(f"{prefix}_subset_seed", float(self.seed))] + [
            (f"{prefix}_subset_count:{label}", float(count)) for label, count in sorted(self.per_class.items())]

    def description(self) -> str:
        """One line for result files: 'seed 0, per class 0:100 1:100 ...'."""
        counts = " ".join(f"{label}:{count}" for label, count in sorted(self.per_class.items()))
        return f"class-stratified, seed {self.seed}, per class {counts}"


def class_quotas(class_sizes: dict[int, int], count: int) -> dict[int, int]:
    """{label: images to take} summing to `count`, proportional to each class's size."""
    total = sum(class_sizes.values())
    exact = {label: count * size / total for label, size in class_sizes.items()}
    quotas = {label: int(share) for label, share in exact.items()}
    left = count - sum(quotas.values())
    # largest fractional part first; a tie goes to the lower label, so the result is order-free
    for label in sorted(exact, key=lambda label: (-(exact[label] - quotas[label]), label))[:left]:
        quotas[label] += 1
    return quotas


def image_keys(images: torch.Tensor, seed: int) -> list[bytes]:
    """A seeded hash of each image's bytes: the within-class order, independent of file order."""
    salt = int(seed).to_bytes(8, "little", signed=False)
    flat = images.reshape(len(images), -1).contiguous().numpy()
    return [hashlib.blake2b(row.tobytes(), digest_size=8, salt=salt[:8]).digest() for row in flat]


def check_subset_request(count, seed) -> None:
    """A subset size >= 1 and a seed in [0, 2**64) (the 8-byte salt of the keys), else one line."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise SelectivityError(f"subset size {count!r}; expected an integer >= 1")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64:
        raise SelectivityError(f"subset seed {seed!r}; expected an integer in [0, 2**64)")


def stratified_subset(split: LabelledImages, count: int, seed: int = 0) -> Subset:
    """`count` images of `split`, each class in its share of the split, chosen by seed.

    Args:
        split: images [N, C, H, W] uint8 and labels [N].
        count: how many; at least 1, at most N (count >= N takes the whole split).
        seed: an integer in [0, 2**64).
    Returns:
        The Subset, its images in the split's order.
    """
    check_subset_request(count, seed)
    if count >= len(split.labels):
        classes, sizes = torch.unique(split.labels, return_counts=True)
        per_class = {int(label): int(size) for label, size in zip(classes, sizes)}
        return Subset(split, torch.arange(len(split.labels)), seed, per_class)
    indices, quotas = stratified_positions(split.labels, image_keys(split.images, seed), count)
    subset = LabelledImages(split.images[indices].contiguous(), split.labels[indices].contiguous())
    return Subset(subset, indices, seed, quotas)


def stratified_positions(labels: torch.Tensor, keys: list[bytes], count: int) -> tuple[torch.Tensor, dict[int, int]]:
    """Ascending positions of `count` inputs, each class in its share, the smallest `keys` within a class.

    Args:
        labels: [N] class labels.
        keys: one sortable key per input that does not depend on its position (a seeded hash of
            the image, or of a file's path inside its tree).
        count: how many, 1 <= count < N.
    Returns:
        (positions [count] int64, {label: inputs taken}).
    """
    classes, sizes = torch.unique(labels, return_counts=True)
    quotas = class_quotas({int(label): int(size) for label, size in zip(classes, sizes)}, count)
    chosen = []
    for label, quota in quotas.items():
        members = torch.nonzero(labels == label).flatten().tolist()
        members.sort(key=lambda index: keys[index])
        chosen += members[:quota]
    return torch.tensor(sorted(chosen), dtype=torch.int64), quotas


def name_keys(names: list[str], seed: int) -> list[bytes]:
    """A seeded hash of each file's path inside its tree: an order-free key that needs no decoding."""
    salt = int(seed).to_bytes(8, "little", signed=False)
    return [hashlib.blake2b(name.encode(), digest_size=8, salt=salt).digest() for name in names]
