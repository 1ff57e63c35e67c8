"""Generated common corruptions against closed forms and independent numpy computations."""
import io

import numpy as np
import pytest
import torch
from PIL import Image

from selectivity.analysis.corruptions import CORRUPTIONS, corrupt_images, disk_kernel, read_corruption_file
from selectivity.errors import SelectivityError


def grey(value: int, count: int = 8, size: int = 32) -> torch.Tensor:
    return torch.full((count, 3, size, size), value, dtype=torch.uint8)


def random_images(count=6, size=32, seed=0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (count, 3, size, size), dtype=np.uint8))


def test_gaussian_noise_uses_each_datasets_published_sigma():
    # mid-grey keeps clipping negligible: the output's std is sigma * 255 (CIFAR-10-C: 0.04 ... 0.10)
    for severity, sigma in zip((1, 3, 5), (0.04, 0.08, 0.10)):
        noisy = corrupt_images(grey(128), "cifar10", "gaussian_noise", severity).double()
        assert noisy.std().item() == pytest.approx(sigma * 255, rel=0.03)
    # Tiny-ImageNet-C has its own table (severity 3 is 0.12, not CIFAR's 0.08)
    tiny = corrupt_images(grey(128, size=64), "tiny-imagenet", "gaussian_noise", 3).double()
    assert tiny.std().item() == pytest.approx(0.12 * 255, rel=0.03)


def test_noise_is_seeded():
    first = corrupt_images(grey(128), "cifar10", "gaussian_noise", 2, seed=1)
    assert torch.equal(first, corrupt_images(grey(128), "cifar10", "gaussian_noise", 2, seed=1))
    assert not torch.equal(first, corrupt_images(grey(128), "cifar10", "gaussian_noise", 2, seed=2))


def test_shot_noise_is_poisson_with_rate_c():
    # x = 128/255, out = Poisson(x c) / c: mean x, variance x / c (CIFAR-10-C severity 2: c = 250)
    noisy = corrupt_images(grey(128, count=20), "cifar10", "shot_noise", 2).double() / 255
    x = 128 / 255
    assert noisy.var().item() == pytest.approx(x / 250, rel=0.05)
    assert noisy.mean().item() == pytest.approx(x - 0.5 / 255, abs=2e-3)  # truncation drops half a level


def test_impulse_noise_sets_a_share_c_of_values_to_black_or_white():
    images = grey(100, count=20)
    noisy = corrupt_images(images, "cifar10", "impulse_noise", 5)  # c = 0.07
    changed = noisy != images
    assert changed.double().mean().item() == pytest.approx(0.07, abs=0.005)
    assert set(noisy[changed].unique().tolist()) == {0, 255}
    assert (noisy[changed] == 255).double().mean().item() == pytest.approx(0.5, abs=0.03)


def test_contrast_has_the_closed_form_and_truncates():
    images = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    images[:, :, :, 16:] = 255  # channel mean 0.5
    out = corrupt_images(images, "cifar10", "contrast", 1)  # c = 0.75: 0 -> 0.125, 1 -> 0.875
    assert set(out[:, :, :, :16].unique().tolist()) == {31}  # 31.875 truncated, as np.uint8 does
    assert set(out[:, :, :, 16:].unique().tolist()) == {223}  # 223.125


def test_contrast_pulls_each_channel_to_its_own_mean():
    """make_cifar_c.py: means = np.mean(x, axis=(0, 1), keepdims=True) on an HWC image, i.e. per channel."""
    images = random_images(count=3)
    images[:, 0] //= 4  # channels with clearly different means
    x = images.numpy().astype(np.float64) / 255.0
    means = x.mean(axis=(2, 3), keepdims=True)  # [N, C, 1, 1]
    expected = (np.clip((x - means) * 0.4 + means, 0, 1) * 255).astype(np.uint8)  # severity 3: c = 0.4
    np.testing.assert_array_equal(corrupt_images(images, "cifar10", "contrast", 3).numpy(), expected)


def test_brightness_and_saturate_on_grey_follow_hsv():
    out = corrupt_images(grey(100), "cifar10", "brightness", 1)  # V + 0.05
    assert set(out.unique().tolist()) == {int((100 / 255 + 0.05) * 255)}
    # saturate severity 4: S = 0 * 2 + 0.1 at hue 0 (red): R = V, G = B = V (1 - 0.1)
    out = corrupt_images(grey(200), "cifar10", "saturate", 4)
    assert set(out[:, 0].unique().tolist()) == {200}
    assert set(out[:, 1:].unique().tolist()) == {int(200 / 255 * 0.9 * 255)}


def test_defocus_kernel_matches_the_generators_disk():
    # radius 0.3 keeps only the centre; cv2's 3-tap Gaussian (sigma 0.4) then spreads it
    taps = np.exp(-np.array([1.0, 0.0, 1.0]) / (2 * 0.4**2))
    taps /= taps.sum()
    expected = np.zeros((17, 17))
    expected[7:10, 7:10] = np.outer(taps, taps)
    np.testing.assert_allclose(disk_kernel(0.3, 0.4), expected, atol=1e-12)
    wide = disk_kernel(3, 0.1)
    assert wide.sum() == pytest.approx(1.0) and np.allclose(wide, wide.T) and wide[8, 8 + 4] < 1e-6


def test_gaussian_blur_matches_an_independent_convolution():
    images = random_images(count=2)
    sigma = 0.8  # CIFAR-10-C severity 4
    out = corrupt_images(images, "cifar10", "gaussian_blur", 4).numpy().astype(int)
    radius = int(4 * sigma + 0.5)  # truncate = 4, as skimage
    taps = np.exp(-np.arange(-radius, radius + 1) ** 2 / (2 * sigma**2))
    taps /= taps.sum()
    x = np.pad(images.numpy() / 255.0, ((0, 0), (0, 0), (radius, radius), (radius, radius)), mode="edge")
    rows = sum(w * x[:, :, i : i + 32, :] for i, w in enumerate(taps))
    blurred = sum(w * rows[:, :, :, i : i + 32] for i, w in enumerate(taps))
    expected = (np.clip(blurred, 0, 1) * 255).astype(int)
    assert np.abs(out - expected).max() <= 1 and (out == expected).mean() > 0.99


def test_pixelate_and_jpeg_are_pillows():
    images = random_images(count=2, size=64)
    out = corrupt_images(images, "tiny-imagenet", "pixelate", 5).numpy().astype(int)  # 64 -> 32 -> 64
    blocks = images.numpy().reshape(2, 3, 32, 2, 32, 2).mean(axis=(3, 5))
    assert np.abs(out - np.repeat(np.repeat(blocks, 2, axis=2), 2, axis=3)).max() <= 1
    image = random_images(count=1)
    buffer = io.BytesIO()
    Image.fromarray(image[0].numpy().transpose(1, 2, 0)).save(buffer, "JPEG", quality=80)
    expected = np.asarray(Image.open(buffer)).transpose(2, 0, 1)
    assert np.array_equal(corrupt_images(image, "cifar10", "jpeg_compression", 1)[0].numpy(), expected)


def test_every_corruption_gives_contiguous_uint8_images_of_the_same_shape():
    images = random_images(count=2)
    for name in CORRUPTIONS:
        out = corrupt_images(images, "cifar10", name, 5)
        assert out.dtype == torch.uint8 and out.shape == images.shape and out.is_contiguous(), name
        assert not torch.equal(out, images), name  # severity 5 changes every image


def test_bad_names_are_refused_in_one_line():
    with pytest.raises(SelectivityError, match="no published corruption parameters for dataset 'mnist'"):
        corrupt_images(grey(1), "mnist", "contrast", 1)
    with pytest.raises(SelectivityError, match="unknown corruption 'fog'"):
        corrupt_images(grey(1), "cifar10", "fog", 1)
    with pytest.raises(SelectivityError, match="severity 6"):
        corrupt_images(grey(1), "cifar10", "contrast", 6)


def test_corruption_files_are_read_by_severity_block(tmp_path):
    # 5 severities x 4 images, each image filled with its severity; labels 0..19
    images = np.repeat(np.arange(1, 6, dtype=np.uint8), 4)[:, None, None, None] * np.ones((1, 8, 8, 3), np.uint8)
    np.save(tmp_path / "contrast.npy", images)
    np.save(tmp_path / "labels.npy", np.arange(20, dtype=np.uint8))
    block, labels = read_corruption_file(tmp_path, "contrast", 3, 2)
    assert block.shape == (2, 3, 8, 8) and set(block.unique().tolist()) == {3}
    assert labels.tolist() == [8, 9] and labels.dtype == torch.int64
    with pytest.raises(SelectivityError, match="does not exist"):
        read_corruption_file(tmp_path, "pixelate", 1, 2)
    with pytest.raises(SelectivityError, match="4 images per severity"):
        read_corruption_file(tmp_path, "contrast", 1, 5)
