"""Datasets by name: `register` a loader once, then `load_dataset(name)` anywhere."""
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from selectivity import paths
from selectivity.data.base import DatasetSplits, MissingSourceError
from selectivity.data.cache import load_through_cache
from selectivity.errors import SelectivityError


@dataclass(frozen=True)
class DatasetLoader:
    """How to find, fetch and decode one dataset.

    Attributes:
        name: the registry key, e.g. "cifar10".
        version: bump it when `decode` changes its output, so stale caches are rebuilt.
        decode: reads the files under root into memory (root is None for bundled data).
        find_sources: lists every file `decode` reads, raising MissingSourceError on a gap;
            None for bundled data, which needs no root and is not cached.
        fetch: downloads and extracts the files into root; None when there is no download.
    """

    name: str
    version: int
    decode: Callable[[Path | None], DatasetSplits]
    find_sources: Callable[[Path], list[Path]] | None = None
    fetch: Callable[[Path], None] | None = None


_LOADERS: dict[str, DatasetLoader] = {}


def register(loader: DatasetLoader) -> DatasetLoader:
    """Add a loader under its name (once); returns it so modules can keep a reference."""
    if loader.name in _LOADERS:
        raise SelectivityError(f"dataset {loader.name!r} is registered twice; expected unique names")
    _LOADERS[loader.name] = loader
    return loader


def list_datasets() -> list[str]:
    """Names accepted by `load_dataset`, sorted."""
    return sorted(_LOADERS)


def get_loader(name: str) -> DatasetLoader:
    """The registered loader for `name`; an unknown name raises SelectivityError listing the valid ones."""
    if name not in _LOADERS:
        raise SelectivityError(f"unknown dataset {name!r}; expected one of: {', '.join(list_datasets())}")
    return _LOADERS[name]


def load_dataset(name: str, root: str | Path | None = None, download: bool = False) -> DatasetSplits:
    """Load a dataset's train and test splits into memory, decoding once and caching the result.

    Args:
        name: one of `list_datasets()`.
        root: folder holding the dataset's files (layouts in docs/datasets.md); None means
            `selectivity.paths.data_root()`. Ignored by bundled datasets (digits).
        download: fetch the files into root when they are missing (where the dataset has a download).
    Returns:
        DatasetSplits with uint8 [N, C, H, W] images and int64 labels.
    Raises:
        SelectivityError: unknown name, or a missing or corrupt file (named in the one-line message).
    """
    loader = get_loader(name)
    if loader.find_sources is None:
        return loader.decode(None)
    root = Path(root if root is not None else paths.data_root()).expanduser().absolute()
    try:
        sources = loader.find_sources(root)
    except MissingSourceError as missing:
        if loader.fetch is None:
            raise
        if not download:
            raise MissingSourceError(f"{missing} (pass download=True, or --download, to fetch it)") from None
        loader.fetch(root)
        sources = loader.find_sources(root)
    return load_through_cache(loader.name, loader.version, root, sources, lambda: loader.decode(root))
