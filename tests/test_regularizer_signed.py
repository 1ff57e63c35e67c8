"""The regularizer on signed layers (positive part) and on vit_cifar's token units, against numpy and autograd."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from selectivity import SelectivityError, SelectivityRegularizer
from selectivity.models import create_model
from tests.reference import reference_selectivity


class SignedConvNet(nn.Module):
    """Conv -> GELU ([B, C, H, W], signed) -> pool -> Linear -> GELU ([B, U], signed) -> logits."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, padding=1)
        self.act1 = nn.GELU()
        self.fc = nn.Linear(3, 5)
        self.act2 = nn.GELU()
        self.head = nn.Linear(5, 3)

    def forward(self, x):
        maps = self.act1(self.conv(x))
        return self.head(self.act2(self.fc(maps.mean((2, 3)))))


def numpy_penalty_of_positive_parts(maps: np.ndarray, hidden: np.ndarray, labels: np.ndarray, alpha: float) -> float:
    """-alpha * mean over layers of the mean unit SI, units = spatial mean of max(x, 0) (rectified, then pooled)."""
    conv_units = np.maximum(maps, 0).mean(axis=(2, 3))  # [B, C]
    fc_units = np.maximum(hidden, 0)  # [B, U]
    return -alpha * np.mean([reference_selectivity(units, labels, 3).mean() for units in (conv_units, fc_units)])


def test_positive_part_penalty_matches_numpy_rectify_then_pool():
    torch.manual_seed(0)
    model = SignedConvNet().double()
    with torch.no_grad():
        model.fc.bias.sub_(0.4)  # some hidden units below zero for GELU's negative side
    images = torch.randn(24, 2, 4, 4, dtype=torch.float64)
    labels = torch.arange(24) % 3
    seen = {}
    model.act1.register_forward_hook(lambda m, i, o: seen.__setitem__("maps", o.detach().numpy()))
    model.act2.register_forward_hook(lambda m, i, o: seen.__setitem__("hidden", o.detach().numpy()))
    regularizer = SelectivityRegularizer(0.7, num_classes=3, layers=["act1", "act2"], signed="positive")
    with regularizer.attach(model):
        model(images)
        penalty = regularizer.penalty(labels)
    assert seen["maps"].min() < 0 and seen["hidden"].min() < 0  # the layers are signed
    expected = numpy_penalty_of_positive_parts(seen["maps"], seen["hidden"], labels.numpy(), 0.7)
    assert penalty.item() == pytest.approx(expected, rel=1e-9)


def test_positive_part_penalty_gradient_passes_gradcheck():
    torch.manual_seed(1)
    model = SignedConvNet().double()
    images = torch.randn(12, 2, 4, 4, dtype=torch.float64)
    labels = torch.arange(12) % 3
    names = [name for name, _ in model.named_parameters()]
    regularizer = SelectivityRegularizer(-1.3, num_classes=3, layers=["act1", "act2"], signed="positive")

    def penalty(*parameters):
        with regularizer.attach(model):
            torch.func.functional_call(model, dict(zip(names, parameters)), (images,))
            return regularizer.penalty(labels)

    inputs = tuple(parameter.detach().clone().requires_grad_(True) for parameter in model.parameters())
    assert torch.autograd.gradcheck(penalty, inputs, eps=1e-6, atol=1e-6)


def test_vit_penalty_matches_numpy_si_of_rectified_patch_token_means():
    torch.manual_seed(2)
    model = create_model("vit_cifar", 10, depth=2).double()
    images = torch.randn(20, 3, 32, 32, dtype=torch.float64)
    labels = torch.arange(20) % 10
    gelu_outputs = []
    for block in model.blocks:
        block.mlp.act.register_forward_hook(lambda m, i, o: gelu_outputs.append(o.detach().numpy()))
    regularizer = SelectivityRegularizer(2.0, num_classes=10)  # the default "relu" preset finds the units
    with regularizer.attach(model):
        model(images)
        penalty = regularizer.penalty(labels)
    assert len(gelu_outputs) == 2 and all(tokens.shape == (20, 65, 192) for tokens in gelu_outputs)
    units = [np.maximum(tokens[:, 1:, :], 0).mean(axis=1) for tokens in gelu_outputs]  # class token left out
    expected = -2.0 * np.mean([reference_selectivity(layer, labels.numpy(), 10).mean() for layer in units])
    assert penalty.item() == pytest.approx(expected, rel=1e-9)
    penalty.backward()
    assert model.blocks[0].mlp.fc1.weight.grad.abs().sum() > 0  # the penalty reaches the MLP weights


def train_vit(alpha, use_regularizer: bool, steps: int = 3) -> nn.Module:
    torch.manual_seed(0)
    model = create_model("vit_cifar", 10, depth=2, dim=48, heads=2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    generator = torch.Generator().manual_seed(5)
    regularizer = SelectivityRegularizer(alpha, num_classes=10)
    for _ in range(steps):
        images, labels = torch.randn(16, 3, 32, 32, generator=generator), torch.randint(0, 10, (16,), generator=generator)
        if use_regularizer:
            with regularizer.attach(model):
                loss = nn.functional.cross_entropy(model(images), labels) + regularizer.penalty(labels)
        else:
            loss = nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model


def test_vit_alpha_zero_is_bitwise_plain_training():
    plain, tracked = train_vit(0.0, use_regularizer=False), train_vit(0.0, use_regularizer=True)
    assert all(torch.equal(a, b) for a, b in zip(plain.parameters(), tracked.parameters()))
    regularized = train_vit(1.0, use_regularizer=True)  # and a non-zero alpha does change the weights
    assert not torch.equal(plain.blocks[0].mlp.fc1.weight, regularized.blocks[0].mlp.fc1.weight)


def test_signed_layers_without_a_choice_are_refused():
    model = SignedConvNet()
    regularizer = SelectivityRegularizer(1.0, num_classes=3, layers=["act1"])
    with regularizer.attach(model), pytest.raises(SelectivityError, match="negative activations"):
        model(torch.randn(6, 2, 4, 4))
        regularizer.penalty(torch.arange(6) % 3)


def test_a_token_map_of_unknown_layout_is_refused_in_one_line():
    class Tokens(torch.nn.Module):  # [B, N, D] with nothing that says which tokens are patches
        def __init__(self):
            super().__init__()
            self.embed, self.act, self.head = torch.nn.Linear(4, 6), torch.nn.GELU(), torch.nn.Linear(6, 3)

        def forward(self, x):
            return self.head(self.act(self.embed(x)).mean(1))

    model = Tokens()
    regularizer = SelectivityRegularizer(1.0, num_classes=3, layers=["act"], signed="positive")
    with regularizer.attach(model), pytest.raises(SelectivityError, match=r"act gives \(2, 5, 6\), whose layout "
                                                                          r"is not known") as error:
        model(torch.randn(2, 5, 4))
    assert "\n" not in str(error.value)


def test_the_vit_token_maps_give_the_penalty_of_its_pooled_units():
    """On vit_cifar's MLP GELU token maps, positive part then patch-token mean (layout from its
    num_prefix_tokens) gives the same penalty as the model's own pooled unit layers."""
    model = create_model("vit_cifar", 10, depth=2).eval()
    images, labels = torch.randn(20, 3, 32, 32), torch.arange(20) % 10
    penalties = []
    for layers in (["blocks.0.mlp.act", "blocks.1.mlp.act"], list(model.unit_layers)):
        regularizer = SelectivityRegularizer(-1.0, num_classes=10, layers=layers, signed="positive")
        with regularizer.attach(model):
            model(images)
        penalties.append(regularizer.penalty(labels))
    assert torch.allclose(penalties[0], penalties[1], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("signed", ["abs", "min_shift", "", True])
def test_unknown_signed_choice_is_refused(signed):
    with pytest.raises(SelectivityError, match="signed = .*expected None or 'positive'"):
        SelectivityRegularizer(1.0, num_classes=3, signed=signed)
