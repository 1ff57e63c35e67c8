"""White-box L-inf attacks in pixel space [0, 1]: FGSM (Goodfellow et al. 2015) and PGD (Madry et al. 2018).

`logits_of` maps [B, C, H, W] float images in [0, 1] to [B, K] logits (the normalisation
belongs inside it), so eps is in pixel units: eps = 1/255 moves each value by at most one
grey level. The attacks run in float32 with gradients on and leave the model's mode and
parameters' gradients untouched; the caller puts the model in eval mode.
"""
from typing import Callable

import torch
from torch import nn

from selectivity.errors import SelectivityError

LogitsFunction = Callable[[torch.Tensor], torch.Tensor]


def _input_gradient(logits_of: LogitsFunction, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """d(sum of cross-entropy)/d(images), without touching any parameter's .grad."""
    with torch.enable_grad():
        images = images.detach().float().requires_grad_(True)
        loss = nn.functional.cross_entropy(logits_of(images).float(), labels, reduction="sum")
        (gradient,) = torch.autograd.grad(loss, images)
    return gradient


def _check_eps(eps: float) -> None:
    if not eps >= 0:
        raise SelectivityError(f"attack eps = {eps!r}; expected a number >= 0 (pixel scale, e.g. 1/255)")


def fgsm(logits_of: LogitsFunction, images: torch.Tensor, labels: torch.Tensor, eps: float) -> torch.Tensor:
    """One signed-gradient step of size eps that raises the cross-entropy, clipped to [0, 1].

    Args:
        logits_of: [B, C, H, W] images in [0, 1] -> [B, K] logits.
        images: [B, C, H, W] float in [0, 1].
        labels: [B] int64 true classes.
        eps: L-inf budget in pixel units.
    Returns:
        [B, C, H, W] float32 adversarial images, within eps of `images` and inside [0, 1].
    """
    _check_eps(eps)
    images = images.float()
    if eps == 0:
        return images.clone()
    step = eps * _input_gradient(logits_of, images, labels).sign()
    return (images + step).clamp(0, 1).detach()


def pgd(logits_of: LogitsFunction, images: torch.Tensor, labels: torch.Tensor, eps: float, steps: int = 10,
        step_size: float | None = None, random_start: bool = False,
        generator: torch.Generator | None = None) -> torch.Tensor:
    """Projected gradient descent on the L-inf ball of radius eps (as torchattacks.PGD).

    Args:
        logits_of, images, labels, eps: as in `fgsm`.
        steps: signed-gradient steps, each followed by projection onto the ball and [0, 1].
        step_size: per-step size; default 2.5 * eps / steps (Madry et al.).
        random_start: start from a uniform point in the ball instead of the image.
        generator: random source of the start (CPU generator).
    Returns:
        [B, C, H, W] float32 adversarial images.
    """
    _check_eps(eps)
    if steps < 1:
        raise SelectivityError(f"PGD steps = {steps}; expected at least 1")
    images = images.float()
    if eps == 0:
        return images.clone()
    step_size = 2.5 * eps / steps if step_size is None else step_size
    adversarial = images.clone()
    if random_start:
        noise = torch.rand(images.shape, generator=generator).to(images.device)
        adversarial = (images + (2 * noise - 1) * eps).clamp(0, 1)
    for _ in range(steps):
        adversarial = adversarial + step_size * _input_gradient(logits_of, adversarial, labels).sign()
        adversarial = (images + (adversarial - images).clamp(-eps, eps)).clamp(0, 1)
    return adversarial.detach()
