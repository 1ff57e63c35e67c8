"""Unit activations of any nn.Module, by layer name: module hooks (`units`) plus the
post-activation values of functional ReLU calls found by torch.fx (`functional`); each layer's
layout and the signed choice (`layouts`, `model_layouts`)."""
from selectivity.capture.layouts import (LAYOUT_KINDS, SIGNED_CHOICES, TOKEN_REDUCTIONS, UnitLayout, parse_layout,
                                         reduce_with_layout)
from selectivity.capture.units import PRESETS, UnitCapture, reduce_to_units, resolve_layers

__all__ = ["LAYOUT_KINDS", "PRESETS", "SIGNED_CHOICES", "TOKEN_REDUCTIONS", "UnitCapture", "UnitLayout",
           "parse_layout", "reduce_to_units", "reduce_with_layout", "resolve_layers"]
