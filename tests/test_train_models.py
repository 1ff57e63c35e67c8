"""Every registered model takes a regularized training step on the CPU (smoke size), minimising
cross-entropy - alpha * batch mu_SI (checked against a cross-entropy and an SI computed here)."""
import numpy as np
import pytest
import torch

from selectivity.config import DataSettings, ExperimentConfig, ModelSettings, TrainSettings
from selectivity.data import DatasetSplits, LabelledImages
from selectivity.models import list_models
from selectivity.regularizer import SelectivityRegularizer
from selectivity.train.augment import draw_epoch_randomness
from selectivity.train.epoch import train_epoch
from selectivity.train.loop import make_optimizer
from selectivity.setup import build_model
from selectivity.train.step import TrainStep, epoch_plan

NATIVE_SIZE = {"resnet18": 64, "resnet50": 64, "small_cnn": 8}


def fake_data(size: int, channels: int) -> DatasetSplits:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (8, channels, size, size), dtype=torch.uint8, generator=generator)
    labels = torch.arange(8) % 4
    split = LabelledImages(images, labels)
    return DatasetSplits("fake", split, split, ("a", "b", "c", "d"), (0.5,) * channels, (0.25,) * channels)


def setup(name: str):
    torch.manual_seed(0)
    size = NATIVE_SIZE.get(name, 32)
    data = fake_data(size, 1 if name == "small_cnn" else 3)
    config = ExperimentConfig(
        data=DataSettings(crop_padding=2, flip=True), model=ModelSettings(name=name),
        train=TrainSettings(epochs=1, batch_size=8, lr=0.01, weight_decay=0.0), device="cpu",
    )
    return data, config, build_model(config, data).to(memory_format=torch.channels_last)


def one_step(name: str, model, data, config, alpha: float):
    """One regularized step over the 8 images; returns (stepper, totals, steps, the epoch's plan)."""
    optimizer = make_optimizer(model, config, torch.device("cpu"))
    regularizer = SelectivityRegularizer(alpha, data.num_classes)
    plan = epoch_plan(draw_epoch_randomness(torch.Generator().manual_seed(0), 8, 2, True))
    with regularizer.attach(model):
        stepper = TrainStep(model, optimizer, regularizer, data, data.train.images, data.train.labels, config,
                            use_bf16=False)
        totals, steps = train_epoch(stepper, plan, config, first_step=0, progress=False, description=name)
    return stepper, totals, steps, plan


def cross_entropy_by_hand(logits: np.ndarray, labels: np.ndarray) -> float:
    shifted = logits - logits.max(1, keepdims=True)
    log_probabilities = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    return float(-log_probabilities[np.arange(len(labels)), labels].mean())


def mean_si_by_hand(layers: list[np.ndarray], labels: np.ndarray, classes: int = 4) -> float:
    """Mean over layers of the mean over units of (mu_max - mu_rest) / (mu_max + mu_rest + 1e-7)."""
    per_layer = []
    for units in layers:  # [B, U]
        means = np.stack([units[labels == k].mean(0) for k in range(classes)])  # every class is in the batch
        mu_max = means.max(0)
        mu_rest = (means.sum(0) - mu_max) / (classes - 1)
        per_layer.append(np.mean((mu_max - mu_rest) / (mu_max + mu_rest + 1e-7)))
    return float(np.mean(per_layer))


@pytest.mark.parametrize("name", list_models())
def test_one_regularized_step_changes_every_parameter(name):
    data, config, model = setup(name)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    _, totals, steps, _ = one_step(name, model, data, config, alpha=-1.0)
    assert steps == 1 and torch.isfinite(totals.loss) and 0 <= float(totals.selectivity) <= 1
    unchanged = [k for k, v in model.named_parameters() if torch.equal(v, before[k])]
    assert not unchanged


@pytest.mark.parametrize("name", list_models())
def test_the_step_objective_is_cross_entropy_minus_alpha_times_the_batch_si(name):
    """alpha > 0 must lower the objective as mu_SI rises: objective = CE - alpha * mu_SI, CE by hand."""
    alpha = 0.5
    data, config, model = setup(name)
    logits = []
    hook = model.register_forward_hook(lambda module, inputs, output: logits.append(output.detach().double().numpy()))
    stepper, totals, _, plan = one_step(name, model, data, config, alpha)
    hook.remove()
    labels = data.train.labels[plan[0]].numpy()
    cross_entropy = cross_entropy_by_hand(logits[0], labels)
    mean_si = float(totals.selectivity)  # the batch mu_SI the penalty used (by hand below, for small_cnn)
    assert mean_si > 0 and float(totals.loss) / 8 == pytest.approx(cross_entropy, rel=1e-5)
    assert float(stepper.last_objective) == pytest.approx(cross_entropy - alpha * mean_si, rel=1e-5)
    assert float(stepper.last_objective) < cross_entropy


def test_small_cnn_step_objective_uses_the_batch_si_computed_by_hand():
    alpha = 0.5
    data, config, model = setup("small_cnn")
    captured = {}
    hooks = [getattr(model, name).register_forward_hook(
        lambda module, inputs, output, name=name: captured.__setitem__(
            name, (output.mean((2, 3)) if output.dim() == 4 else output).detach().double().numpy()))
        for name in ("relu1", "relu2", "relu3", "relu4")]  # small_cnn's unit layers, the regularizer's default
    logits = []
    hooks.append(model.register_forward_hook(lambda module, inputs, output: logits.append(
        output.detach().double().numpy())))
    stepper, totals, _, plan = one_step("small_cnn", model, data, config, alpha)
    for hook in hooks:
        hook.remove()
    labels = data.train.labels[plan[0]].numpy()
    mean_si = mean_si_by_hand([captured[name] for name in ("relu1", "relu2", "relu3", "relu4")], labels)
    assert float(totals.selectivity) == pytest.approx(mean_si, rel=1e-4)
    expected = cross_entropy_by_hand(logits[0], labels) - alpha * mean_si
    assert float(stepper.last_objective) == pytest.approx(expected, rel=1e-5)
