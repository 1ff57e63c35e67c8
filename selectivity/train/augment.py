"""Random crop (zero padding) and horizontal flip for whole uint8 batches, on any device.

Same distribution as torchvision's RandomCrop(size, padding=p) + RandomHorizontalFlip():
each image gets its own crop offsets, uniform in [0, 2p] for rows and columns, and a flip
with probability 1/2. All randomness for an epoch is drawn up front from one generator, so
a resumed run replays it exactly.
"""
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class EpochRandomness:
    order: torch.Tensor  # [N] permutation of the training set
    row_offsets: torch.Tensor  # [N] crop offsets in [0, 2p]
    column_offsets: torch.Tensor  # [N]
    flips: torch.Tensor  # [N] bool

    def to(self, device: torch.device) -> "EpochRandomness":
        return EpochRandomness(*(t.to(device, non_blocking=True) for t in vars(self).values()))


def draw_epoch_randomness(generator: torch.Generator, num_images: int, padding: int, flip: bool) -> EpochRandomness:
    """Data order and per-image augmentation choices for one epoch (drawn on the CPU)."""
    order = torch.randperm(num_images, generator=generator)
    offsets = torch.randint(0, 2 * padding + 1, (2, num_images), generator=generator)
    flips = torch.randint(0, 2, (num_images,), generator=generator).bool() if flip else torch.zeros(num_images, dtype=torch.bool)
    return EpochRandomness(order, offsets[0], offsets[1], flips)


def crop_and_flip(
    images: torch.Tensor, row_offsets: torch.Tensor, column_offsets: torch.Tensor, flips: torch.Tensor, padding: int
) -> torch.Tensor:
    """Crop each zero-padded image at its offsets, then mirror the flagged ones, in one gather.

    Args:
        images: [B, C, H, W] (any dtype).
        row_offsets, column_offsets: [B] integers in [0, 2 * padding].
        flips: [B] bool.
        padding: zero padding on every side before cropping back to H x W.

    Returns:
        [B, C, H, W] augmented images.
    """
    batch, channels, height, width = images.shape
    padded = torch.nn.functional.pad(images, (padding, padding, padding, padding))  # [B, C, H+2p, W+2p]
    device = images.device
    rows = row_offsets.unsqueeze(1) + torch.arange(height, device=device)  # [B, H]
    columns = column_offsets.unsqueeze(1) + torch.arange(width, device=device)  # [B, W]
    columns = torch.where(flips.unsqueeze(1), columns.flip(1), columns)  # a flip reads columns backwards
    return padded[
        torch.arange(batch, device=device).view(batch, 1, 1, 1),
        torch.arange(channels, device=device).view(1, channels, 1, 1),
        rows.view(batch, 1, height, 1),
        columns.view(batch, 1, 1, width),
    ]
