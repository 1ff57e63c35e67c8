"""Decode many image files (JPEG, PNG, ...) into one uint8 tensor, in parallel threads.

PIL releases the GIL inside its C decoders, so threads can overlap the decoding of a
100k-file dataset without the start-up and copy costs of processes. The gain is unmeasured:
the shared 2-core build machine was too loaded to time it (4,000 64x64 JPEGs took ~0.14 ms
of CPU each, 1 or 2 threads alike: ~15 s of CPU for Tiny ImageNet). Decoding happens once per
dataset; the cache does the rest.
"""
import os
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from selectivity.errors import SelectivityError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
CHUNK_SIZE = 512  # files per thread task: large enough to amortise scheduling


def is_image_file(path: Path) -> bool:
    """Whether `path` names an image file by its suffix (hidden files are not images)."""
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def read_image(path: Path, force_rgb: bool) -> np.ndarray:
    """Pixels of one file: [H, W] for grayscale, [H, W, 3] otherwise (alpha and palettes -> RGB).

    Raises:
        SelectivityError: the file is missing, truncated or not an image (names the file).
    """
    try:
        with Image.open(path) as image:
            grayscale = image.mode in ("1", "L", "LA", "I", "I;16", "F") and not force_rgb
            return np.asarray(image.convert("L" if grayscale else "RGB"))
    except (OSError, ValueError, SyntaxError) as error:  # PIL's ways of saying "not a readable image"
        raise SelectivityError(f"{path} is not a readable image ({type(error).__name__}: {error})") from None


def _decode_range(paths: list[Path], start: int, stop: int, out: np.ndarray, force_rgb: bool):
    """Decode paths[start:stop] into out; return (index, message) of the first problem, or None, and
    whether any image had colour."""
    height, width = out.shape[2:]
    any_colour = False
    for index in range(start, stop):
        try:
            pixels = read_image(paths[index], force_rgb)
        except SelectivityError as error:
            return (index, str(error)), any_colour
        if pixels.shape[:2] != (height, width):
            found = f"{pixels.shape[1]}x{pixels.shape[0]}"
            message = f"{paths[index]} is {found} pixels; expected {width}x{height} like the other images"
            return (index, message), any_colour
        if pixels.ndim == 3:
            out[index] = pixels.transpose(2, 0, 1)  # [H, W, 3] -> [3, H, W]
            any_colour = True
        else:
            out[index] = pixels[None]  # grayscale fills all three planes until we know the dataset's mode
    return None, any_colour


def decode_image_files(paths: list[Path], size: tuple[int, int], force_rgb: bool, description: str,
                       workers: int | None = None) -> torch.Tensor:
    """Decode files that must all be `size` pixels into one tensor.

    Args:
        paths: image files, in the order of the returned images.
        size: (width, height) every image must have.
        force_rgb: always return 3 channels; otherwise 1 channel when every image is grayscale.
        description: prefix of error messages and the progress bar, e.g. "tiny-imagenet train".
        workers: decoding threads (default: up to 8, one per CPU).
    Returns:
        [N, C, H, W] uint8, C in {1, 3}.
    Raises:
        SelectivityError: naming the first file (in `paths` order) that is unreadable or of another size.
    """
    width, height = size
    out = np.empty((len(paths), 3, height, width), dtype=np.uint8)  # [N, 3, H, W]
    workers = workers or min(8, os.cpu_count() or 1)
    starts = range(0, len(paths), CHUNK_SIZE)
    with ThreadPoolExecutor(max_workers=workers) as pool, \
            tqdm(total=len(paths), desc=description, unit="img", disable=not sys.stderr.isatty()) as progress:
        futures = {pool.submit(_decode_range, paths, start, min(start + CHUNK_SIZE, len(paths)), out, force_rgb):
                   start for start in starts}
        for future in as_completed(futures):
            progress.update(min(CHUNK_SIZE, len(paths) - futures[future]))
        results = [future.result() for future in futures]
    problems = [problem for problem, _ in results if problem is not None]
    if problems:
        raise SelectivityError(f"{description}: {min(problems)[1]}")
    if not force_rgb and not any(any_colour for _, any_colour in results):
        out = out[:, :1]  # every image was grayscale: keep one channel
    return torch.from_numpy(np.ascontiguousarray(out))


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of one image file, read from its header."""
    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, ValueError, SyntaxError) as error:
        raise SelectivityError(f"{path} is not a readable image ({type(error).__name__}: {error})") from None
