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
from selectivity.capture import UnitLayout
from selectivity.api import UnitMeasurement
import types as _types

import selectivity.measure as _measure_module
from selectivity.api import measure as _measure_call


class _CallableModule(_types.ModuleType):
    """`selectivity.measure(model, loader, ...)` is selectivity.api.measure, while `selectivity.measure`
    stays the module of measure_model and evaluation_batches (imports, patches and docs of it keep working)."""

    def __call__(self, *args, **kwargs):
        return _measure_call(*args, **kwargs)

    __call__.__doc__ = _measure_call.__doc__


_measure_module.__class__ = _CallableModule
measure = _measure_module

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
    "UnitLayout",
    "UnitMeasurement",
    "measure",
]
