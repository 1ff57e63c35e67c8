"""In-place functional ReLUs (x.relu_(), F.relu(x, inplace=True), torch.relu_(x), F.relu_(x)) are unit layers.

Each form is captured as the call site `relu()` and measured: its SI equals the SI computed
here in numpy from the module's own outputs. An in-place op after the ReLU must not change
what was recorded: the responses are the ReLU's output at the call.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from selectivity import UnitCapture
from selectivity.data import LabelledImages
from selectivity.measure import measure_model

FORMS = {
    "x.relu_()": lambda h: h.relu_(),
    "F.relu(x, inplace=True)": lambda h: F.relu(h, inplace=True),
    "torch.relu_(x)": torch.relu_,
    "F.relu_(x)": F.relu_,
}
MEAN, STD = (0.5,), (0.25,)


class InPlaceNet(nn.Module):
    """flatten -> Linear(4, 6) -> an in-place functional ReLU -> Linear(6, 3); optionally add_(1) after it."""

    def __init__(self, activation, add_after: bool = False):
        super().__init__()
        self.hidden, self.fc = nn.Linear(4, 6), nn.Linear(6, 3)
        self.activation, self.add_after = activation, add_after

    def forward(self, x):
        h = self.activation(self.hidden(x.flatten(1)))
        if self.add_after:  # read at trace time: a constant branch
            h.add_(1.0)  # (`h += 1` would trace as an out-of-place add)
        return self.fc(h)


def planted_split() -> LabelledImages:
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(30) % 3
    images = torch.randint(0, 256, (30, 1, 2, 2), dtype=torch.uint8, generator=generator)
    images[:, 0, 0, 0] = (labels * 100 + 20).to(torch.uint8)  # pixel 0 grows with the class
    return LabelledImages(images, labels)


def numpy_si(responses: np.ndarray, labels: np.ndarray, classes: int = 3) -> np.ndarray:
    """(mu_max - mu_rest) / (mu_max + mu_rest + 1e-7) per unit, by a loop over classes."""
    means = np.stack([responses[labels == k].mean(0) for k in range(classes)])  # [K, U]
    mu_max = means.max(0)
    mu_rest = (means.sum(0) - mu_max) / (classes - 1)
    return (mu_max - mu_rest) / (mu_max + mu_rest + 1e-7)


def relu_by_hand(model: InPlaceNet, split: LabelledImages) -> np.ndarray:
    """The ReLU's output: the hidden module's output, rectified here."""
    inputs = (split.images.double() / 255 - MEAN[0]) / STD[0]
    with torch.no_grad():
        return np.maximum(model.hidden(inputs.float().flatten(1)).double().numpy(), 0)  # [N, 6]


@pytest.mark.parametrize("add_after", [False, True], ids=["alone", "then-added-to-in-place"])
@pytest.mark.parametrize("form", FORMS)
def test_each_in_place_form_is_captured_and_its_si_matches_numpy(form, add_after):
    torch.manual_seed(0)
    model, split = InPlaceNet(FORMS[form], add_after).eval(), planted_split()
    with UnitCapture(model) as capture, torch.no_grad():
        model((split.images.float() / 255 - MEAN[0]) / STD[0])
    assert list(capture.activations) == ["relu()"]
    expected = relu_by_hand(model, split)
    np.testing.assert_allclose(capture.activations["relu()"].double().numpy(), expected, rtol=1e-5, atol=1e-6)
    measured = measure_model(model, split, 3, MEAN, STD, batch_size=16)
    units = measured.units
    assert units["layer"].unique().tolist() == ["relu()"]
    np.testing.assert_allclose(units["si"].to_numpy(), numpy_si(expected, split.labels.numpy()), rtol=1e-4, atol=1e-6)


class ModuleThenInPlace(nn.Module):
    """nn.ReLU(inplace=True) on [B, U] or on tokens [B, N, D], then an in-place add to its output."""

    def __init__(self):
        super().__init__()
        self.hidden, self.act = nn.Linear(4, 6), nn.ReLU(inplace=True)

    def forward(self, x):  # [B, N, 4]
        h = self.act(self.hidden(x))
        h.add_(1.0)
        return h.sum(-1)


@pytest.mark.parametrize("shape, layouts, expected_of", [
    ((5, 4), None, lambda relu: relu),
    ((5, 3, 4), {"act": "tokens"}, lambda relu: relu[:, 0]),  # the cls token
], ids=["flat", "cls-token"])
def test_a_relu_modules_recorded_output_ignores_later_in_place_ops(shape, layouts, expected_of):
    torch.manual_seed(0)
    model, inputs = ModuleThenInPlace().eval(), torch.randn(*shape)
    with UnitCapture(model, ["act"], layouts=layouts, tokens="cls" if layouts else None) as capture, torch.no_grad():
        model(inputs)
    with torch.no_grad():
        expected = expected_of(torch.clamp(model.hidden(inputs), min=0))
    torch.testing.assert_close(capture.activations["act"], expected)
