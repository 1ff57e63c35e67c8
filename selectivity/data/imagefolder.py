"""Any image tree `root/{train,test}/<class>/<image>`: a dataset without writing a loader.

`val` stands in for `test` when `test` is absent. Class names are the sorted folder names
of train, and test must have the same set. Every image must have one size. Images are
1-channel when every file is grayscale, else RGB (grayscale files are expanded).
"""
from pathlib import Path

import torch

from selectivity.data.base import DatasetSplits, LabelledImages, MissingSourceError, channel_mean_std
from selectivity.data.image_files import decode_image_files, image_size, is_image_file
from selectivity.data.registry import DatasetLoader, register
from selectivity.errors import SelectivityError

NAME = "imagefolder"
EXPECTED = "expected root/train/<class>/<image> and root/test/<class>/<image> (or root/val/...)"


def split_folders(root: Path) -> tuple[Path, Path]:
    """The train folder and the test folder (test, else val)."""
    train = root / "train"
    if not train.is_dir():
        raise MissingSourceError(f"{NAME}: {train} is missing; {EXPECTED}")
    for test in (root / "test", root / "val"):
        if test.is_dir():
            return train, test
    raise MissingSourceError(f"{NAME}: {root / 'test'} (or {root / 'val'}) is missing; {EXPECTED}")


def class_folders(split: Path) -> list[str]:
    """Sorted names of the class folders of one split (hidden folders skipped)."""
    return sorted(entry.name for entry in split.iterdir() if entry.is_dir() and not entry.name.startswith("."))


def list_split(split: Path, class_names: list[str]) -> tuple[list[Path], list[int]]:
    """Image files of one split (sorted within each class) and their class indices."""
    files, labels = [], []
    for label, class_name in enumerate(class_names):
        class_files = sorted(path for path in (split / class_name).iterdir()
                             if path.is_file() and is_image_file(path))
        files += class_files
        labels += [label] * len(class_files)
    if not files:
        raise MissingSourceError(f"{NAME}: {split} holds no image files; {EXPECTED}")
    return files, labels


def read_layout(root: Path) -> tuple[list[str], dict[str, tuple[list[Path], list[int]]]]:
    """Class names and, per split, the image files and labels."""
    train, test = split_folders(root)
    class_names = class_folders(train)
    if not class_names:
        raise MissingSourceError(f"{NAME}: {train} has no class folders; {EXPECTED}")
    test_classes = class_folders(test)
    if test_classes != class_names:
        extra = sorted(set(test_classes) ^ set(class_names))
        raise SelectivityError(
            f"{NAME}: {test} has classes {test_classes[:10]} but {train} has {class_names[:10]} "
            f"(differing: {extra[:10]}); expected the same class folders in both splits")
    return class_names, {"train": list_split(train, class_names), "test": list_split(test, class_names)}


def find_sources(root: Path) -> list[Path]:
    """Every image file of both splits; raises MissingSourceError when a split is absent or empty."""
    _, splits = read_layout(root)
    return [*splits["train"][0], *splits["test"][0]]


def decode(root: Path) -> DatasetSplits:
    """Decode every image; all must share the size of the first train image."""
    class_names, listed = read_layout(root)
    size = image_size(listed["train"][0][0])
    images = {split: decode_image_files(files, size, force_rgb=False, description=f"{NAME} {split}")
              for split, (files, _) in listed.items()}
    if images["train"].shape[1] != images["test"].shape[1]:
        # one split is all grayscale, the other has colour: expand the grayscale one to RGB
        images = {split: tensor.expand(-1, 3, -1, -1).contiguous() for split, tensor in images.items()}
    splits = {split: LabelledImages(images[split], torch.tensor(labels, dtype=torch.int64))
              for split, (_, labels) in listed.items()}
    mean, std = channel_mean_std(splits["train"].images)
    return DatasetSplits(name=NAME, train=splits["train"], test=splits["test"],
                         class_names=tuple(class_names), mean=mean, std=std)


register(DatasetLoader(name=NAME, version=1, decode=decode, find_sources=find_sources))
