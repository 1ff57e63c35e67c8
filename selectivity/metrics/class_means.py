"""Class-conditional mean activations: the quantity every selectivity metric starts from."""
import numbers

import torch

from selectivity.errors import SelectivityError


def check_class_count(num_classes, minimum: int = 2) -> None:
    """num_classes must be an integer >= minimum (2 wherever SI is computed: it compares classes)."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < minimum:
        raise SelectivityError(f"num_classes = {num_classes!r} is invalid; expected an integer >= {minimum}")


def check_labels(labels: torch.Tensor, num_classes: int) -> None:
    """Raise a one-line error unless every label is an integer in [0, num_classes).

    This reads the labels on the host (a device sync), so hot training loops validate
    their dataset once up front and skip this per batch.
    """
    check_class_count(num_classes, minimum=1)
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise SelectivityError(f"labels have dtype {labels.dtype}; expected integer class indices")
    if labels.numel() == 0:
        return
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= num_classes:
        bad = low if low < 0 else high
        raise SelectivityError(f"label {bad} is outside [0, {num_classes}); expected class indices 0..{num_classes - 1}")


def class_conditional_means(
    activations: torch.Tensor, labels: torch.Tensor, num_classes: int, validate: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean activation of every unit for every class, in one matrix product.

    Args:
        activations: [N, U] unit activations (one row per input).
        labels: [N] integer class of each input.
        num_classes: K, the number of classes.
        validate: check shapes and label range (a host sync); the training loop turns it off.

    Returns:
        means: [K, U] class-conditional means; a class absent from the data gets 0.
        counts: [K] number of inputs of each class, in the activations' dtype.
    Differentiable with respect to `activations`.
    """
    if validate:
        if activations.dim() != 2 or labels.dim() != 1 or activations.shape[0] != labels.shape[0]:
            raise SelectivityError(
                f"activations {tuple(activations.shape)} and labels {tuple(labels.shape)} do not match; "
                "expected activations [N, U] and labels [N]"
            )
        check_labels(labels, num_classes)
    one_hot = torch.nn.functional.one_hot(labels, num_classes).to(activations.dtype)  # [N, K]
    counts = one_hot.sum(0)  # [K]
    sums = one_hot.T @ activations  # [K, U]
    means = sums / counts.clamp_min(1).unsqueeze(1)  # true means, not sums; absent classes stay 0
    return means, counts
