"""Caches of arrays computed from a run's checkpoint (e.g. the off-axis control's activations).

A cache names what it was computed from: the .npz holds, beside the arrays, the identity of
the checkpoint (its size, mtime and sha256). A cache is used only when that identity still
matches, so a run that was redone (a new checkpoint) never hands out the old model's
arrays; a cache that cannot be read (truncated, foreign) is simply computed again. Caches
are derived data, so a stale or damaged one is overwritten (atomically), not kept.

    arrays = cached_arrays(run.path / "activations.npz", run.directory.checkpoint_path,
                           lambda: compute(run))
"""
import hashlib
import json
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

from selectivity.atomic import atomic_path
from selectivity.errors import SelectivityError

SOURCE_KEY = "__source__"  # the entry holding the source's identity (JSON bytes)
HASH_CHUNK = 1 << 20


def source_identity(source: Path) -> dict:
    """Size, mtime (ns) and sha256 of the file the cached arrays were computed from."""
    try:
        stat = source.stat()
        digest = hashlib.sha256()
        with open(source, "rb") as file:
            for chunk in iter(lambda: file.read(HASH_CHUNK), b""):
                digest.update(chunk)
    except FileNotFoundError:
        raise SelectivityError(f"{source} does not exist; expected the file an analysis cache is computed from") from None
    return {"path": source.name, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest.hexdigest()}


def read_cache(cache: Path, identity: dict) -> dict[str, np.ndarray] | None:
    """The cached arrays if `cache` is whole and was computed from `identity`'s file, else None."""
    try:
        with np.load(cache, allow_pickle=False) as stored:
            recorded = json.loads(stored[SOURCE_KEY].tobytes().decode())
            if recorded != identity:
                return None  # computed from another checkpoint (the run was redone)
            return {name: stored[name] for name in stored.files if name != SOURCE_KEY}
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        if isinstance(error, OSError) and error.errno is not None:
            raise  # the system failed to read it (permissions, I/O): not a damaged cache
        return None  # truncated or not a cache of ours: compute it again


def write_cache(cache: Path, identity: dict, arrays: dict[str, np.ndarray]) -> None:
    """Atomically write `arrays` with the identity of the file they were computed from."""
    if SOURCE_KEY in arrays:
        raise SelectivityError(f"an array may not be named {SOURCE_KEY!r}; it holds the cache's source")
    source = np.frombuffer(json.dumps(identity, sort_keys=True).encode(), dtype=np.uint8)
    with atomic_path(cache) as tmp, open(tmp, "wb") as file:
        np.savez(file, **arrays, **{SOURCE_KEY: source})


def cached_arrays(cache: Path, source: Path, compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The arrays `compute()` returns for `source`, read from `cache` when it was made from this very file.

    Args:
        cache: the .npz cache file.
        source: the file the arrays derive from (a run's checkpoint.pt).
        compute: builds the arrays (called only when the cache is missing, stale or damaged).
    Returns:
        {name: array}.
    """
    identity = source_identity(source)
    arrays = read_cache(cache, identity)
    if arrays is None:
        arrays = compute()
        write_cache(cache, identity, arrays)
    return arrays
