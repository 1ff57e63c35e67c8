"""Tiny ImageNet (200 classes, 64x64 RGB) from the standard `tiny-imagenet-200/` layout.

The labelled `val` split is used as the test split (the official test split has no labels).
Class order is the order of wnids.txt; class names come from words.txt.
"""
import warnings
from pathlib import Path

import torch

from selectivity.data.base import (DatasetSplits, LabelledImages, MissingSourceError, channel_mean_std,
                                   download_and_extract_archive)
from selectivity.data.image_files import decode_image_files
from selectivity.data.registry import DatasetLoader, register
from selectivity.errors import SelectivityError

NAME = "tiny-imagenet"
FOLDER = "tiny-imagenet-200"
URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
ARCHIVE_MD5 = "90528d7ca1a48142e341f4ef8d21d0de"
IMAGE_SIZE = (64, 64)
EXPECTED = (f"expected the layout root/{FOLDER}/{{wnids.txt, words.txt, train/<wnid>/images/*.JPEG, "
            f"val/images/*.JPEG, val/val_annotations.txt}}")


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise MissingSourceError(f"{NAME}: {path} is missing; {EXPECTED}")
    try:
        return [line for line in path.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as error:
        raise SelectivityError(f"{NAME}: {path} is unreadable ({error}); {EXPECTED}") from None


def read_wnids(folder: Path) -> list[str]:
    """The class wnids in class-index order."""
    wnids = [line.strip() for line in _read_lines(folder / "wnids.txt")]
    if not wnids or len(set(wnids)) != len(wnids):
        raise SelectivityError(f"{NAME}: {folder / 'wnids.txt'} has no or repeated wnids; {EXPECTED}")
    return wnids


def read_class_names(folder: Path, wnids: list[str]) -> tuple[str, ...]:
    """The words.txt entry (e.g. "goldfish, Carassius auratus") of each wnid, in class order."""
    words = dict(line.split("\t", 1) for line in _read_lines(folder / "words.txt") if "\t" in line)
    missing = [wnid for wnid in wnids if wnid not in words]
    if missing:
        raise SelectivityError(f"{NAME}: {folder / 'words.txt'} has no entry for {missing[0]}; {EXPECTED}")
    return tuple(words[wnid].strip() for wnid in wnids)


def list_train(folder: Path, wnids: list[str]) -> tuple[list[Path], list[int]]:
    """Train image files (sorted within each class) and their class indices."""
    files, labels = [], []
    for label, wnid in enumerate(wnids):
        images = folder / "train" / wnid / "images"
        class_files = sorted(images.glob("*.JPEG")) if images.is_dir() else []
        if not class_files:
            raise MissingSourceError(f"{NAME}: {images} is missing or has no .JPEG files; {EXPECTED}")
        files += class_files
        labels += [label] * len(class_files)
    return files, labels


def list_val(folder: Path, wnids: list[str]) -> tuple[list[Path], list[int]]:
    """Val image files in val_annotations.txt order and their class indices.

    An image listed twice would count twice in every class mean: refused. An image in
    val/images with no annotation has no label: left out, with a warning that counts them.
    """
    annotations = folder / "val" / "val_annotations.txt"
    index_of = {wnid: index for index, wnid in enumerate(wnids)}
    files, labels, seen = [], [], set()
    for line in _read_lines(annotations):
        fields = line.split("\t")
        if len(fields) < 2 or fields[1] not in index_of:
            raise SelectivityError(
                f"{NAME}: {annotations} has the line {line!r}; expected filename<TAB>wnid<TAB>bbox "
                f"with a wnid from wnids.txt")
        image = folder / "val" / "images" / fields[0]
        if not image.is_file():
            raise MissingSourceError(f"{NAME}: {image} is missing; {EXPECTED}")
        if image in seen:
            raise SelectivityError(f"{NAME}: {annotations} lists {fields[0]} more than once; expected one line per image")
        seen.add(image)
        files.append(image)
        labels.append(index_of[fields[1]])
    unlabelled = len({path.name for path in (folder / "val" / "images").glob("*.JPEG")} - {path.name for path in seen})
    if unlabelled:
        warnings.warn(f"{NAME}: {unlabelled} image(s) in {folder / 'val' / 'images'} have no line in {annotations.name} "
                      "and are left out of the test split", stacklevel=2)
    return files, labels


def find_sources(root: Path) -> list[Path]:
    """Every file the decoder reads; raises MissingSourceError naming the first absent one."""
    folder = root / FOLDER
    wnids = read_wnids(folder)
    read_class_names(folder, wnids)
    train_files, _ = list_train(folder, wnids)
    val_files, _ = list_val(folder, wnids)
    return [folder / "wnids.txt", folder / "words.txt", folder / "val" / "val_annotations.txt",
            *train_files, *val_files]


def decode(root: Path) -> DatasetSplits:
    """Decode all 110,000 JPEGs (grayscale ones converted to RGB) into memory."""
    folder = root / FOLDER
    wnids = read_wnids(folder)
    splits = {}
    for split, lister in (("train", list_train), ("val", list_val)):
        files, labels = lister(folder, wnids)
        images = decode_image_files(files, IMAGE_SIZE, force_rgb=True, description=f"{NAME} {split}")
        splits[split] = LabelledImages(images, torch.tensor(labels, dtype=torch.int64))  # [N, 3, 64, 64]
    mean, std = channel_mean_std(splits["train"].images)
    return DatasetSplits(name=NAME, train=splits["train"], test=splits["val"],
                         class_names=read_class_names(folder, wnids), mean=mean, std=std)


def fetch(root: Path) -> None:
    """Download and unzip the official archive into root (about 250 MB)."""
    download_and_extract_archive(URL, download_root=str(root), md5=ARCHIVE_MD5)


register(DatasetLoader(name=NAME, version=1, decode=decode, find_sources=find_sources, fetch=fetch))
