"""An image tree read lazily: decoded, resized, centre-cropped per image in DataLoader workers.

Images of any size and mode (L, LA, RGBA, CMYK, P, ...) become RGB, are resized so the
shorter side is `resize` pixels and centre-cropped to `crop` x `crop` (torchvision's and
timm's evaluation transforms), and travel as uint8; the measurement loop normalises
them with the same function as the in-memory datasets. A file that cannot be decoded is
left out and named: a warning counts the few, one error line says when all are bad.
"""
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from selectivity.data.base import DatasetSplits, LabelledImages
from selectivity.data.image_tree import ImageList
from selectivity.data.normalization import PRESETS
from selectivity.errors import SelectivityError

INTERPOLATIONS = ("bilinear", "bicubic", "nearest", "lanczos")


@dataclass(frozen=True)
class Preprocessing:
    """A model's evaluation transform: resize the shorter side, centre crop, normalise.

    `squash` resizes to crop x crop directly instead (no aspect ratio kept, no crop): what a
    Hugging Face image processor with a {height, width} size and no crop_size does.
    """

    resize: int = 256
    crop: int = 224
    mean: tuple[float, ...] = PRESETS["imagenet"][0]
    std: tuple[float, ...] = PRESETS["imagenet"][1]
    interpolation: str = "bilinear"
    squash: bool = False

    def describe(self) -> str:
        size = f"resize to {self.crop}x{self.crop}" if self.squash else \
            f"resize shorter side to {self.resize}, centre crop {self.crop}x{self.crop}"
        return f"{size} ({self.interpolation}), mean {self.mean}, std {self.std}"

    def __post_init__(self):
        if self.crop < 1 or self.resize < self.crop:
            raise SelectivityError(f"resize {self.resize}, crop {self.crop}; expected 1 <= crop <= resize")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise SelectivityError(f"mean {self.mean}, std {self.std}; expected 3 numbers each, std > 0")
        if self.interpolation not in INTERPOLATIONS:
            raise SelectivityError(f"interpolation {self.interpolation!r}; expected one of {', '.join(INTERPOLATIONS)}")


def torchvision_preprocessing(name: str, weights_file: str | None = None) -> tuple[Preprocessing | None, str]:
    """The transform torchvision states for the published weights of `name` (its weights enum's
    metadata, read offline): the entry whose file name is `weights_file`'s (resnet50-0676ba61.pth is
    IMAGENET1K_V1: resize 256; resnet50-11ad3fa6.pth IMAGENET1K_V2: resize 232), else DEFAULT.

    Returns:
        (Preprocessing, which weights entry it came from), or (None, reason) for a model without
        published weights.
    """
    import torchvision

    try:
        published = torchvision.models.get_model_weights(name)
    except (ValueError, KeyError, AttributeError):
        return None, f"torchvision states no weights for {name}"
    by_file = {Path(entry.url).name: entry for entry in published}
    wanted = Path(weights_file).name if weights_file else None
    entry = by_file.get(wanted) or published.DEFAULT
    transform = entry.transforms()
    source = f"torchvision {entry}" + ("" if wanted in by_file else f" (DEFAULT; {wanted} is not a published file)"
                                       if wanted else " (DEFAULT)")
    return Preprocessing(int(transform.resize_size[0]), int(transform.crop_size[0]), tuple(transform.mean),
                         tuple(transform.std), transform.interpolation.value), source


def hf_preprocessing(settings: dict) -> Preprocessing:
    """The transform a Hugging Face image processor config states: size.shortest_edge then
    crop_size (ConvNeXt, ResNet, CLIP), or size {height, width} alone (ViT: a squash, no crop)."""
    size, crop = settings.get("size") or {}, settings.get("crop_size")
    if isinstance(size, int):
        size = {"shortest_edge": size}
    if isinstance(crop, int):
        crop = {"height": crop, "width": crop}
    mean = tuple(settings.get("image_mean") or PRESETS["imagenet"][0])
    std = tuple(settings.get("image_std") or PRESETS["imagenet"][1])
    resample = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic"}.get(settings.get("resample"), "bilinear")
    if "shortest_edge" in size:
        edge = int(size["shortest_edge"])
        if crop and settings.get("do_center_crop", True):
            return Preprocessing(edge, int(crop["height"]), mean, std, resample)
        crop_pct = settings.get("crop_pct")  # ConvNeXt: resize edge / crop_pct, then crop to edge
        if crop_pct:
            return Preprocessing(int(edge / float(crop_pct)), edge, mean, std, resample)
        return Preprocessing(edge, edge, mean, std, resample)
    if "height" in size:
        side = int(size["height"])
        return Preprocessing(side, side, mean, std, resample, squash=True)
    return Preprocessing(mean=mean, std=std, interpolation=resample)


def timm_preprocessing(pretrained_cfg: dict) -> Preprocessing:
    """The transform a timm model's `pretrained_cfg` (or an HF image processor's config) states:
    crop = input_size[-1], resize = floor(crop / crop_pct), its mean/std and interpolation."""
    crop = int(pretrained_cfg.get("input_size", (3, 224, 224))[-1])
    crop_pct = float(pretrained_cfg.get("crop_pct") or 0.875)
    interpolation = pretrained_cfg.get("interpolation") or "bilinear"
    return Preprocessing(int(crop / crop_pct), crop, tuple(pretrained_cfg.get("mean", PRESETS["imagenet"][0])),
                         tuple(pretrained_cfg.get("std", PRESETS["imagenet"][1])),
                         interpolation if interpolation in INTERPOLATIONS else "bilinear")


RESAMPLING = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC,
              "nearest": Image.Resampling.NEAREST, "lanczos": Image.Resampling.LANCZOS}


def load_rgb(path, preprocessing: Preprocessing) -> np.ndarray:
    """[crop, crop, 3] uint8 pixels of one file after the resize and centre crop.

    The same arithmetic as torchvision's Resize(int) + CenterCrop on a PIL image (shorter side to
    `resize`, the longer to int(resize * long / short); crop offsets rounded), done in PIL so that
    streaming needs no torchvision.
    """
    with Image.open(path) as image:
        if image.mode == "P" and "transparency" in image.info:
            image = image.convert("RGBA")  # PIL warns when a palette with transparency goes straight to RGB
        rgb = image.convert("RGB")
    resample, crop = RESAMPLING[preprocessing.interpolation], preprocessing.crop
    if preprocessing.squash:
        return np.asarray(rgb.resize((crop, crop), resample))
    width, height = rgb.size
    short, long = min(width, height), max(width, height)
    new_short, new_long = preprocessing.resize, int(preprocessing.resize * long / short)
    size = (new_short, new_long) if width <= height else (new_long, new_short)
    if size != rgb.size:
        rgb = rgb.resize(size, resample)
    top, left = int(round((size[1] - crop) / 2.0)), int(round((size[0] - crop) / 2.0))
    return np.asarray(rgb.crop((left, top, left + crop, top + crop)))


class StreamedImages(Dataset):
    """An ImageList as a torch Dataset of (uint8 [3, crop, crop], label, index, problem)."""

    def __init__(self, listing: ImageList, preprocessing: Preprocessing, name: str = "imagetree"):
        self.listing, self.preprocessing, self.name = listing, preprocessing, name
        self.unreadable: list[str] = []  # filled by batches(), in the main process
        self.unreadable_indices: list[int] = []

    def __len__(self) -> int:
        return len(self.listing)

    @property
    def labels(self) -> torch.Tensor:
        return self.listing.labels

    def measured_labels(self) -> torch.Tensor:
        """The labels of the images read so far without problems (after a pass: those measured)."""
        keep = torch.ones(len(self), dtype=torch.bool)
        keep[self.unreadable_indices] = False
        return self.labels[keep]

    @property
    def num_classes(self) -> int:
        return len(self.listing.class_names)

    def __getitem__(self, index: int):
        path = self.listing.files[index]
        label = int(self.listing.labels[index])
        try:
            pixels = torch.from_numpy(load_rgb(path, self.preprocessing).copy()).permute(2, 0, 1)
            return pixels, label, index, ""
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:  # PIL: not a readable image
            crop = self.preprocessing.crop
            name = path.relative_to(self.listing.root).as_posix() if path.is_relative_to(self.listing.root) else path.name
            return torch.zeros(3, crop, crop, dtype=torch.uint8), label, index, f"{name} ({type(error).__name__})"

    def batches(self, batch_size: int, workers: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """(images [B, 3, crop, crop] uint8, labels [B], indices [B]) in listing order, unreadable
        files dropped and recorded in `unreadable`; decoded in `workers` processes (0: here)."""
        self.unreadable, self.unreadable_indices = [], []
        loader = DataLoader(self, batch_size=batch_size, shuffle=False, num_workers=workers,
                            persistent_workers=False, prefetch_factor=4 if workers else None)
        for images, labels, index, problems in loader:
            bad = torch.tensor([bool(problem) for problem in problems])
            if bad.any():
                self.unreadable += [problem for problem in problems if problem]
                self.unreadable_indices += index[bad].tolist()
                keep = ~bad
                images, labels, index = images[keep], labels[keep], index[keep]
            if len(labels):
                yield images, labels, index

    def report_unreadable(self) -> int:
        """Warn about the files left out (count and names); refuse when every file was unreadable.

        Returns:
            How many images were measured.
        """
        bad = len(self.unreadable)
        if bad == len(self):
            raise SelectivityError(f"all {bad} images of {self.listing.root} are unreadable (e.g. {self.unreadable[0]}); "
                                   "expected image files PIL can decode")
        if bad:
            names = ", ".join(self.unreadable[:10]) + (", ..." if bad > 10 else "")
            warnings.warn(f"{self.name}: {bad} of {len(self)} image(s) in {self.listing.root} are unreadable or "
                          f"truncated and were left out: {names}", stacklevel=2)
        return len(self) - bad

    def probe_splits(self) -> DatasetSplits:
        """A one-image DatasetSplits (the first readable image) with the tree's classes and the
        preprocessing's mean/std: what model loading needs to size and check a model."""
        for index in range(len(self)):
            pixels, label, _, problem = self[index]
            if not problem:
                one = LabelledImages(pixels.unsqueeze(0).contiguous(), torch.tensor([label]))
                return DatasetSplits(self.name, one, one, self.listing.class_names,
                                     self.preprocessing.mean, self.preprocessing.std)
        raise SelectivityError(f"all {len(self)} images of {self.listing.root} are unreadable (e.g. "
                               f"{self[0][3]}); expected image files PIL can decode")
