import copy

import numpy as np
import pytest
import torch
from torch import nn

from selectivity import SelectivityError, SelectivityRegularizer, batch_network_selectivity
from tests.reference import reference_selectivity


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))


def train(model, alpha, steps=30, use_regularizer=True):
    generator = torch.Generator().manual_seed(1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    regularizer = SelectivityRegularizer(alpha, num_classes=3)
    teacher = torch.randn(6, 3, generator=generator)  # a learnable task: labels follow the inputs
    losses, selectivities = [], []
    for _ in range(steps):
        inputs = torch.randn(48, 6, generator=generator)
        labels = (inputs @ teacher).argmax(1)
        with regularizer.attach(model) if use_regularizer else torch.enable_grad():
            loss = nn.functional.cross_entropy(model(inputs), labels)
            if use_regularizer:
                loss = loss + regularizer.penalty(labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if use_regularizer:
            selectivities.append(regularizer.last_mean_si.item())
    return losses, selectivities


def test_batch_selectivity_matches_reference_mean_over_units_then_layers():
    rng = np.random.default_rng(0)
    layers = [np.maximum(rng.normal(size=(30, size)), 0) for size in (2, 9)]
    labels = rng.integers(0, 4, 30)
    got = batch_network_selectivity([torch.tensor(a) for a in layers], torch.tensor(labels), 4).item()
    expected = np.mean([reference_selectivity(a, labels, 4).mean() for a in layers])
    assert got == pytest.approx(expected, rel=1e-5)


def test_one_class_batch_contributes_no_term():
    value = batch_network_selectivity([torch.rand(5, 3)], torch.zeros(5, dtype=torch.long), 4)
    assert value.item() == 0.0


def test_alpha_zero_is_plain_training_exactly():
    plain_model, regularized_model = mlp(), mlp()
    plain, _ = train(plain_model, 0.0, use_regularizer=False)
    regularized, _ = train(regularized_model, 0.0)
    assert plain == regularized  # bit-identical losses
    for a, b in zip(plain_model.parameters(), regularized_model.parameters()):
        assert torch.equal(a, b)


def test_alpha_zero_as_tensor_is_also_plain_training():
    plain, _ = train(mlp(), 0.0, use_regularizer=False)
    tensor_alpha, _ = train(mlp(), torch.tensor(0.0))
    assert plain == tensor_alpha


def test_sign_of_alpha_moves_selectivity():
    _, lowered = train(mlp(), -5.0, steps=60)
    _, raised = train(mlp(), 5.0, steps=60)
    _, plain = train(mlp(), 0.0, steps=60)
    assert np.mean(lowered[-10:]) < np.mean(plain[-10:]) < np.mean(raised[-10:])


def test_penalty_gradient_matches_finite_differences():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 6), nn.ReLU()).double()
    inputs, labels = torch.rand(20, 4, dtype=torch.float64), torch.arange(20) % 3
    regularizer = SelectivityRegularizer(-2.0, num_classes=3)

    def penalty_of(weight):
        probe = copy.deepcopy(model)
        probe[0].weight.data = weight
        with regularizer.attach(probe):
            probe(inputs)
            return regularizer.penalty(labels)

    weight = model[0].weight.detach().clone().requires_grad_(True)
    with regularizer.attach(model):
        model[0].weight = nn.Parameter(weight)
        model(inputs)
        regularizer.penalty(labels).backward()
    analytic = model[0].weight.grad
    step = 1e-6
    numeric = torch.zeros_like(weight)
    for index in np.ndindex(*weight.shape):
        bumped_up, bumped_down = weight.detach().clone(), weight.detach().clone()
        bumped_up[index] += step
        bumped_down[index] -= step
        numeric[index] = (penalty_of(bumped_up) - penalty_of(bumped_down)) / (2 * step)
    torch.testing.assert_close(analytic, numeric, rtol=1e-5, atol=1e-7)


def test_negative_activations_are_refused():
    model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3))
    regularizer = SelectivityRegularizer(-1.0, num_classes=3, layers=["2"])
    with regularizer.attach(model), pytest.raises(SelectivityError, match="layer 2 has negative activations"):
        model(torch.randn(16, 4))
        regularizer.penalty(torch.arange(16) % 3)
