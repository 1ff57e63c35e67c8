"""Every default location on disk, in one place (overridable by environment variables)."""
import os
from pathlib import Path

from selectivity.errors import SelectivityError


def cache_dir() -> Path:
    """Decoded-dataset cache: $SELECTIVITY_CACHE, else $XDG_CACHE_HOME/selectivity, else ~/.cache/selectivity."""
    if os.environ.get("SELECTIVITY_CACHE"):
        return Path(os.environ["SELECTIVITY_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "selectivity"


def data_root() -> Path:
    """Where dataset files live by default: $SELECTIVITY_DATA, else <cache_dir>/data."""
    if os.environ.get("SELECTIVITY_DATA"):
        return Path(os.environ["SELECTIVITY_DATA"])
    return cache_dir() / "data"


def runs_root() -> Path:
    """Where runs and sweeps are written by default: $SELECTIVITY_RUNS, else ./runs."""
    return Path(os.environ.get("SELECTIVITY_RUNS", "runs"))


def check_path_component(value, what: str) -> str:
    """`value` if it names one file or folder inside its parent, else a one-line SelectivityError.

    A name that becomes a path (a sweep's folder under the runs root) must not reach outside
    it ("../x", "/abs", "a/b"), name the parent itself ("", ".", ".."), or hold characters the
    file system cannot take or a person cannot see (NUL and other control characters).
    """
    if (not isinstance(value, str) or value in ("", ".", "..") or value != value.strip()
            or any(c in "/\\" or ord(c) < 32 or ord(c) == 127 for c in value) or len(value.encode()) > 255):
        raise SelectivityError(f"{what} = {value!r} is not a safe folder name; expected one path component "
                               "(letters, digits, '-', '_', '.'; no '/', '..', spaces at the ends or control "
                               "characters; at most 255 bytes)")
    return value
