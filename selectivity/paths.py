"""Every default location on disk, in one place (overridable by environment variables)."""
import os
from pathlib import Path


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
