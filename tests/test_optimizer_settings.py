"""The optimizer the trainer builds follows train.lr, momentum, weight_decay and nesterov.

Checked on the session `train_run` trains with, against values written here and against
two SGD steps computed by hand (PyTorch's SGD: d = g + wd * p, b = m * b + d, step along
b, or d + m * b with Nesterov), so a setting dropped on the way fails.
"""
import pytest
import torch

from selectivity.config import ExperimentConfig, TrainSettings
from selectivity.train.loop import _start_session

LR, MOMENTUM, WEIGHT_DECAY = 0.05, 0.8, 0.01  # none of them the defaults


def session(nesterov: bool):
    config = ExperimentConfig(train=TrainSettings(epochs=1, lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY,
                                                  nesterov=nesterov, precision="fp32"), device="cpu")
    return _start_session(config)


@pytest.mark.parametrize("nesterov", [False, True])
def test_the_trainers_optimizer_holds_the_configured_settings(nesterov):
    built = session(nesterov)
    (group,) = built.optimizer.param_groups
    assert (group["lr"], group["momentum"], group["weight_decay"], group["nesterov"]) == (
        LR, MOMENTUM, WEIGHT_DECAY, nesterov)
    assert {id(p) for p in group["params"]} == {id(p) for p in built.model.parameters()}  # every parameter trains


@pytest.mark.parametrize("nesterov", [False, True])
def test_two_optimizer_steps_equal_sgd_with_momentum_and_weight_decay_by_hand(nesterov):
    built = session(nesterov)
    parameters = list(built.model.parameters())
    generator = torch.Generator().manual_seed(0)
    gradients = [[torch.randn(p.shape, generator=generator) for p in parameters] for _ in range(2)]
    expected = [p.detach().double().clone() for p in parameters]
    buffers = None
    for step in gradients:  # by hand, in float64
        directions = [g.double() + WEIGHT_DECAY * p for g, p in zip(step, expected)]
        buffers = directions if buffers is None else [MOMENTUM * b + d for b, d in zip(buffers, directions)]
        updates = [d + MOMENTUM * b for d, b in zip(directions, buffers)] if nesterov else buffers
        expected = [p - LR * u for p, u in zip(expected, updates)]
    for step in gradients:  # by the trainer's optimizer
        for parameter, gradient in zip(parameters, step):
            parameter.grad = gradient.clone()
        built.optimizer.step()
    for parameter, by_hand in zip(parameters, expected):
        torch.testing.assert_close(parameter.detach().double(), by_hand, rtol=1e-5, atol=1e-6)
