"""Unit activations of any nn.Module, by layer name: module hooks (`units`) plus the
post-activation values of functional ReLU calls found by torch.fx (`functional`)."""
from selectivity.capture.units import PRESETS, UnitCapture, reduce_to_units, resolve_layers

__all__ = ["PRESETS", "UnitCapture", "reduce_to_units", "resolve_layers"]
