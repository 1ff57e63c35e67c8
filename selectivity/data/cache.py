"""Decode a dataset once: cache its tensors, rebuilt whenever a source file changes.

One cache file per (dataset, root) in `<cache_dir>/datasets/`. It stores a fingerprint of
the loader version and of the size and mtime of every source file; a mismatch, or a file
that fails to load, means decode again and overwrite. Writes are atomic, so a crash never
leaves a half-written cache that a later run would trust.
"""
import hashlib
import json
import warnings
from pathlib import Path
from typing import Callable

import torch

from selectivity import paths
from selectivity.atomic import atomic_path
from selectivity.data.base import DatasetSplits, LabelledImages
from selectivity.errors import SelectivityError

CACHE_FORMAT = 1  # layout of the cached dict below; bump when it changes


def source_fingerprint(name: str, version: int, root: Path, sources: list[Path]) -> str:
    """A hash of the loader identity and the (path, size, mtime) of every source file."""
    digest = hashlib.sha256(json.dumps([CACHE_FORMAT, name, version, str(root)]).encode())
    for source in sorted(sources):
        try:
            stat = source.stat()
        except OSError as error:
            raise SelectivityError(f"{name}: cannot read {source} ({error.strerror})") from None
        digest.update(f"\n{source}\t{stat.st_size}\t{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def cache_file(name: str, root: Path) -> Path:
    """Where the decoded tensors of dataset `name` read from `root` are cached."""
    root_hash = hashlib.sha256(str(root).encode()).hexdigest()[:16]
    return paths.cache_dir() / "datasets" / f"{name}-{root_hash}.pt"


def _to_payload(splits: DatasetSplits, fingerprint: str) -> dict:
    return {
        "format": CACHE_FORMAT, "fingerprint": fingerprint, "name": splits.name,
        "train_images": splits.train.images, "train_labels": splits.train.labels,
        "test_images": splits.test.images, "test_labels": splits.test.labels,
        "class_names": list(splits.class_names), "mean": list(splits.mean), "std": list(splits.std),
    }


def _from_payload(payload: dict) -> DatasetSplits:
    return DatasetSplits(
        name=payload["name"],
        train=LabelledImages(payload["train_images"], payload["train_labels"]),
        test=LabelledImages(payload["test_images"], payload["test_labels"]),
        class_names=tuple(payload["class_names"]),
        mean=tuple(payload["mean"]), std=tuple(payload["std"]))


def read_cache(path: Path, fingerprint: str) -> DatasetSplits | None:
    """The cached splits if `path` holds a readable cache for `fingerprint`, else None.

    A file that fails to load or is malformed is deleted so it is rebuilt, never used.
    """
    if not path.exists():
        return None
    try:
        payload = torch.load(path, weights_only=True)
        if payload.get("format") != CACHE_FORMAT or payload.get("fingerprint") != fingerprint:
            return None  # stale: the sources or the loader changed
        return _from_payload(payload)
    except Exception:  # truncated or foreign file: any failure means "rebuild"
        path.unlink(missing_ok=True)
        return None


def write_cache(path: Path, fingerprint: str, splits: DatasetSplits) -> None:
    """Atomically replace `path` with the splits; a failure to write only warns (the data is in memory)."""
    try:
        with atomic_path(path) as temporary:
            torch.save(_to_payload(splits, fingerprint), temporary)
    except OSError as error:
        warnings.warn(f"could not write the dataset cache {path}: {error}", stacklevel=3)


def load_through_cache(name: str, version: int, root: Path, sources: list[Path],
                       decode: Callable[[], DatasetSplits]) -> DatasetSplits:
    """Return the cached splits for these sources, or decode, cache and return them.

    Args:
        name, version: the loader's identity (a new version invalidates old caches).
        root: the dataset root the sources were found under.
        sources: every file `decode` reads.
        decode: builds the splits from the sources.
    Returns:
        The decoded DatasetSplits.
    """
    fingerprint = source_fingerprint(name, version, root, sources)
    path = cache_file(name, root)
    cached = read_cache(path, fingerprint)
    if cached is not None:
        return cached
    splits = decode()
    write_cache(path, fingerprint, splits)
    return splits
