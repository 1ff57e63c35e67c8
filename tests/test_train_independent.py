"""The trainer's and `measure`'s numbers against computations written here, independently of the code.

small_cnn has BatchNorm, so a model left in train mode (batch statistics) or the wrong split
changes every number compared here.
"""
import copy
import json
import math

import numpy as np
import pytest
import torch

from selectivity.cli import main
from selectivity.config import ExperimentConfig, RegularizerSettings, TrainSettings
from selectivity.data import load_dataset
from selectivity.models import create_model
from selectivity.regularizer import SelectivityRegularizer
from selectivity.store import RunDirectory
from selectivity.train import train_run
from selectivity.train.augment import draw_epoch_randomness
from selectivity.train.loop import make_optimizer
from selectivity.train.step import TrainStep, epoch_plan

BATCH = 512  # few steps per epoch: these tests follow epochs, not convergence
STEPS_PER_EPOCH = math.ceil(1347 / BATCH)  # digits' train split


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def config(alpha=0.0, epochs=1, **train) -> ExperimentConfig:
    return ExperimentConfig(train=TrainSettings(epochs=epochs, precision="fp32", **train),
                            regularizer=RegularizerSettings(alpha=alpha), device="cpu")


def evaluate_by_hand(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, data) -> dict:
    """Accuracy, mean cross-entropy and network mean SI of an eval-mode forward pass, in float64 numpy."""
    model = copy.deepcopy(model).float().eval()
    mean = torch.tensor(data.mean).reshape(1, -1, 1, 1)
    std = torch.tensor(data.std).reshape(1, -1, 1, 1)
    inputs = ((images.double() / 255 - mean) / std).float()  # [N, C, H, W]
    activations = []
    hooks = [module.register_forward_hook(lambda m, i, out: activations.append(out.double().flatten(2).mean(2)
                                                                               if out.dim() == 4 else out.double()))
             for module in model.modules() if isinstance(module, torch.nn.ReLU)]
    with torch.no_grad():
        logits = model(inputs).double().numpy()  # [N, K]
    for hook in hooks:
        hook.remove()
    labels = labels.numpy()
    log_probabilities = logits - logits.max(1, keepdims=True)
    log_probabilities -= np.log(np.exp(log_probabilities).sum(1, keepdims=True))
    layer_means = []
    for units in activations:  # [N, U]
        units = units.numpy()
        class_means = np.stack([units[labels == k].mean(0) for k in range(data.num_classes)])  # [K, U]
        mu_max = class_means.max(0)
        mu_rest = (class_means.sum(0) - mu_max) / (data.num_classes - 1)
        layer_means.append(np.mean((mu_max - mu_rest) / (mu_max + mu_rest + 1e-7)))
    return {"accuracy": float(np.mean(logits.argmax(1) == labels)),
            "loss": float(-log_probabilities[np.arange(len(labels)), labels].mean()),
            "mean_si": float(np.mean(layer_means))}


def trained_model(run_dir, data) -> torch.nn.Module:
    model = create_model("small_cnn", num_classes=data.num_classes, in_channels=1)
    model.load_state_dict(torch.load(run_dir / "checkpoint.pt", weights_only=True)["model"])
    return model


def test_trainer_evaluation_is_an_eval_mode_pass_over_the_test_split(tmp_path, digits):
    record = train_run(config(batch_size=BATCH), tmp_path / "run", progress=False)
    by_hand = evaluate_by_hand(trained_model(tmp_path / "run", digits), digits.test.images, digits.test.labels, digits)
    assert record["test_accuracy"] == pytest.approx(by_hand["accuracy"], abs=1.5 / len(digits.test.labels))
    assert record["test_loss"] == pytest.approx(by_hand["loss"], rel=1e-4)
    assert record["mean_si"] == pytest.approx(by_hand["mean_si"], abs=1e-4)


@pytest.mark.parametrize("split", ["train", "test"])
def test_measure_command_measures_the_split_it_is_asked_for_in_eval_mode(tmp_path, digits, split):
    torch.manual_seed(0)
    model = create_model("small_cnn", num_classes=10, in_channels=1)
    model.train()
    with torch.no_grad():  # BatchNorm running statistics far from any batch's: train mode would show
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    out = tmp_path / "out"
    assert main(["measure", "--model", "small_cnn", "--weights", str(tmp_path / "weights.pt"), "--dataset", "digits",
                 "--split", split, "--out", str(out), "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    chosen = getattr(digits, split)
    by_hand = evaluate_by_hand(model, chosen.images, chosen.labels, digits)
    assert summary["num_inputs"] == len(chosen.labels)
    assert summary["loss"] == pytest.approx(by_hand["loss"], rel=1e-4)
    assert summary["accuracy"] == pytest.approx(by_hand["accuracy"], abs=1.5 / len(chosen.labels))
    assert summary["mean_si"] == pytest.approx(by_hand["mean_si"], abs=1e-4)


def test_an_alpha_schedule_reaches_the_regularizer_in_every_epoch(tmp_path, monkeypatch):
    seen = []
    penalty = SelectivityRegularizer.penalty

    def recording_penalty(self, labels):
        seen.append(float(self.alpha))
        return penalty(self, labels)

    monkeypatch.setattr(SelectivityRegularizer, "penalty", recording_penalty)
    train_run(config(alpha="0x1,-2x1,0.5", epochs=3, batch_size=BATCH), tmp_path / "run", progress=False)
    assert seen == [0.0] * STEPS_PER_EPOCH + [-2.0] * STEPS_PER_EPOCH + [0.5] * STEPS_PER_EPOCH


def test_the_step_applies_label_smoothing_as_defined(digits):
    smoothing = 0.3
    settings = config(label_smoothing=smoothing)
    torch.manual_seed(0)
    model = create_model("small_cnn", num_classes=10, in_channels=1)
    reference = copy.deepcopy(model)  # the same weights, before the step changes them
    regularizer = SelectivityRegularizer(0.0, digits.num_classes, track_selectivity=False)
    stepper = TrainStep(model, make_optimizer(model, settings, torch.device("cpu")), regularizer, digits,
                        digits.train.images, digits.train.labels, settings, use_bf16=False)
    plan = epoch_plan(draw_epoch_randomness(torch.Generator().manual_seed(0), len(digits.train.labels), 0, False))
    batch = plan[:, :64]
    stepper.start_epoch()
    stepper(batch, 0.05)
    images, labels = digits.train.images[batch[0]], digits.train.labels[batch[0]].numpy()
    mean, std = torch.tensor(digits.mean).reshape(1, -1, 1, 1), torch.tensor(digits.std).reshape(1, -1, 1, 1)
    with torch.no_grad():
        logits = reference.train()(((images.double() / 255 - mean) / std).float()).double().numpy()
    log_probabilities = logits - logits.max(1, keepdims=True)
    log_probabilities -= np.log(np.exp(log_probabilities).sum(1, keepdims=True))
    # (1 - s) * CE(true class) + s * mean over classes of CE (uniform target), per input
    per_input = -((1 - smoothing) * log_probabilities[np.arange(64), labels] + smoothing * log_probabilities.mean(1))
    assert float(stepper.totals.loss) / stepper.totals.images == pytest.approx(per_input.mean(), rel=1e-5)


def test_resume_drops_metrics_records_past_the_checkpoint(tmp_path):
    class Stop(Exception):
        pass

    def stop_after_first_epoch(epochs_done):
        raise Stop

    run = RunDirectory(tmp_path / "run")
    with pytest.raises(Stop):
        train_run(config(epochs=2, batch_size=BATCH), run.path, progress=False, heartbeat=stop_after_first_epoch)
    first = run.read_metrics()
    assert [r["epoch"] for r in first] == [1]
    # a record written after the last checkpoint (the process died between the two writes)
    run.write_metrics(first + [{**first[0], "epoch": 2, "test_accuracy": -1.0}])
    train_run(config(epochs=2, batch_size=BATCH), run.path, progress=False)
    records = run.read_metrics()
    assert [r["epoch"] for r in records] == [1, 2]
    assert records[1]["test_accuracy"] >= 0
