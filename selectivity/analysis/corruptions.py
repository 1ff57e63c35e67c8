"""Common corruptions (Hendrycks & Dietterich, ICLR 2019), generated on the fly, and -C files read from disk.

The severity parameters are the published per-dataset ones, copied from the generators in
github.com/hendrycks/robustness at commit 8190fe329f5f072a06e3a2aea02bb5dda69aed9f:
ImageNet-C/create_c/make_cifar_c.py (CIFAR-10-C) and make_tinyimagenet_c.py (Tiny-ImageNet-C).
The ImageNet-C values differ and are not used. The formulas follow those generators, with
numpy/scipy/Pillow in place of skimage and OpenCV, and end as they do with np.uint8 (truncation):

    gaussian_noise  clip(x + N(0, c)), x in [0, 1]          exact formula, different random draws
    shot_noise      clip(Poisson(x c) / c)                   exact formula, different random draws
    impulse_noise   salt & pepper on a share c of values     as skimage's random_noise(mode="s&p")
    defocus_blur    correlate with an antialiased disk        the generator's disk(), cv2 borders (reflect-101)
    gaussian_blur   Gaussian filter, sigma c, nearest border  as skimage.filters.gaussian (truncate 4)
    contrast        (x - channel mean) c + channel mean      exact
    brightness      HSV value + c                            HSV via matplotlib (same formulas as skimage)
    saturate        HSV saturation * c0 + c1                 HSV via matplotlib
    pixelate        Pillow BOX resize to c * size and back   exact (Pillow, as the generator)
    jpeg_compression  Pillow JPEG at quality c               exact up to the Pillow/libjpeg version

So generated images approximate the published files (noise draws differ; HSV and blur
rounding may differ in the last grey level); read the files when you have them.
"""
import io
from pathlib import Path

import numpy as np
import torch
from matplotlib.colors import hsv_to_rgb, rgb_to_hsv
from PIL import Image
from scipy import ndimage

from selectivity.errors import SelectivityError

SEVERITIES = (1, 2, 3, 4, 5)
CIFAR_PARAMETERS = {  # make_cifar_c.py
    "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),
    "shot_noise": (500, 250, 100, 75, 50),
    "impulse_noise": (0.01, 0.02, 0.03, 0.05, 0.07),
    "defocus_blur": ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),
    "gaussian_blur": (0.4, 0.6, 0.7, 0.8, 1.0),
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),
    "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),
    "saturate": ((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)),
    "pixelate": (0.95, 0.9, 0.85, 0.75, 0.65),
    "jpeg_compression": (80, 65, 58, 50, 40),
}
TINY_IMAGENET_PARAMETERS = {  # make_tinyimagenet_c.py
    "gaussian_noise": (0.04, 0.08, 0.12, 0.15, 0.18),
    "shot_noise": (250, 100, 50, 30, 15),
    "impulse_noise": (0.01, 0.02, 0.05, 0.08, 0.14),
    "defocus_blur": ((0.5, 0.6), (1, 0.1), (1.5, 0.1), (2.5, 0.01), (3, 0.1)),
    "gaussian_blur": (0.5, 0.75, 1.0, 1.25, 1.5),
    "contrast": (0.4, 0.3, 0.2, 0.1, 0.05),
    "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),
    "saturate": ((0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (30, 0.2)),
    "pixelate": (0.9, 0.8, 0.7, 0.6, 0.5),
    "jpeg_compression": (65, 58, 50, 40, 25),
}
PARAMETERS = {"cifar10": CIFAR_PARAMETERS, "tiny-imagenet": TINY_IMAGENET_PARAMETERS}
CORRUPTIONS = tuple(CIFAR_PARAMETERS)


def corruption_parameter(dataset: str, corruption: str, severity: int):
    """The published parameter c of `corruption` at `severity` (1-5) for `dataset`."""
    if dataset not in PARAMETERS:
        raise SelectivityError(f"no published corruption parameters for dataset {dataset!r}; expected one of "
                               f"{sorted(PARAMETERS)} (or give the corruption files' folder)")
    if corruption not in PARAMETERS[dataset]:
        raise SelectivityError(f"unknown corruption {corruption!r}; expected one of {', '.join(CORRUPTIONS)}")
    if severity not in SEVERITIES:
        raise SelectivityError(f"corruption severity {severity!r}; expected an integer 1-5")
    return PARAMETERS[dataset][corruption][severity - 1]


def disk_kernel(radius: float, alias_blur: float) -> np.ndarray:
    """The generator's defocus kernel: a normalised disk, then a small Gaussian blur to antialias it."""
    half_width, blur_size = (8, 3) if radius <= 8 else (int(np.ceil(radius)), 5)
    grid = np.arange(-half_width, half_width + 1)
    x, y = np.meshgrid(grid, grid)
    disk = ((x**2 + y**2) <= radius**2).astype(np.float64)
    disk /= disk.sum()
    # cv2.GaussianBlur(ksize=(k, k), sigmaX=alias_blur): a separable, normalised k-tap Gaussian
    taps = np.arange(blur_size) - blur_size // 2
    gauss = np.exp(-(taps**2) / (2 * alias_blur**2))
    gauss /= gauss.sum()
    disk = ndimage.correlate1d(disk, gauss, axis=0, mode="mirror")
    return ndimage.correlate1d(disk, gauss, axis=1, mode="mirror")


def _hsv_shift(x: np.ndarray, channel: int, scale: float, shift: float) -> np.ndarray:
    """x [N, C, H, W] in [0, 1] -> HSV, one channel * scale + shift clipped to [0, 1], back to RGB."""
    hsv = rgb_to_hsv(np.clip(x.transpose(0, 2, 3, 1), 0, 1))
    hsv[..., channel] = np.clip(hsv[..., channel] * scale + shift, 0, 1)
    return hsv_to_rgb(hsv).transpose(0, 3, 1, 2)


def _through_pillow(images: np.ndarray, edit) -> np.ndarray:
    """Apply `edit(PIL image) -> PIL image` to each uint8 [C, H, W] image."""
    out = np.empty_like(images)
    for index, image in enumerate(images):
        edited = edit(Image.fromarray(image.transpose(1, 2, 0).squeeze(-1) if image.shape[0] == 1
                                      else image.transpose(1, 2, 0)))
        out[index] = np.asarray(edited).reshape(image.shape[1], image.shape[2], -1).transpose(2, 0, 1)
    return out


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(buffer).convert(image.mode)


def _float_corruption(name: str, x: np.ndarray, c, rng: np.random.Generator) -> np.ndarray:
    """The corruptions computed on floats in [0, 1]; x is [N, C, H, W] float64."""
    if name == "gaussian_noise":
        return x + rng.normal(scale=c, size=x.shape)
    if name == "shot_noise":
        return rng.poisson(x * c) / c
    if name == "impulse_noise":
        flipped = rng.random(x.shape) < c
        salted = rng.random(x.shape) < 0.5
        return np.where(flipped, salted.astype(np.float64), x)
    if name == "defocus_blur":
        kernel = disk_kernel(*c)
        return ndimage.correlate(x, kernel[None, None], mode="mirror")  # cv2.filter2D's reflect-101 border
    if name == "gaussian_blur":
        return ndimage.gaussian_filter(x, sigma=(0, 0, c, c), mode="nearest", truncate=4.0)
    if name == "contrast":
        means = x.mean(axis=(2, 3), keepdims=True)
        return (x - means) * c + means
    if name == "brightness":
        return _hsv_shift(x, 2, 1.0, c)
    if name == "saturate":
        return _hsv_shift(x, 1, c[0], c[1])
    raise AssertionError(name)  # the callers only pass names from the parameter table


def corrupt_images(images: torch.Tensor, dataset: str, corruption: str, severity: int,
                   seed: int = 0) -> torch.Tensor:
    """Corrupt a batch of images as the dataset's -C generator does.

    Args:
        images: [N, C, H, W] uint8 (C = 3 for the colour corruptions).
        dataset: "cifar10" or "tiny-imagenet" (which published parameter table).
        corruption: one of CORRUPTIONS.
        severity: 1-5.
        seed: seed of the random draws (noise corruptions); same seed, same images.
    Returns:
        [N, C, H, W] uint8 corrupted images.
    """
    c = corruption_parameter(dataset, corruption, severity)
    pixels = images.cpu().numpy()
    if corruption in ("brightness", "saturate") and pixels.shape[1] != 3:
        raise SelectivityError(f"{corruption} needs RGB images; got {pixels.shape[1]} channel(s)")
    if corruption == "jpeg_compression":
        return torch.from_numpy(_through_pillow(pixels, lambda image: _jpeg(image, c)))
    if corruption == "pixelate":
        height, width = pixels.shape[2:]
        small = (int(width * c), int(height * c))
        return torch.from_numpy(_through_pillow(
            pixels, lambda image: image.resize(small, Image.BOX).resize((width, height), Image.BOX)))
    rng = np.random.default_rng([seed, SEVERITIES.index(severity), CORRUPTIONS.index(corruption)])
    corrupted = _float_corruption(corruption, pixels.astype(np.float64) / 255.0, c, rng)
    # the generator ends with np.uint8(np.clip(x, 0, 1) * 255): truncation, not rounding
    pixels = (np.clip(corrupted, 0, 1) * 255).astype(np.uint8)
    return torch.from_numpy(np.ascontiguousarray(pixels))  # HSV's transposes leave a strided array


def read_corruption_file(folder: str | Path, corruption: str, severity: int, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first `count` images of one severity from a CIFAR-10-C style folder.

    Layout: `<corruption>.npy` [5 * N, H, W, C] uint8 (severity 1's N images first, then 2, ...)
    and `labels.npy` [5 * N] beside it.

    Returns:
        ([count, C, H, W] uint8 images, [count] int64 labels).
    """
    if severity not in SEVERITIES:
        raise SelectivityError(f"corruption severity {severity!r}; expected an integer 1-5")
    folder = Path(folder)
    image_path, label_path = folder / f"{corruption}.npy", folder / "labels.npy"
    for path in (image_path, label_path):
        if not path.is_file():
            raise SelectivityError(f"corruption file {path} does not exist; expected <corruption>.npy and "
                                   "labels.npy as in CIFAR-10-C")
    images = np.load(image_path, mmap_mode="r")
    labels = np.load(label_path, mmap_mode="r")
    if images.ndim != 4 or images.dtype != np.uint8 or len(images) % len(SEVERITIES) or len(labels) != len(images):
        raise SelectivityError(f"{image_path} holds {images.dtype} {images.shape} with {len(labels)} labels; "
                               "expected uint8 [5 * N, H, W, C] and 5 * N labels")
    per_severity = len(images) // len(SEVERITIES)
    if count > per_severity:
        raise SelectivityError(f"{image_path} has {per_severity} images per severity; asked for {count}")
    start = (severity - 1) * per_severity
    block = np.array(images[start : start + count].transpose(0, 3, 1, 2), order="C")  # a writable copy
    return torch.from_numpy(block), torch.from_numpy(np.asarray(labels[start : start + count]).astype(np.int64))
