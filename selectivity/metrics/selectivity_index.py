"""The class selectivity index of Leavitt & Morcos (ICLR 2021), docs/definitions.md#class-selectivity-index."""
import torch

from selectivity.errors import SelectivityError

EPS = 1e-7


def selectivity_index(means: torch.Tensor, counts: torch.Tensor | None = None, eps: float = EPS) -> torch.Tensor:
    """SI_u = (mu_max - mu_rest) / (mu_max + mu_rest + eps) for every unit u.

    mu_max is the unit's largest class-conditional mean; mu_rest is the mean of the other
    classes' means. Classes with count 0 are left out of both (in a mini-batch, only the
    classes present count). A dead unit (all means 0) gets 0 through eps.

    Args:
        means: [K, U] class-conditional mean activations (non-negative, e.g. post-ReLU).
        counts: [K] inputs per class, or None when every class is present.
        eps: keeps dead units finite.

    Returns:
        [U] SI in [0, 1]; NaN for every unit when fewer than 2 classes are present, since
        SI is then undefined. Differentiable; no host syncs.
    """
    mu_max, mu_rest, num_present = max_and_rest_means(means, counts)
    si = (mu_max - mu_rest) / (mu_max + mu_rest + eps)
    return torch.where(num_present >= 2, si, torch.full_like(si, float("nan")))


def max_and_rest_means(
    means: torch.Tensor, counts: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """mu_max [U], mu_rest [U] and the number of present classes (0-dim), as SI defines them.

    Classes with count 0 are left out of both; mu_rest is the mean of the other present
    classes' means (0 when only one class is present).
    """
    if means.dim() != 2 or (counts is not None and tuple(counts.shape) != (means.shape[0],)):
        # shapes are known on the host: this check costs no device sync
        raise SelectivityError(f"means {tuple(means.shape)} and counts "
                               f"{None if counts is None else tuple(counts.shape)} do not fit; expected means "
                               "[K, U] (classes x units) and counts [K] or None")
    num_classes = means.shape[0]
    present = (
        torch.ones(num_classes, dtype=torch.bool, device=means.device) if counts is None else counts > 0
    )  # [K]
    present_column = present.unsqueeze(1)  # [K, 1]
    mu_max = means.masked_fill(~present_column, float("-inf")).amax(0)  # [U]
    total = (means * present_column).sum(0)  # [U]
    num_present = present.sum()
    mu_rest = (total - mu_max) / (num_present - 1).clamp_min(1)  # [U]
    return mu_max, mu_rest, num_present


def preferred_class(means: torch.Tensor, counts: torch.Tensor | None = None) -> torch.Tensor:
    """[U] index of the present class with the largest mean (the class a unit 'detects')."""
    if counts is not None:
        means = means.masked_fill(~(counts > 0).unsqueeze(1), float("-inf"))
    return means.argmax(0)
