"""Atomic file writes: a reader sees the old file or the new one, never half of one."""
import errno
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from selectivity.errors import SelectivityError


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is fsynced and renamed onto `path`.

    On an exception the temporary file is removed and `path` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; results are for sharing
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic on POSIX within one filesystem
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_table(path: str | os.PathLike, frame) -> None:
    """A pandas DataFrame as Parquet (a .parquet path) or CSV (any other), without its index."""
    with atomic_path(path) as tmp:
        if Path(path).suffix == ".parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)


def check_writable(folder: str | os.PathLike) -> Path:
    """Prove that files can be written in `folder` (or where it would be created), before long work.

    Nothing is created: a probe file is written and removed in the nearest folder that exists.

    Args:
        folder: where a command will write its outputs.
    Returns:
        The folder as a Path.
    Raises:
        SelectivityError: it cannot be created or written to (one line naming it and why).
    """
    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    try:
        if not existing.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(existing))
        descriptor, probe = tempfile.mkstemp(prefix=".write-check.", dir=existing)
        try:
            os.write(descriptor, b"ok")
        finally:
            os.close(descriptor)
            os.unlink(probe)
    except OSError as error:
        raise SelectivityError(f"cannot write to {folder} ({error.strerror or error}); "
                               "expected a writable folder with free space") from None
    return folder
