"""selectivity: measure and causally control the class selectivity of units in deep networks."""
from importlib import metadata as _metadata

from selectivity.capture import UnitCapture, resolve_layers
from selectivity.errors import SelectivityError
from selectivity.metrics import (
    SelectivityAccumulator,
    batch_network_selectivity,
    class_conditional_means,
    layer_summary,
    network_mean_si,
    selectivity_index,
    unit_table,
)
from selectivity.regularizer import SelectivityRegularizer

try:  # the version is written once, in pyproject.toml; the installed metadata carries it
    __version__ = _metadata.version("selectivity")
except _metadata.PackageNotFoundError:  # a source tree on sys.path that was never installed
    __version__ = "0+unknown"
__all__ = [
    "SelectivityAccumulator",
    "SelectivityError",
    "SelectivityRegularizer",
    "UnitCapture",
    "batch_network_selectivity",
    "class_conditional_means",
    "layer_summary",
    "network_mean_si",
    "resolve_layers",
    "selectivity_index",
    "unit_table",
]
