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


def hidden_units(model, inputs):
    """The mlp's two post-ReLU layers, computed by hand: [B, 16], [B, 8]."""
    with torch.no_grad():
        first = torch.relu(model[0](inputs))
        return [first, torch.relu(model[2](first))]


def logged_steps(alpha, track_every, steps=7):
    """Train the mlp `steps` steps announcing each to the regularizer; per step: (mu_SI or None, grads, by hand)."""
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    regularizer = SelectivityRegularizer(alpha, num_classes=3, track_every=track_every)
    generator = torch.Generator().manual_seed(1)
    records = []
    with regularizer.attach(model):
        for step in range(steps):
            inputs = torch.randn(48, 6, generator=generator)
            labels = torch.arange(48) % 3
            measures = regularizer.start_step(step)
            by_hand = np.mean([reference_selectivity(units.double().numpy(), labels.numpy(), 3).mean()
                               for units in hidden_units(model, inputs)])
            loss = nn.functional.cross_entropy(model(inputs), labels) + regularizer.penalty(labels)
            stored = len(regularizer._capture.activations)
            optimizer.zero_grad()
            loss.backward()
            grads = [p.grad.clone() for p in model.parameters()]
            optimizer.step()
            mean_si = None if regularizer.last_mean_si is None else regularizer.last_mean_si.item()
            records.append({"measures": measures, "si": mean_si, "stored": stored, "grads": grads, "by_hand": by_hand})
    return records


def test_alpha_zero_measures_only_every_kth_step(monkeypatch):
    import selectivity.regularizer as regularizer_module

    computed = []  # SI computations, by call
    si = regularizer_module.batch_network_selectivity
    monkeypatch.setattr(regularizer_module, "batch_network_selectivity", lambda *a: computed.append(1) or si(*a))
    records = logged_steps(0.0, track_every=3)
    assert [step for step, r in enumerate(records) if r["si"] is not None] == [0, 3, 6]
    assert [r["measures"] for r in records] == [step % 3 == 0 for step in range(7)]
    assert len(computed) == 3
    assert [r["stored"] for r in records] == [2, 0, 0, 2, 0, 0, 2]  # skipped steps store no activation
    for r in records[::3]:
        assert r["si"] == pytest.approx(r["by_hand"], rel=1e-5)
    every_step = logged_steps(0.0, track_every=1)
    for skipping, measuring in zip(records, every_step):  # logging never touches training
        assert all(torch.equal(a, b) for a, b in zip(skipping["grads"], measuring["grads"]))


@pytest.mark.parametrize("alpha", [-1.0, 2.0, torch.tensor(-1.0), torch.tensor(0.0)],
                         ids=["number", "positive", "tensor", "tensor-zero"])
def test_an_active_regularizer_ignores_track_every(alpha):
    """The penalty needs mu_SI on every step; a tensor alpha (schedules) is active even at 0."""
    every_third = logged_steps(alpha.clone() if isinstance(alpha, torch.Tensor) else alpha, track_every=3)
    every_step = logged_steps(alpha, track_every=1)
    assert all(r["measures"] and r["si"] is not None and r["stored"] == 2 for r in every_third)
    for step, (a, b) in enumerate(zip(every_third, every_step)):
        assert a["si"] == b["si"] and a["si"] == pytest.approx(a["by_hand"], rel=1e-5), step
        assert all(torch.equal(x, y) for x, y in zip(a["grads"], b["grads"])), step
    if float(alpha) != 0:  # the penalty's gradient is there on every step: it differs from plain training
        plain = logged_steps(0.0, track_every=1)
        assert all(not torch.equal(a["grads"][0], p["grads"][0]) for a, p in zip(every_third, plain))


@pytest.mark.parametrize("value", [0, -1, 2.5, "a", True])
def test_bad_track_every_is_a_one_line_error(value):
    with pytest.raises(SelectivityError, match="track_every = .* is invalid; expected an integer >= 1") as error:
        SelectivityRegularizer(0.0, num_classes=3, track_every=value)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("settings, message", [
    ({"alpha": float("nan")}, "alpha = nan is invalid; expected a finite number"),
    ({"alpha": float("-inf")}, "alpha = -inf is invalid"),
    ({"alpha": "-1"}, "alpha = '-1' is invalid"),
    ({"alpha": True}, "alpha = True is invalid"),
    ({"alpha": torch.tensor([-1.0, 1.0])}, r"alpha tensor of shape \(2,\)"),
    ({"alpha": torch.tensor(-1)}, "dtype torch.int64 is invalid"),
    ({"alpha": torch.tensor(float("nan"))}, "expected a finite 0-dim floating tensor"),
    ({"num_classes": 1}, "num_classes = 1 is invalid; expected an integer >= 2"),
    ({"num_classes": 3.0}, "num_classes = 3.0 is invalid"),
    ({"eps": -1e-7}, "eps = -1e-07 is invalid; expected a finite number >= 0"),
    ({"eps": float("nan")}, "eps = nan is invalid"),
])
def test_bad_settings_are_one_line_errors(settings, message):
    with pytest.raises(SelectivityError, match=message) as error:
        SelectivityRegularizer(**{"alpha": -1.0, "num_classes": 3, **settings})
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("alpha", [-1.0, 2, np.float64(-0.5), torch.tensor(-1.0)])
def test_numbers_and_0_dim_tensors_are_accepted(alpha):
    assert SelectivityRegularizer(alpha, num_classes=np.int64(3)).active


def test_an_active_penalty_before_attach_is_refused_not_zero():
    """A forgotten attach() would otherwise train with no regularizer at all, silently."""
    with pytest.raises(SelectivityError, match=r"penalty\(\) of an active regularizer before attach\(\)"):
        SelectivityRegularizer(-1.0, num_classes=3).penalty(torch.tensor([0, 1, 2]))
    assert SelectivityRegularizer(0.0, num_classes=3).penalty(torch.tensor([0, 1])).item() == 0.0  # inactive: plain


def test_labels_of_another_batch_size_are_refused():
    model, regularizer = mlp(), SelectivityRegularizer(-1.0, num_classes=3)
    with regularizer.attach(model), pytest.raises(SelectivityError, match=r"labels \(5,\) do not match the batch "
                                                                          "of 8 inputs"):
        model(torch.randn(8, 6))
        regularizer.penalty(torch.arange(5) % 3)


@pytest.mark.parametrize("activations, labels, message", [
    ([], torch.tensor([0, 1]), "activations is an empty list; expected a non-empty list"),
    (torch.rand(4, 2), torch.tensor([0, 1, 2, 0]), "activations is a Tensor; expected a non-empty list"),
    ([torch.rand(4, 2, 2)], torch.tensor([0, 1, 2, 0]), r"activations \[\(4, 2, 2\)\] and labels \(4,\) do not fit"),
    ([torch.rand(4, 2), torch.rand(3, 2)], torch.tensor([0, 1, 2, 0]), r"\[\(4, 2\), \(3, 2\)\] and labels \(4,\)"),
    ([torch.rand(4, 2)], torch.tensor([[0, 1, 2, 0]]), r"labels \(1, 4\) do not fit"),
])
def test_batch_selectivity_refuses_shapes_that_do_not_fit(activations, labels, message):
    with pytest.raises(SelectivityError, match=message):
        batch_network_selectivity(activations, labels, 3)
