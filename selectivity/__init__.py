"""selectivity: measure and causally control the class selectivity of units in deep networks."""
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

__version__ = "0.1.0"
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
