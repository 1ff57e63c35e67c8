"""CIFAR-10 and CIFAR-100 from their standard pickled layouts, read directly with pickle.

torchvision's dataset classes are not used for reading: they verify md5s, which a
re-encoded but layout-identical copy (like $DATA_TOOLS's) fails. Downloads do go
through torchvision's download helper with the official URL and md5.
Pickle can run code from a malicious file, so the files are read by an unpickler that builds
only what a CIFAR batch holds (dicts, lists, strings, numbers and numpy arrays) and refuses any
other class a file names.
"""
import pickle
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

from selectivity.data.base import (DatasetSplits, LabelledImages, MissingSourceError, channel_mean_std,
                                   download_and_extract_archive)
from selectivity.data.registry import DatasetLoader, register
from selectivity.errors import SelectivityError


@dataclass(frozen=True)
class CifarLayout:
    """Where one CIFAR variant keeps its files and what its pickles call things."""

    name: str
    folder: str
    train_files: tuple[str, ...]
    test_file: str
    meta_file: str
    label_key: str
    class_names_key: str
    url: str
    archive_md5: str

    def expected(self) -> str:
        files = ",".join((*self.train_files, self.test_file, self.meta_file))
        return f"expected the pickled CIFAR layout root/{self.folder}/{{{files}}}"


CIFAR10 = CifarLayout(
    name="cifar10", folder="cifar-10-batches-py",
    train_files=tuple(f"data_batch_{index}" for index in range(1, 6)), test_file="test_batch",
    meta_file="batches.meta", label_key="labels", class_names_key="label_names",
    url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    archive_md5="c58f30108f718f92721af3b95e74349a")

CIFAR100 = CifarLayout(
    name="cifar100", folder="cifar-100-python", train_files=("train",), test_file="test",
    meta_file="meta", label_key="fine_labels", class_names_key="fine_label_names",
    url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    archive_md5="eb9058c3a382ffc7106e4002c42a8d85")


def find_sources(layout: CifarLayout, root: Path) -> list[Path]:
    """Every file of the layout under root; raises MissingSourceError naming the first absent one."""
    sources = [root / layout.folder / file for file in (*layout.train_files, layout.test_file, layout.meta_file)]
    for source in sources:
        if not source.is_file():
            raise MissingSourceError(f"{layout.name}: {source} is missing; {layout.expected()}")
    return sources


# The only globals a CIFAR pickle names: numpy's array and scalar reconstruction (numpy 1 and 2
# module paths) and the bytes helper of protocol-2 pickles written by Python 3.
ALLOWED_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
})


class CifarUnpickler(pickle.Unpickler):
    """pickle.Unpickler that resolves ALLOWED_GLOBALS only: a file naming anything else (os.system,
    say) is refused instead of run."""

    def find_class(self, module: str, name: str):
        if (module, name) not in ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"it names {module}.{name}, which no CIFAR file holds")
        return super().find_class(module, name)


def read_pickle(layout: CifarLayout, path: Path, keys: tuple[str, ...]) -> dict:
    """Unpickle one CIFAR file (str keys via latin1, as the originals need) and check its keys."""
    try:
        with open(path, "rb") as file:
            content = CifarUnpickler(file, encoding="latin1").load()
    except Exception as error:  # truncated or foreign bytes raise many different types
        raise SelectivityError(
            f"{layout.name}: {path} is corrupt ({type(error).__name__}: {error}); {layout.expected()}") from None
    if not isinstance(content, dict) or any(key not in content for key in keys):
        raise SelectivityError(
            f"{layout.name}: {path} lacks the keys {list(keys)}; {layout.expected()}")
    return content


def read_batch(layout: CifarLayout, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images [n, 3, 32, 32] uint8 and labels [n] int64 of one pickled batch."""
    batch = read_pickle(layout, path, ("data", layout.label_key))
    rows = np.asarray(batch["data"], dtype=np.uint8)  # [n, 3072]: channel planes, row-major
    labels = np.asarray(batch[layout.label_key], dtype=np.int64)
    if rows.ndim != 2 or rows.shape[1] != 3 * 32 * 32 or rows.shape[0] != labels.shape[0]:
        raise SelectivityError(
            f"{layout.name}: {path} holds data of shape {rows.shape} with {labels.shape[0]} labels; "
            f"expected [n, 3072] uint8 rows with n labels")
    return rows.reshape(-1, 3, 32, 32), labels


def decode(layout: CifarLayout, root: Path) -> DatasetSplits:
    """Read every batch of the layout into memory."""
    folder = root / layout.folder
    train = [read_batch(layout, folder / file) for file in layout.train_files]
    test_images, test_labels = read_batch(layout, folder / layout.test_file)
    meta = read_pickle(layout, folder / layout.meta_file, (layout.class_names_key,))
    train_images = torch.from_numpy(np.concatenate([images for images, _ in train]))  # [N, 3, 32, 32]
    train_labels = torch.from_numpy(np.concatenate([labels for _, labels in train]))  # [N]
    mean, std = channel_mean_std(train_images)
    return DatasetSplits(
        name=layout.name,
        train=LabelledImages(train_images.contiguous(), train_labels),
        test=LabelledImages(torch.from_numpy(np.ascontiguousarray(test_images)), torch.from_numpy(test_labels)),
        class_names=tuple(str(name) for name in meta[layout.class_names_key]),
        mean=mean, std=std)


def fetch(layout: CifarLayout, root: Path) -> None:
    """Download the official archive into root and extract it (as torchvision's CIFAR classes do)."""
    download_and_extract_archive(layout.url, download_root=str(root),
                                 filename=layout.url.rsplit("/", 1)[-1], md5=layout.archive_md5)


for _layout in (CIFAR10, CIFAR100):
    register(DatasetLoader(name=_layout.name, version=1, decode=partial(decode, _layout),
                           find_sources=partial(find_sources, _layout), fetch=partial(fetch, _layout)))
