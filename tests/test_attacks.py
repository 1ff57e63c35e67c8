"""FGSM and PGD: closed forms on a linear classifier, the L-inf ball, and (when installed) torchattacks.

The cross-check needs torchattacks, which is not a dependency (it pins old `requests`);
install it beside the environment without its dependencies to run that test:
`pip install --no-deps --target /tmp/torchattacks-only torchattacks` and add that folder to PYTHONPATH.
"""
import numpy as np
import pytest
import torch
from torch import nn

from selectivity.analysis.attacks import fgsm, pgd
from selectivity.data.base import LabelledImages
from selectivity.errors import SelectivityError
from selectivity.sweep.robustness import ModelUnderTest, attack_accuracies

SHAPE = (1, 4, 4)  # [C, H, W]


def linear_problem(count=64, seed=0):
    """A 2-class linear model on [0, 1] pixels and inputs away from the box edges (no clipping at small eps)."""
    generator = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    with torch.no_grad():
        model[1].weight.copy_(torch.randn(2, 16, generator=generator))
        model[1].bias.zero_()
    images = 0.25 + 0.5 * torch.rand(count, *SHAPE, generator=generator)
    labels = torch.randint(0, 2, (count,), generator=generator)
    return model, images, labels


def margins(model, images, labels) -> torch.Tensor:
    """logit of the true class minus the other's."""
    with torch.no_grad():
        logits = model(images)
    return logits.gather(1, labels[:, None])[:, 0] - logits.gather(1, (1 - labels)[:, None])[:, 0]


def test_fgsm_lowers_a_linear_margin_by_eps_times_the_weight_l1_distance():
    model, images, labels = linear_problem()
    eps = 0.03
    weight_gap = (model[1].weight[0] - model[1].weight[1]).abs().sum().item()  # ||w_y - w_j||_1, either order
    adversarial = fgsm(model, images, labels, eps)
    np.testing.assert_allclose(margins(model, adversarial, labels).numpy(),
                               (margins(model, images, labels) - eps * weight_gap).numpy(), atol=1e-5)
    assert model[1].weight.grad is None  # the attack leaves parameter gradients alone


def test_pgd_stays_in_the_ball_and_reaches_the_linear_optimum():
    model, images, labels = linear_problem()
    eps = 0.05
    adversarial = pgd(model, images, labels, eps, steps=10)
    assert (adversarial - images).abs().max().item() <= eps + 1e-6
    # on a linear margin the L-inf optimum is the corner FGSM finds; PGD's steps reach it
    np.testing.assert_allclose(adversarial.numpy(), fgsm(model, images, labels, eps).numpy(), atol=1e-6)
    edge = torch.full((4, *SHAPE), 0.99)
    clipped = pgd(model, edge, labels[:4], 0.05, steps=3, random_start=True, generator=torch.Generator().manual_seed(0))
    assert clipped.max().item() <= 1.0 and (clipped - edge).abs().max().item() <= 0.05 + 1e-6


def test_attacks_at_the_box_edges_match_a_hand_computation_clipped_to_0_1():
    """On a 2-class linear model sign(d CE/dx) = sign(w_other - w_true), so each step is known in closed form."""
    model, _, labels = linear_problem(count=4)
    images = torch.where(torch.rand(4, *SHAPE, generator=torch.Generator().manual_seed(3)) < 0.5, 0.01, 0.99)
    weight = model[1].weight.detach()
    ascent = (weight[1 - labels] - weight[labels]).sign().view(4, *SHAPE)  # raises the cross-entropy
    eps = 0.05
    expected = (images + eps * ascent).clamp(0, 1)
    np.testing.assert_allclose(fgsm(model, images, labels, eps).numpy(), expected.numpy(), atol=1e-7)
    # PGD from a random start: the start is clipped to [0, 1] before the first step
    noise = torch.rand(images.shape, generator=torch.Generator().manual_seed(7))
    start = (images + (2 * noise - 1) * eps).clamp(0, 1)
    stepped = start + 0.01 * ascent
    expected = (images + (stepped - images).clamp(-eps, eps)).clamp(0, 1)
    ours = pgd(model, images, labels, eps, steps=1, step_size=0.01, random_start=True,
               generator=torch.Generator().manual_seed(7))
    np.testing.assert_allclose(ours.numpy(), expected.numpy(), atol=1e-7)


def test_pgd_default_step_size_is_two_and_a_half_eps_over_steps():
    """Madry et al.'s default: the second gradient is taken 2.5 * eps / steps from the image."""
    model, images, labels = linear_problem(count=4)
    seen = []

    def recording(batch):
        seen.append(batch.detach().clone())
        return model(batch)

    eps, steps = 0.04, 10
    pgd(recording, images, labels, eps, steps=steps)
    weight = model[1].weight.detach()
    ascent = (weight[1 - labels] - weight[labels]).sign().view(4, *SHAPE)
    assert len(seen) == steps
    np.testing.assert_allclose(seen[1].numpy(), (images + 2.5 * eps / steps * ascent).numpy(), atol=1e-7)


def test_attack_accuracy_through_measure_model_has_the_closed_form():
    model, images, labels = linear_problem(count=200, seed=1)
    weight_gap = (model[1].weight[0] - model[1].weight[1]).abs().sum().item()
    pixels = (images * 255).round().to(torch.uint8)  # measure_model takes uint8 images
    # mean 0, std 1: the model sees pixels / 255, the images rebuilt from the uint8s
    target = ModelUnderTest(model, 2, (0.0,), (1.0,), layers=["0"], batch_size=64)
    eps_grid = (0.0, 0.01, 0.03)
    accuracies = attack_accuracies(target, LabelledImages(pixels, labels), ("fgsm", "pgd"), eps_grid)
    clean_margins = margins(model, pixels.float() / 255, labels)
    for eps in eps_grid:
        expected = (clean_margins > eps * weight_gap).double().mean().item()  # still right after the attack
        assert accuracies[("fgsm", eps)] == pytest.approx(expected)
        assert accuracies[("pgd", eps)] == pytest.approx(expected)
    assert accuracies[("fgsm", 0.03)] < accuracies[("fgsm", 0.0)]  # the grid is not degenerate


def test_bad_settings_are_refused():
    model, images, labels = linear_problem(count=2)
    with pytest.raises(SelectivityError, match="eps = -0.1"):
        fgsm(model, images, labels, -0.1)
    with pytest.raises(SelectivityError, match="steps = 0"):
        pgd(model, images, labels, 0.1, steps=0)


def test_fgsm_and_pgd_match_torchattacks():
    torchattacks = pytest.importorskip("torchattacks")
    torch.manual_seed(0)
    mean, std = torch.tensor([0.4, 0.5, 0.6]).view(1, 3, 1, 1), torch.tensor([0.2, 0.25, 0.3]).view(1, 3, 1, 1)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 5)).eval()

    class Normalised(nn.Module):  # torchattacks attacks a model of [0, 1] pixels
        def forward(self, x):
            return net((x - mean) / std)

    model = Normalised().eval()
    images, labels = torch.rand(16, 3, 8, 8), torch.randint(0, 5, (16,))
    eps = 2 / 255
    theirs = torchattacks.FGSM(model, eps=eps)(images, labels)
    np.testing.assert_allclose(fgsm(model, images, labels, eps).numpy(), theirs.numpy(), atol=1e-6)
    theirs = torchattacks.PGD(model, eps=eps, alpha=eps / 4, steps=7, random_start=False)(images, labels)
    ours = pgd(model, images, labels, eps, steps=7, step_size=eps / 4)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), atol=1e-6)
