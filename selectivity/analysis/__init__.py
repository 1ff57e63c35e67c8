"""Analyses of trained networks' representations: CCA similarity and dimensionality."""

from selectivity.analysis.cca import (
    canonical_correlations,
    cca_distance,
    pwcca_similarity,
    subsample_units,
    svcca_similarity,
)
from selectivity.analysis.dimensionality import participation_ratio, principal_components_for_variance

__all__ = [
    "canonical_correlations",
    "cca_distance",
    "participation_ratio",
    "principal_components_for_variance",
    "pwcca_similarity",
    "subsample_units",
    "svcca_similarity",
]
