import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF

from selectivity.train.augment import crop_and_flip, draw_epoch_randomness


def test_matches_torchvision_pad_crop_flip_exactly():
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (6, 3, 8, 10), dtype=torch.uint8, generator=generator)
    rows, columns = torch.tensor([0, 8, 3, 4, 1, 7]), torch.tensor([8, 0, 5, 2, 6, 1])
    flips = torch.tensor([False, True, True, False, True, False])
    got = crop_and_flip(images, rows, columns, flips, padding=4)
    for i in range(6):
        padded = TF.pad(images[i], [4, 4, 4, 4], fill=0)
        expected = TF.crop(padded, int(rows[i]), int(columns[i]), 8, 10)
        if flips[i]:
            expected = TF.horizontal_flip(expected)
        assert torch.equal(got[i], expected)


def test_offsets_and_flips_are_uniform_and_independent():
    """Chi-square tests on 90,000 draws: 9 offsets per axis (padding 4) and a fair flip."""
    randomness = draw_epoch_randomness(torch.Generator().manual_seed(1), 90_000, padding=4, flip=True)
    critical = {8: 26.12, 1: 10.83, 80: 124.84}  # chi-square 0.999 quantiles for these dof
    for offsets in (randomness.row_offsets, randomness.column_offsets):
        counts = np.bincount(offsets.numpy(), minlength=9)
        assert len(counts) == 9  # never outside [0, 2p]
        assert ((counts - 10_000) ** 2 / 10_000).sum() < critical[8]
    flips = np.bincount(randomness.flips.numpy().astype(int), minlength=2)
    assert ((flips - 45_000) ** 2 / 45_000).sum() < critical[1]
    joint = np.bincount((randomness.row_offsets * 9 + randomness.column_offsets).numpy(), minlength=81)
    assert ((joint - 90_000 / 81) ** 2 / (90_000 / 81)).sum() < critical[80]
    assert sorted(randomness.order.tolist()) == list(range(90_000))


def test_offsets_recovered_from_augmented_images_follow_the_draws():
    """Encode each pixel's column in its value; the output then reveals the crop and flip applied."""
    width = 12
    images = torch.arange(1, width + 1, dtype=torch.uint8).repeat(400, 1, 12, 1)  # [400, 1, 12, 12]
    randomness = draw_epoch_randomness(torch.Generator().manual_seed(2), 400, padding=2, flip=True)
    out = crop_and_flip(images, randomness.row_offsets, randomness.column_offsets, randomness.flips, 2)
    middle_row = out[:, 0, 6].long()  # [400, W]; 0 where the zero padding shows
    for i in range(400):
        source = [int(randomness.column_offsets[i]) + c - 2 for c in range(width)]  # original column read
        expected = [j + 1 if 0 <= j < width else 0 for j in source]
        if randomness.flips[i]:
            expected = expected[::-1]
        assert middle_row[i].tolist() == expected


@pytest.mark.parametrize("flip", [True, False])
def test_no_flip_option_never_flips(flip):
    randomness = draw_epoch_randomness(torch.Generator().manual_seed(3), 1000, padding=0, flip=flip)
    assert bool(randomness.flips.any()) == flip
    assert int(randomness.row_offsets.max()) == 0
