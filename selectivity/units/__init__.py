"""The single-unit toolkit beyond SI: ablation curves, top-k inputs, selectivity over training,
and their post-sweep analyses (docs/unit_toolkit.md). Metrics and nulls live in selectivity.metrics."""
