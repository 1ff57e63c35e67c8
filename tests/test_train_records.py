"""What a run records about itself: the precision "auto" resolved to (and refusing to resume in
another), metrics.jsonl lines that are always strict JSON, and how train_batch_si was measured."""
import json

import numpy as np
import pytest
import torch
from torch import nn

import selectivity.setup as setup
import selectivity.train.loop as loop
from selectivity.config import ExperimentConfig, RegularizerSettings, TrainSettings
from selectivity.errors import SelectivityError
from selectivity.measure import Measurement
from selectivity.store import RunDirectory
from selectivity.regularizer import SelectivityRegularizer
from selectivity.train import RunFailed, train_run
from tests.reference import reference_selectivity


def config(epochs=2, **train) -> ExperimentConfig:
    return ExperimentConfig(train=TrainSettings(epochs=epochs, batch_size=512, **train), device="cpu")


class Stop(Exception):
    pass


def stop_after_first_epoch(epochs_done):
    raise Stop


def strict_json_lines(path) -> list[dict]:
    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    return [json.loads(line, parse_constant=refuse) for line in path.read_text().splitlines()]


def start_in_bf16(monkeypatch, run_dir, **train):
    """One epoch of a precision="auto" run on a machine where auto means bf16, then a stop."""
    monkeypatch.setattr(setup, "cpu_has_native_bf16", lambda: True)
    with pytest.raises(Stop):
        train_run(config(**train), run_dir, progress=False, heartbeat=stop_after_first_epoch)


def test_the_resolved_precision_is_recorded_in_the_run(tmp_path, monkeypatch):
    for native, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(setup, "cpu_has_native_bf16", lambda native=native: native)
        run = RunDirectory(tmp_path / expected)
        with pytest.raises(Stop):
            train_run(config(), run.path, progress=False, heartbeat=stop_after_first_epoch)
        assert json.loads(run.config_path.read_text())["precision"] == expected
        assert run.read_metrics()[0]["precision"] == expected


@pytest.mark.parametrize("legacy", [False, True], ids=["recorded", "legacy-run-without-record"])
def test_resuming_in_another_precision_is_refused_unless_allowed(tmp_path, monkeypatch, legacy):
    run = RunDirectory(tmp_path / "run")
    start_in_bf16(monkeypatch, run.path)
    if legacy:  # a run written before config.json held the precision: its first record tells
        stored = json.loads(run.config_path.read_text())
        del stored["precision"]
        run.config_path.write_text(json.dumps(stored))
    monkeypatch.setattr(setup, "cpu_has_native_bf16", lambda: False)  # "auto" now resolves to fp32
    with pytest.raises(SelectivityError, match="was trained in bf16 for 1 epoch.* resolves to fp32 here") as error:
        train_run(config(), run.path, progress=False)
    assert "\n" not in str(error.value)
    assert [r["epoch"] for r in run.read_metrics()] == [1]  # nothing trained
    train_run(config(allow_precision_change=True), run.path, progress=False)
    assert [r["precision"] for r in run.read_metrics()] == ["bf16", "fp32"]


def test_resuming_in_the_same_precision_continues(tmp_path, monkeypatch):
    run = RunDirectory(tmp_path / "run")
    start_in_bf16(monkeypatch, run.path)
    train_run(config(), run.path, progress=False)
    assert [r["precision"] for r in run.read_metrics()] == ["bf16", "bf16"]


def test_a_nan_evaluation_fails_the_run_and_never_reaches_metrics_jsonl(tmp_path, monkeypatch):
    measure = loop.measure_model

    def nan_loss(*args, **kwargs):
        result = measure(*args, **kwargs)
        return Measurement(result.units, result.layers, result.accuracy, float("nan"), result.mean_si)

    monkeypatch.setattr(loop, "measure_model", nan_loss)
    run = RunDirectory(tmp_path / "run")
    with pytest.raises(RunFailed, match=r"evaluation after epoch 1 is not finite \(test_loss = nan\)"):
        train_run(config(precision="fp32"), run.path, progress=False)
    assert run.failure()["epoch"] == 1 and not run.is_done()
    assert strict_json_lines(run.metrics_path) == []


def test_the_store_refuses_to_write_nan_or_infinity(tmp_path):
    run = RunDirectory(tmp_path / "run")
    run.write_metrics([{"epoch": 1, "test_loss": 0.5}])
    for bad in (float("nan"), float("inf")):
        with pytest.raises(SelectivityError, match="is not finite"):
            run.write_metrics([{"epoch": 1, "test_loss": 0.5}, {"epoch": 2, "test_loss": bad}])
    assert strict_json_lines(run.metrics_path) == [{"epoch": 1, "test_loss": 0.5}]


# the keys of a metrics record on main before regularizer.track_every (b4c1599)
MAIN_RECORD_KEYS = {"alpha", "dead_fraction", "epoch", "layers", "lr", "mean_si", "precision", "seconds",
                    "test_accuracy", "test_loss", "train_accuracy", "train_batch_si", "train_loss"}


def watched_epoch(monkeypatch, run_dir, track_every: int) -> tuple[dict, list[dict]]:
    """One fp32 epoch of digits at alpha = 0 and batch 200 (1,347 images: 7 steps), watched from outside.

    Returns the metrics record and, per training step, what the test's own hooks saw: the
    post-ReLU maps' spatial means ([B, U] float64 per layer), the labels, and the
    regularizer's mu_SI (None when it measured nothing).
    """
    steps = []
    build = loop.build_model

    def build_watched(settings, data):
        model = build(settings, data)
        model.register_forward_pre_hook(lambda module, inputs: steps.append({"units": []}) if module.training else None)
        for module in model.modules():
            if isinstance(module, nn.ReLU):
                module.register_forward_hook(lambda module, inputs, output: steps[-1]["units"].append(
                    output.detach().double().flatten(2).mean(2) if output.dim() == 4 else output.detach().double())
                    if module.training else None)
        return model

    penalty = SelectivityRegularizer.penalty

    def watched_penalty(self, labels):
        value = penalty(self, labels)
        steps[-1].update(labels=labels.numpy(), si=self.last_mean_si)
        return value

    monkeypatch.setattr(loop, "build_model", build_watched)
    monkeypatch.setattr(SelectivityRegularizer, "penalty", watched_penalty)
    settings = ExperimentConfig(train=TrainSettings(epochs=1, batch_size=200, precision="fp32"),
                                regularizer=RegularizerSettings(track_every=track_every), device="cpu")
    train_run(settings, run_dir, progress=False)
    return RunDirectory(run_dir).read_metrics()[0], steps


def batch_mean_si_by_hand(step: dict) -> float:
    """mu_SI of one batch: SI per unit (numpy loops), mean over units, then over layers."""
    return float(np.mean([reference_selectivity(units.numpy(), step["labels"], 10).mean() for units in step["units"]]))


def test_every_third_step_is_measured_and_the_record_averages_those_steps(tmp_path, monkeypatch):
    record, steps = watched_epoch(monkeypatch, tmp_path / "run", track_every=3)
    assert len(steps) == 7 and all(len(step["units"]) == 4 for step in steps)
    assert [index for index, step in enumerate(steps) if step["si"] is not None] == [0, 3, 6]
    by_hand = [batch_mean_si_by_hand(steps[index]) for index in (0, 3, 6)]
    for index, expected in zip((0, 3, 6), by_hand):
        assert steps[index]["si"].item() == pytest.approx(expected, rel=1e-5)
    assert record["train_batch_si"] == pytest.approx(np.mean(by_hand), rel=1e-5)
    assert record["train_batch_si_every"] == 3


def test_every_step_logging_records_exactly_what_main_recorded(tmp_path, monkeypatch):
    record, steps = watched_epoch(monkeypatch, tmp_path / "run", track_every=1)
    assert set(record) == MAIN_RECORD_KEYS | {"train_batch_si_every"} and record["train_batch_si_every"] == 1
    assert all(step["si"] is not None for step in steps) and len(steps) == 7
    # main's train_batch_si: each step's mu_SI added into a float32 device scalar, over the number of batches
    total = torch.zeros(())
    for step in steps:
        total += step["si"]
    assert record["train_batch_si"] == total.item() / len(steps)  # bit for bit
    assert record["train_batch_si"] == pytest.approx(np.mean([batch_mean_si_by_hand(s) for s in steps]), rel=1e-5)
