"""The two containers every dataset loader returns, and the normalisation statistics."""
import math
from dataclasses import dataclass

import torch

from selectivity.errors import SelectivityError


@dataclass(frozen=True, eq=False)
class LabelledImages:
    """One split of a dataset, held whole in memory.

    Attributes:
        images: [N, C, H, W] uint8, contiguous.
        labels: [N] int64 class indices.
    """

    images: torch.Tensor  # [N, C, H, W] uint8
    labels: torch.Tensor  # [N] int64

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.dim() != 4 or not self.images.is_contiguous():
            raise SelectivityError(
                f"images must be a contiguous [N, C, H, W] uint8 tensor, got {self.images.dtype} "
                f"of shape {tuple(self.images.shape)}")
        if self.labels.dtype != torch.int64 or self.labels.shape != self.images.shape[:1]:
            raise SelectivityError(
                f"labels must be an int64 tensor of shape [{self.images.shape[0]}], got "
                f"{self.labels.dtype} of shape {tuple(self.labels.shape)}")

    def __len__(self) -> int:
        return self.images.shape[0]


@dataclass(frozen=True, eq=False)
class DatasetSplits:
    """A dataset's train and test splits with the metadata models and reports need.

    `mean` and `std` are per-channel statistics of the train images on a [0, 1] scale
    (population std, ddof=0), for input normalisation.
    """

    name: str
    train: LabelledImages
    test: LabelledImages
    class_names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self):
        if self.train.images.shape[1:] != self.test.images.shape[1:]:
            raise SelectivityError(
                f"{self.name}: train images are {tuple(self.train.images.shape[1:])} but test images "
                f"are {tuple(self.test.images.shape[1:])}; expected one [C, H, W] for both splits")
        for split_name, split in (("train", self.train), ("test", self.test)):
            if len(split) and (split.labels.min() < 0 or split.labels.max() >= self.num_classes):
                raise SelectivityError(
                    f"{self.name}: {split_name} labels span [{int(split.labels.min())}, "
                    f"{int(split.labels.max())}]; expected [0, {self.num_classes})")
        channels = self.image_shape[0]
        if len(self.mean) != channels or len(self.std) != channels:
            raise SelectivityError(
                f"{self.name}: mean/std have {len(self.mean)}/{len(self.std)} entries; "
                f"expected one per channel ({channels})")
        # a constant channel (std 0) or a damaged cache would turn every normalised input into inf/NaN
        if not all(math.isfinite(m) for m in self.mean) or not all(math.isfinite(v) and v > 0 for v in self.std):
            raise SelectivityError(
                f"{self.name}: normalisation mean {tuple(self.mean)} / std {tuple(self.std)}; expected finite "
                "means and stds > 0 (a channel that never varies cannot be normalised)")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of every image in both splits."""
        channels, height, width = self.train.images.shape[1:]
        return int(channels), int(height), int(width)


def channel_mean_std(images: torch.Tensor, chunk_size: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and population std of uint8 images on a [0, 1] scale.

    Summed in float64 over chunks so a 100k-image split never needs a float copy of itself.

    Args:
        images: [N, C, H, W] uint8.
        chunk_size: images converted to float64 at a time.
    Returns:
        (mean, std), each a tuple of C floats.
    """
    channels = images.shape[1]
    total = torch.zeros(channels, dtype=torch.float64)
    total_of_squares = torch.zeros(channels, dtype=torch.float64)
    for start in range(0, images.shape[0], chunk_size):
        chunk = images[start:start + chunk_size].to(torch.float64) / 255.0  # [n, C, H, W]
        total += chunk.sum(dim=(0, 2, 3))
        total_of_squares += chunk.square().sum(dim=(0, 2, 3))
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / count
    variance = (total_of_squares / count - mean.square()).clamp_min(0.0)
    return tuple(mean.tolist()), tuple(variance.sqrt().tolist())


class MissingSourceError(SelectivityError):
    """A dataset file or folder is absent (as opposed to present but unreadable): a download may help."""


def download_and_extract_archive(*args, **kwargs) -> None:
    """torchvision's downloader (checksum, resume, extraction), imported only when a dataset is fetched:
    torchvision is an optional extra, and nothing else in the data stage needs it."""
    try:
        from torchvision.datasets.utils import download_and_extract_archive as download
    except (ImportError, RuntimeError) as error:
        raise SelectivityError(f"--download needs torchvision ({' '.join(str(error).split())}); expected "
                               "`pip install torchvision` built for the installed torch, or the dataset's "
                               "files already in --data-root") from None
    download(*args, **kwargs)

