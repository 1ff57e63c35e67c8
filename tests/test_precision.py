"""docs/measure.md#precision: training may run bf16 autocast, measurement always runs fp32."""
import dataclasses
import json
from pathlib import Path

import pytest
import torch

import selectivity.train.loop as loop
from selectivity.config import load_config
from selectivity.data.base import LabelledImages
from selectivity.setup import load_data, uses_bf16

REPO = Path(__file__).resolve().parents[1]


def test_auto_precision_picks_bf16_on_cuda_and_native_bf16_cpus(monkeypatch):
    assert uses_bf16("auto", torch.device("cuda"))
    assert not uses_bf16("fp32", torch.device("cuda")) and uses_bf16("bf16", torch.device("cpu"))
    monkeypatch.setattr("selectivity.setup.cpu_has_native_bf16", lambda: True)
    assert uses_bf16("auto", torch.device("cpu"))
    monkeypatch.setattr("selectivity.setup.cpu_has_native_bf16", lambda: False)
    assert not uses_bf16("auto", torch.device("cpu"))


def test_bf16_training_measures_in_fp32(tmp_path, monkeypatch):
    """ReLU outputs are bf16 in the training steps and fp32 in the trainer's test-time measurement."""
    dtypes, phase = {"train": set(), "measure": set()}, ["train"]
    measure_model, start_session = loop.measure_model, loop._start_session

    def measuring(*args, **kwargs):
        phase[0] = "measure"
        try:
            return measure_model(*args, **kwargs)
        finally:
            phase[0] = "train"

    def start_with_hooks(config):
        session = start_session(config)
        for module in session.model.modules():
            if isinstance(module, torch.nn.ReLU):
                module.register_forward_hook(lambda _module, _inputs, output: dtypes[phase[0]].add(output.dtype))
        return session

    def first_images(config):  # bf16 convolutions are slow on CPUs without native bf16: train on 128 images
        data = load_data(config)
        return dataclasses.replace(data, train=LabelledImages(data.train.images[:128], data.train.labels[:128]))

    monkeypatch.setattr(loop, "measure_model", measuring)
    monkeypatch.setattr(loop, "_start_session", start_with_hooks)
    monkeypatch.setattr(loop, "load_data", first_images)
    settings = {"train": {"epochs": 1, "batch_size": 64, "precision": "bf16"}, "regularizer": {"alpha": -1.0},
                "device": "cpu"}
    config = load_config(REPO / "experiments/small-cnn-digits.toml", settings)
    record = loop.train_run(config, tmp_path, progress=False)
    assert dtypes == {"train": {torch.bfloat16}, "measure": {torch.float32}}
    assert record["precision"] == "bf16"
    stored = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert stored[-1]["precision"] == "bf16" and stored[-1]["test_accuracy"] == pytest.approx(record["test_accuracy"])
