"""Pure tensor metrics of unit activations: class means, SI (batch and streaming), summaries."""
from selectivity.metrics.class_means import check_labels, class_conditional_means
from selectivity.metrics.selectivity_index import EPS, preferred_class, selectivity_index
from selectivity.metrics.streaming import SelectivityAccumulator, UnitStatistics
from selectivity.metrics.summary import batch_network_selectivity, layer_summary, network_mean_si, unit_table

__all__ = [
    "EPS",
    "SelectivityAccumulator",
    "UnitStatistics",
    "batch_network_selectivity",
    "check_labels",
    "class_conditional_means",
    "layer_summary",
    "network_mean_si",
    "preferred_class",
    "selectivity_index",
    "unit_table",
]
