"""What a run records about itself: the precision "auto" resolved to (and refusing to resume in
another), and metrics.jsonl lines that are always strict JSON."""
import json

import pytest

import selectivity.setup as setup
import selectivity.train.loop as loop
from selectivity.config import ExperimentConfig, TrainSettings
from selectivity.errors import SelectivityError
from selectivity.measure import Measurement
from selectivity.store import RunDirectory
from selectivity.train import RunFailed, train_run


def config(epochs=2, **train) -> ExperimentConfig:
    return ExperimentConfig(train=TrainSettings(epochs=epochs, batch_size=512, **train), device="cpu")


class Stop(Exception):
    pass


def stop_after_first_epoch():
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
