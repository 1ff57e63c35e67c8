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


def reference_stratified_indices(images: np.ndarray, labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Positions of a class-stratified sample, by loops (selectivity/data/subsets.py's rule):
    class k gets floor(count * n_k / N) plus one for the largest remainders (lower label first on
    a tie); within a class, the images whose blake2b(bytes, salt=seed) digests are smallest."""
    import hashlib
    from fractions import Fraction

    total = len(labels)
    classes = sorted(set(int(k) for k in labels))
    exact = {k: Fraction(count * int(np.sum(labels == k)), total) for k in classes}
    quota = {k: int(exact[k]) for k in classes}  # floor of a positive fraction
    order = sorted(classes, key=lambda k: (-(exact[k] - quota[k]), k))
    for k in order[: count - sum(quota.values())]:
        quota[k] += 1
    salt = seed.to_bytes(8, "little")
    chosen = []
    for k in classes:
        members = [i for i in range(total) if labels[i] == k]
        digests = {i: hashlib.blake2b(np.ascontiguousarray(images[i]).tobytes(), digest_size=8, salt=salt).digest()
                   for i in members}
        chosen += sorted(members, key=lambda i: digests[i])[: quota[k]]
    return np.array(sorted(chosen), dtype=np.int64)
