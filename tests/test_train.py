import dataclasses
import json

import pandas as pd
import pytest
import torch

import selectivity.train.loop as loop
from selectivity.config import (DataSettings, ExperimentConfig, ModelSettings, RegularizerSettings, TrainSettings,
                                config_from_dict)
from selectivity.errors import SelectivityError
from selectivity.regularizer import SelectivityRegularizer
from selectivity.store import RunDirectory
from selectivity.train import RunFailed, train_run


def digits_config(alpha=0.0, epochs=2, **train):
    return ExperimentConfig(
        train=TrainSettings(epochs=epochs, **train), regularizer=RegularizerSettings(alpha=alpha), device="cpu"
    )


def without_timing(records):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in records]


def test_run_writes_every_file_and_is_then_skipped(tmp_path):
    summary = train_run(digits_config(), tmp_path / "run", progress=False)
    run = RunDirectory(tmp_path / "run")
    assert run.is_done() and summary["epoch"] == 2 and summary["test_accuracy"] > 0.5
    records = run.read_metrics()
    assert [r["epoch"] for r in records] == [1, 2]
    assert set(records[-1]["layers"]) == {"relu1", "relu2", "relu3", "relu4"}
    units = run.read_units()
    assert len(units) == 32 + 64 + 64 + 128 and set(units.columns) >= {"layer", "unit", "si", "dead"}
    assert train_run(digits_config(), tmp_path / "run", progress=False) == json.loads(run.done_path.read_text())["summary"]


def test_a_seed_repeats_a_run_exactly_and_another_seed_does_not(tmp_path):
    first = train_run(digits_config(-1.0, epochs=1), tmp_path / "a", progress=False)
    again = train_run(digits_config(-1.0, epochs=1), tmp_path / "b", progress=False)
    other = train_run(dataclasses.replace(digits_config(-1.0, epochs=1), seed=1), tmp_path / "c", progress=False)
    assert without_timing([first]) == without_timing([again])
    assert first["train_loss"] != other["train_loss"]


def test_alpha_zero_equals_the_loop_without_regularizer(tmp_path, monkeypatch):
    regularized = train_run(digits_config(0.0), tmp_path / "with", progress=False)

    def no_regularizer(alpha, num_classes, layers, **settings):
        return SelectivityRegularizer(alpha, num_classes, layers, track_selectivity=False, **settings)

    monkeypatch.setattr(loop, "SelectivityRegularizer", no_regularizer)
    plain = train_run(digits_config(0.0), tmp_path / "without", progress=False)
    for key in ("train_loss", "train_accuracy", "test_accuracy", "test_loss", "mean_si"):
        assert regularized[key] == plain[key], key
    with_weights = torch.load(tmp_path / "with" / "checkpoint.pt", weights_only=True)["model"]
    plain_weights = torch.load(tmp_path / "without" / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(with_weights[k], plain_weights[k]) for k in with_weights)


def test_logging_every_fifth_step_trains_exactly_like_logging_every_step(tmp_path, monkeypatch):
    import selectivity.regularizer as regularizer_module

    computed = []  # the regularizer's SI computations
    si = regularizer_module.batch_network_selectivity
    monkeypatch.setattr(regularizer_module, "batch_network_selectivity", lambda *a: computed.append(1) or si(*a))
    runs = {}
    for every in (1, 5):
        computed.clear()
        settings = dataclasses.replace(digits_config(0.0), regularizer=RegularizerSettings(track_every=every))
        train_run(settings, tmp_path / str(every), progress=False)
        runs[every] = (RunDirectory(tmp_path / str(every)), len(computed))
    (every_step, every_step_count), (every_fifth, every_fifth_count) = runs[1], runs[5]
    assert every_step_count == 2 * 11 and every_fifth_count == 2 * 3  # 11 steps per epoch: 0, 5, 10 measured
    step_weights = torch.load(every_step.checkpoint_path, weights_only=True)
    fifth_weights = torch.load(every_fifth.checkpoint_path, weights_only=True)
    assert step_weights["model"].keys() == fifth_weights["model"].keys()
    assert all(torch.equal(step_weights["model"][k], fifth_weights["model"][k]) for k in step_weights["model"])
    momentum = [state["momentum_buffer"] for state in step_weights["optimizer"]["state"].values()]
    assert all(torch.equal(a, state["momentum_buffer"])
               for a, state in zip(momentum, fifth_weights["optimizer"]["state"].values()))
    logged = ("seconds", "train_batch_si", "train_batch_si_every")
    for first, fifth in zip(every_step.read_metrics(), every_fifth.read_metrics()):
        assert {k: v for k, v in first.items() if k not in logged} == {k: v for k, v in fifth.items() if k not in logged}
        assert (first["train_batch_si_every"], fifth["train_batch_si_every"]) == (1, 5)
        assert first["train_batch_si"] != fifth["train_batch_si"]  # a different sample of the same epoch
    pd.testing.assert_frame_equal(every_step.read_units(), every_fifth.read_units())


def test_sign_of_alpha_moves_minibatch_selectivity(tmp_path):
    batch_si = {
        alpha: train_run(digits_config(alpha, epochs=3), tmp_path / str(alpha), progress=False)["train_batch_si"]
        for alpha in (-5.0, 0.0, 5.0)
    }
    assert batch_si[-5.0] < batch_si[0.0] < batch_si[5.0]


def test_resume_after_interruption_equals_uninterrupted_run(tmp_path):
    config = digits_config(-1.0, epochs=3, schedule="cosine")
    uninterrupted = train_run(config, tmp_path / "straight", progress=False)

    class Killed(Exception):
        pass

    epochs_seen = []

    def die_after_two_epochs(epochs_done):
        epochs_seen.append(epochs_done)
        if len(epochs_seen) == 2:
            raise Killed()

    with pytest.raises(Killed):
        train_run(config, tmp_path / "resumed", progress=False, heartbeat=die_after_two_epochs)
    run = RunDirectory(tmp_path / "resumed")
    assert not run.is_done() and torch.load(run.checkpoint_path, weights_only=True)["epoch"] == 2
    assert epochs_seen == [1, 2]  # the heartbeat follows each checkpoint and carries its epoch count
    resumed = train_run(config, tmp_path / "resumed", progress=False)
    assert without_timing([resumed]) == without_timing([uninterrupted])
    assert without_timing(run.read_metrics()) == without_timing(RunDirectory(tmp_path / "straight").read_metrics())
    pd.testing.assert_frame_equal(run.read_units(), RunDirectory(tmp_path / "straight").read_units())


def test_nan_loss_fails_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    # the lr jumps by 1e12 after the first epoch, so the second epoch diverges
    config = digits_config(epochs=3, schedule="step", milestones=(1,), gamma=1e12)
    with pytest.raises(RunFailed) as failure:
        train_run(config, tmp_path / "run", progress=False)
    assert failure.value.epoch == 2
    run = RunDirectory(tmp_path / "run")
    assert run.failure()["epoch"] == 2 and "loss became" in run.failure()["reason"]
    assert torch.load(run.checkpoint_path, weights_only=True)["epoch"] == 1
    assert not run.is_done()


def test_schedule_alpha_is_applied_per_epoch(tmp_path):
    train_run(digits_config("0x1,-2", epochs=3), tmp_path / "run", progress=False)
    assert [r["alpha"] for r in RunDirectory(tmp_path / "run").read_metrics()] == [0.0, -2.0, -2.0]


def test_the_regularizers_alpha_and_penalty_follow_the_schedule_per_epoch(tmp_path, monkeypatch):
    """Not only the records: the penalty each step adds uses that epoch's alpha."""
    seen = []  # (alpha the penalty used, penalty, batch mu_SI) per training step
    original = SelectivityRegularizer.penalty

    def recording_penalty(self, labels):
        penalty = original(self, labels)
        seen.append((float(self.alpha), float(penalty.detach()), float(self.last_mean_si)))
        return penalty

    monkeypatch.setattr(SelectivityRegularizer, "penalty", recording_penalty)
    train_run(digits_config("-2x1,0x1,3", epochs=3), tmp_path / "run", progress=False)
    steps = len(seen) // 3  # the digits train split is 11 batches of 128 per epoch
    assert steps == 11 and len(seen) == 33
    assert [alpha for alpha, _, _ in seen] == [-2.0] * steps + [0.0] * steps + [3.0] * steps
    for alpha, penalty, mean_si in seen:
        assert penalty == pytest.approx(-alpha * mean_si, rel=1e-5, abs=1e-7)  # -alpha * mu_SI, 0 when alpha = 0
    assert all(penalty != 0 for _, penalty, _ in seen[:steps] + seen[2 * steps:])
    assert [r["alpha"] for r in RunDirectory(tmp_path / "run").read_metrics()] == [-2.0, 0.0, 3.0]


def test_bad_inputs_fail_before_training(tmp_path):
    with pytest.raises(SelectivityError, match="unknown model 'resnet7'; expected one of"):
        train_run(ExperimentConfig(model=ModelSettings(name="resnet7")), tmp_path / "a", progress=False)
    with pytest.raises(SelectivityError, match="unknown dataset 'mnist'"):
        train_run(ExperimentConfig(data=DataSettings(dataset="mnist")), tmp_path / "b", progress=False)
    with pytest.raises(SelectivityError, match="cifar-10-batches-py"):
        config = ExperimentConfig(data=DataSettings(dataset="cifar10", root=str(tmp_path / "empty")))
        train_run(config, tmp_path / "c", progress=False)
    assert not (tmp_path / "c" / "checkpoint.pt").exists()
    train_run(digits_config(epochs=1), tmp_path / "d", progress=False)
    (tmp_path / "d" / "done.json").unlink()
    with pytest.raises(SelectivityError, match="holds a different run"):
        train_run(digits_config(epochs=2), tmp_path / "d", progress=False)
    with pytest.raises(SelectivityError, match="train.momentum = 'high' has type str; expected float"):
        config_from_dict({"train": {"momentum": "high"}})


@pytest.mark.slow
def test_compiled_model_is_traced_once_across_an_alpha_schedule(tmp_path):
    """Hooks attach once and alpha is a device tensor: epochs with other alphas reuse the trace."""
    from torch._dynamo.utils import counters

    counters.clear()
    config = digits_config("-1x1,0x1,-2", epochs=3, compile=True, precision="fp32")
    compiled = RunDirectory(tmp_path / "compiled")
    train_run(config, compiled.path, progress=False)
    # one graph for full batches, one for the last partial batch (1,347 = 10 x 128 + 67)
    assert counters["stats"]["unique_graphs"] == 2
    eager = digits_config("-1x1,0x1,-2", epochs=3, precision="fp32")
    train_run(eager, tmp_path / "eager", progress=False)
    first_compiled, first_eager = compiled.read_metrics()[0], RunDirectory(tmp_path / "eager").read_metrics()[0]
    # inductor's kernels sum in another order than eager's, and the order depends on the thread count:
    # with OMP_NUM_THREADS=1 the epoch's mean loss differed by 1.3e-4 relative (2.2432 vs 2.2429)
    assert first_compiled["train_loss"] == pytest.approx(first_eager["train_loss"], rel=1e-3)
    assert first_compiled["train_batch_si"] == pytest.approx(first_eager["train_batch_si"], rel=1e-2)
