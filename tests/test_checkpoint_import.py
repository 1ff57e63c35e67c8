"""`selectivity measure --model resnet20 --weights FILE` on checkpoints saved the ways other code bases save them.

Each file holds the weights of one reference ResNet20 (digits, 1 channel, random BatchNorm
statistics); after loading, accuracy and per-unit SI must equal those of the reference model
run directly (its own forward pass, hooks of the test's own, a numpy SI loop).
"""
import argparse
import json

import numpy as np
import pandas as pd
import pytest
import torch

from selectivity.cli import main
from selectivity.data import load_dataset
from selectivity.model_loading import load_registry_model
from selectivity.models import create_model
from tests.reference import reference_selectivity, reference_stratified_indices

LIMIT = 300
CIFAR10_COMMON = "0.4914,0.4822,0.4465,0.2023,0.1994,0.2010"


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SELECTIVITY_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def reference():
    """A resnet20 for 1-channel digits with non-trivial BatchNorm statistics."""
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=10, in_channels=1)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.3, 0.3)
            module.running_var.uniform_(0.5, 2.0)
    return model.eval()


def foreign_formats(state: dict) -> dict:
    """File contents as other code bases write them (name -> object given to torch.save)."""
    old_style = {f"module.{k}": v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    renamed = {k.replace("linear.", "fc."): v for k, v in state.items()}
    return {
        "plain": state,
        # akamaster/pytorch_resnet_cifar10: DataParallel keys in a training dict, saved by PyTorch < 0.4.1
        "akamaster": {"state_dict": old_style, "best_prec1": 91.7},
        "fc_named_in_model_entry": {"model_state_dict": renamed, "epoch": 200, "optimizer": {"lr": 0.1}},
        "nested_wrappers": {f"module._orig_mod.{k}": v for k, v in state.items()},
    }


def independent_measurement(model, normalize_mean: float, normalize_std: float, layer: str):
    """Accuracy and one layer's SI of `model` on `--limit`'s seeded class-stratified sample of LIMIT digits
    test images (seed 0; chosen by the reference in tests/reference.py), without selectivity's code."""
    data = load_dataset("digits")
    chosen = torch.from_numpy(reference_stratified_indices(data.test.images.numpy(), data.test.labels.numpy(), LIMIT, 0))
    images = data.test.images[chosen].float() / 255  # [N, 1, 8, 8]
    labels = data.test.labels[chosen]
    captured = []
    handle = dict(model.named_modules())[layer].register_forward_hook(lambda m, i, o: captured.append(o))
    with torch.no_grad():
        logits = model((images - normalize_mean) / normalize_std)
    handle.remove()
    accuracy = int((logits.argmax(1) == labels).sum()) / LIMIT
    units = captured[0].mean(dim=(2, 3)).numpy()  # [N, U] spatial means
    return accuracy, reference_selectivity(units.astype(np.float64), labels.numpy(), 10)


def measure(tmp_path, weights, *extra):
    out = tmp_path / "out"
    code = main(["measure", "--no-progress", "--model", "resnet20", "--weights", str(weights), "--dataset", "digits",
                 "--limit", str(LIMIT), "--out", str(out), *extra])
    return code, out


@pytest.mark.parametrize("form", ["plain", "akamaster", "fc_named_in_model_entry", "nested_wrappers"])
def test_foreign_checkpoint_measures_like_the_original_model(tmp_path, reference, form, capsys):
    path = tmp_path / f"{form}.th"
    torch.save(foreign_formats(reference.state_dict())[form], path)
    code, out = measure(tmp_path, path, "--normalize", "0.25,0.5")
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    accuracy, si = independent_measurement(reference, 0.25, 0.5, "layer3.2.relu2")
    assert summary["accuracy"] == pytest.approx(accuracy, abs=1e-9)
    units = pd.read_csv(out / "units.csv")
    measured = units[units["layer"] == "layer3.2.relu2"].sort_values("unit")["si"].to_numpy()
    np.testing.assert_allclose(measured, si, rtol=1e-4, atol=1e-5)
    assert summary["normalization"]["mean"] == [0.25] and summary["normalization"]["std"] == [0.5]


def notes_of(tmp_path, content, trust=False) -> tuple[str, ...]:
    path = tmp_path / "w.th"
    torch.save(content, path)
    return load_registry_model("resnet20", load_dataset("digits"), path, trust).notes


def test_the_mapping_is_reported_key_by_key(tmp_path, reference):
    formats = foreign_formats(reference.state_dict())
    assert notes_of(tmp_path, formats["akamaster"]) == (
        "took the state dict from entry 'state_dict' (ignored: best_prec1)",
        "stripped the prefix 'module.' from 97 of 97 keys",  # 116 tensors less 19 BatchNorm counters
        "kept the model's own num_batches_tracked for 19 BatchNorm layers (absent from the file, as in "
        "checkpoints from PyTorch < 0.4.1; unused in evaluation)")
    assert notes_of(tmp_path, formats["fc_named_in_model_entry"]) == (
        "took the state dict from entry 'model_state_dict' (ignored: epoch, optimizer)",
        "renamed fc.weight -> linear.weight", "renamed fc.bias -> linear.bias")
    assert notes_of(tmp_path, formats["plain"]) == ()


def test_notes_are_printed_before_the_summary(tmp_path, reference, capsys):
    path = tmp_path / "w.th"
    torch.save(foreign_formats(reference.state_dict())["fc_named_in_model_entry"], path)
    assert measure(tmp_path, path)[0] == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[:3] == ["weights: took the state dict from entry 'model_state_dict' (ignored: epoch, optimizer)",
                           "weights: renamed fc.weight -> linear.weight", "weights: renamed fc.bias -> linear.bias"]


def error_of(tmp_path, capsys, content, *extra) -> str:
    path = tmp_path / "bad.th"
    torch.save(content, path)
    code, _ = measure(tmp_path, path, *extra)
    assert code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_a_mismatch_is_refused_naming_the_first_one(tmp_path, reference, capsys):
    state = reference.state_dict()
    deeper = create_model("resnet32", num_classes=10, in_channels=1).state_dict()
    assert "unexpected key layer1.3.conv1.weight [16, 16, 3, 3]" in error_of(tmp_path, capsys, deeper)
    missing = {k: v for k, v in state.items() if k != "layer2.1.bn1.bias"}
    assert "missing key layer2.1.bn1.bias [32]" in error_of(tmp_path, capsys, missing)
    wider = {**state, "layer2.0.conv2.weight": torch.zeros(32, 32, 3, 1)}
    line = error_of(tmp_path, capsys, wider)
    assert "layer2.0.conv2.weight has shape [32, 32, 3, 1] but resnet20's layer2.0.conv2.weight has [32, 32, 3, 3]" in line
    option_b = {**state, "layer2.0.shortcut.0.weight": torch.zeros(32, 16, 1, 1)}  # projection shortcut: not resnet20
    assert "unexpected key layer2.0.shortcut.0.weight" in error_of(tmp_path, capsys, option_b)
    # two file keys for one parameter (linear.* and its alias fc.*): refused, never one silently overwriting
    for doubled in ({**state, "fc.weight": state["linear.weight"] * 2},
                    {"fc.weight": state["linear.weight"] * 2, **state}):
        assert "unexpected key" in error_of(tmp_path, capsys, doubled)


def test_pickled_objects_need_an_explicit_opt_in(tmp_path, reference, capsys):
    content = {"state_dict": reference.state_dict(), "args": argparse.Namespace(lr=0.1)}
    line = error_of(tmp_path, capsys, content)
    assert "holds an object of class argparse.Namespace, which weights_only=True refuses" in line
    assert "--trust-checkpoint" in line
    notes = notes_of(tmp_path, content, trust=True)
    assert notes[0] == "loaded with weights_only=False (--trust-checkpoint): the file holds an object of class argparse.Namespace"
    whole_module = notes_of(tmp_path, reference, trust=True)  # torch.save(model): a pickled module
    assert whole_module[1] == "took the state dict of the pickled CifarResNet module"


def test_no_state_dict_inside_is_named(tmp_path, capsys):
    line = error_of(tmp_path, capsys, {"epoch": 3, "best": 0.5})
    assert "holds no state dict (top-level keys: epoch, best)" in line


@pytest.mark.parametrize("content, message", [
    ({1: torch.zeros(2), 2: torch.zeros(3)}, "holds no state dict (top-level keys: 1, 2)"),
    ({"conv.weight": torch.zeros(2), 3: torch.zeros(3)}, "holds no state dict (top-level keys: conv.weight, 3)"),
    ([torch.zeros(2)], "is not a state dict (list)"),
    (torch.zeros(3), "is not a state dict (Tensor)"),
    ({}, "holds no state dict (an empty dict)"),
], ids=["number-keys", "one-number-key", "list", "tensor", "empty-dict"])
def test_a_file_of_tensors_that_is_not_a_state_dict_is_named(tmp_path, capsys, content, message):
    assert message in error_of(tmp_path, capsys, content)


@pytest.mark.parametrize("text, message", [
    ("imagenet", "is for 3-channel images but digits has 1"),
    ("0.1,0.2,0.3", "gives 3 numbers but digits has 1 channels"),
    ("0.5,0", "has a std <= 0"),
    ("nan,1", "holds a non-finite number"),
    ("0,inf", "holds a non-finite number"),
    ("cifar", "is neither a preset nor numbers"),
])
def test_bad_normalisation_is_one_line(tmp_path, reference, capsys, text, message):
    assert message in error_of(tmp_path, capsys, reference.state_dict(), "--normalize", text)


@pytest.mark.parametrize("content", [b"garbage", b"PK\x03\x04 cut zip", b""], ids=["text", "cut-zip", "empty"])
def test_a_damaged_file_is_named_damaged_not_untrusted(tmp_path, capsys, content):
    """Trusting a damaged file cannot help, so the --trust-checkpoint hint would mislead."""
    path = tmp_path / "bad.th"
    path.write_bytes(content)
    code, _ = measure(tmp_path, path)
    line = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in line
    assert f"cannot read weights file {path}" in line and "expected a torch.save file" in line, line
    assert "--trust-checkpoint" not in line


def test_a_legacy_pickle_file_the_safe_loader_refuses_is_not_called_damaged(tmp_path, reference, capsys):
    """A pre-zip torch.save file is a bare pickle: refused (protocol 4) for its protocol, not as damage."""
    path = tmp_path / "legacy.th"
    torch.save(reference.state_dict(), path, pickle_protocol=4, _use_new_zipfile_serialization=False)
    code, _ = measure(tmp_path, path)
    line = capsys.readouterr().err.strip()
    assert code == 2 and "pickle protocol 4 or 5" in line and "damaged" not in line, line
    assert measure(tmp_path, path, "--trust-checkpoint")[0] == 0


def test_a_protocol_4_file_of_tensors_is_not_called_a_file_of_other_objects(tmp_path, reference, capsys):
    """The safe loader refuses pickle protocol 4 even for tensors alone; trusting the file loads it."""
    path = tmp_path / "protocol4.th"
    torch.save(reference.state_dict(), path, pickle_protocol=4)
    code, _ = measure(tmp_path, path)
    line = capsys.readouterr().err.strip()
    assert code == 2 and "pickle protocol 4 or 5" in line and "--trust-checkpoint" in line, line
    assert measure(tmp_path, path, "--trust-checkpoint")[0] == 0
