"""Slow, obviously-correct numpy references that the fast metrics are tested against."""
import numpy as np


def reference_selectivity(activations: np.ndarray, labels: np.ndarray, num_classes: int, eps: float = 1e-7):
    """SI per unit by explicit loops over units and classes (docs/definitions.md#class-selectivity-index)."""
    num_units = activations.shape[1]
    present = [k for k in range(num_classes) if np.any(labels == k)]
    si = np.full(num_units, np.nan)
    if len(present) < 2:
        return si
    for unit in range(num_units):
        class_means = [activations[labels == k, unit].mean() for k in present]
        best = int(np.argmax(class_means))
        mu_max = class_means[best]
        others = [m for i, m in enumerate(class_means) if i != best]
        mu_rest = sum(others) / len(others)
        si[unit] = (mu_max - mu_rest) / (mu_max + mu_rest + eps)
    return si
