"""`selectivity measure` end to end on digits (small_cnn) and a tiny RGB imagefolder (torchvision resnet18)."""
import json

import numpy as np
import pandas as pd
import pytest
import torch
import torchvision
from PIL import Image

from selectivity.cli import main
from selectivity.config import config_from_dict
from selectivity.data import load_dataset
from selectivity.measure import measure_model
from selectivity.models import create_model
from selectivity.store import RunDirectory
from selectivity.setup import build_model
from tests.reference import reference_stratified_indices

UNIT_COLUMNS = ["layer", "unit", "si", "preferred_class", "mu_max", "mu_rest", "d_prime", "dead", "layout", "reduction",
                "signed"]
SMALL_CNN_UNITS = 32 + 64 + 64 + 128


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SELECTIVITY_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture
def small_cnn_weights(tmp_path):
    """An untrained small_cnn for digits, with non-trivial BatchNorm statistics, saved as a state_dict."""
    torch.manual_seed(0)
    model = create_model("small_cnn", num_classes=10, in_channels=1)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
    path = tmp_path / "small_cnn.pt"
    torch.save(model.state_dict(), path)
    return path, model


def measure(*argv):
    return main(["measure", "--no-progress", *map(str, argv)])


def error_line(capsys) -> str:
    """The command's stderr must be exactly one line, the error."""
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("selectivity measure: error: ")
    return lines[0]


def test_registry_model_writes_tables_equal_to_measure_model(tmp_path, small_cnn_weights, digits):
    weights, model = small_cnn_weights
    assert measure("--model", "small_cnn", "--weights", weights, "--dataset", "digits", "--out", tmp_path / "out") == 0
    units = pd.read_csv(tmp_path / "out" / "units.csv")
    assert list(units.columns) == UNIT_COLUMNS and len(units) == SMALL_CNN_UNITS
    parquet = pd.read_parquet(tmp_path / "out" / "units.parquet")
    pd.testing.assert_frame_equal(parquet, units, check_dtype=False)
    layers = pd.read_csv(tmp_path / "out" / "layers.csv")
    assert list(layers["layer"]) == ["relu1", "relu2", "relu3", "relu4"]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    direct = measure_model(model, digits.test, 10, digits.mean, digits.std)
    assert summary["num_inputs"] == 450 and summary["num_units"] == SMALL_CNN_UNITS
    assert summary["accuracy"] == direct.accuracy
    assert summary["loss"] == pytest.approx(direct.loss, rel=1e-12)
    assert summary["mean_si"] == pytest.approx(direct.mean_si, rel=1e-12)
    assert summary["mean_si"] == pytest.approx(layers["mean_si"].mean(), rel=1e-12)  # mean of layer means
    assert summary["dead_units"] == int(direct.units["dead"].sum()) == int(layers["dead_units"].sum())
    np.testing.assert_allclose(parquet["si"], direct.units["si"], rtol=1e-12)


def test_run_folder_uses_its_config_and_checkpoint(tmp_path, monkeypatch, digits, capsys):
    config = config_from_dict({"model": {"name": "small_cnn"}, "data": {"dataset": "digits"}, "seed": 3})
    run = RunDirectory(tmp_path / "runs" / "abc" / "seed_3")
    run.claim_settings(config)
    torch.manual_seed(1)
    model = build_model(config, digits)
    torch.save({"model": model.state_dict(), "epoch": 2}, run.checkpoint_path)
    monkeypatch.chdir(tmp_path)  # the default output folder lands under ./runs/measure, not in the cwd itself
    monkeypatch.delenv("SELECTIVITY_RUNS", raising=False)
    assert measure("--run", run.path, "--limit", 100) == 0
    outputs = list(tmp_path.glob("runs/measure/small_cnn-*-seed_3-digits"))
    assert len(outputs) == 1 and sorted(p.name for p in tmp_path.iterdir()) == ["runs"], list(tmp_path.iterdir())
    summary = json.loads((outputs[0] / "summary.json").read_text())
    chosen = torch.from_numpy(reference_stratified_indices(digits.test.images.numpy(), digits.test.labels.numpy(), 100, 0))
    first_100 = type(digits.test)(digits.test.images[chosen].contiguous(), digits.test.labels[chosen].contiguous())
    direct = measure_model(model, first_100, 10, digits.mean, digits.std)
    assert summary["num_inputs"] == 100 and summary["dataset"] == "digits"
    assert summary["mean_si"] == pytest.approx(direct.mean_si, rel=1e-12)
    assert summary["accuracy"] == direct.accuracy
    printed = capsys.readouterr().out
    assert "network mean SI" in printed and "relu4" in printed


def test_inputs_missing_classes_are_named_in_a_warning_and_the_summary(tmp_path, small_cnn_weights, digits, capsys):
    weights, _ = small_cnn_weights
    argv = ["--model", "small_cnn", "--weights", weights, "--dataset", "digits"]
    chosen = reference_stratified_indices(digits.test.images.numpy(), digits.test.labels.numpy(), 5, 0)
    first_5 = sorted(set(digits.test.labels[chosen].tolist()))  # SI over these classes only (a stratified 5)
    assert 2 <= len(first_5) < 10
    assert measure(*argv, "--out", tmp_path / "few", "--limit", 5) == 0
    captured = capsys.readouterr()
    assert captured.err.strip() == (f"selectivity measure: warning: the 5 test inputs hold {len(first_5)} of the 10 "
                                    "classes of digits; SI, mu_rest and the preferred class are over those present")
    assert f"(5 inputs, {len(first_5)} of 10 classes present," in captured.out
    summary = json.loads((tmp_path / "few" / "summary.json").read_text())
    assert summary["classes_present"] == len(first_5) and summary["num_classes"] == 10
    assert set(pd.read_csv(tmp_path / "few" / "units.csv")["preferred_class"]) <= set(first_5)

    assert measure(*argv, "--out", tmp_path / "all") == 0  # every class present: no warning
    captured = capsys.readouterr()
    assert captured.err == "" and "(450 inputs, 10 classes," in captured.out
    assert json.loads((tmp_path / "all" / "summary.json").read_text())["classes_present"] == 10


def test_explicit_layer_list(tmp_path, small_cnn_weights):
    weights, _ = small_cnn_weights
    argv = ["--model", "small_cnn", "--weights", weights, "--dataset", "digits", "--layers", "relu3,relu1"]
    assert measure(*argv, "--out", tmp_path / "out", "--split", "train", "--limit", 200) == 0
    units = pd.read_parquet(tmp_path / "out" / "units.parquet")
    assert list(units["layer"].unique()) == ["relu1", "relu3"]  # forward order, not request order
    assert len(units) == 32 + 64
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["split"] == "train"


def write_rgb_tree(root, classes=("ant", "bee"), per_class=3):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for class_name in classes:
            (root / split / class_name).mkdir(parents=True)
            for index in range(per_class):
                pixels = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / class_name / f"{index}.png")
    return root


def test_torchvision_resnet18_reused_relu_is_one_layer_per_call(tmp_path):
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(num_classes=10).state_dict(), tmp_path / "resnet18.pth")
    tree = write_rgb_tree(tmp_path / "tree")
    argv = ["--torchvision", "resnet18", "--weights", tmp_path / "resnet18.pth", "--dataset", "imagefolder"]
    assert measure(*argv, "--data-root", tree, "--out", tmp_path / "out") == 0
    layers = pd.read_csv(tmp_path / "out" / "layers.csv")
    assert len(layers) == 17 and layers["layer"].is_unique
    assert {"relu", "layer1.0.relu#1", "layer1.0.relu#2", "layer4.1.relu#2"} <= set(layers["layer"])
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["normalization"]["source"] == "imagenet" and summary["num_classes"] == 2
    assert summary["normalization"]["mean"] == [0.485, 0.456, 0.406]
    assert measure(*argv, "--data-root", tree, "--out", tmp_path / "one", "--layers", "layer1.0.relu#2") == 0
    assert list(pd.read_csv(tmp_path / "one" / "layers.csv")["layer"]) == ["layer1.0.relu#2"]


def test_a_head_with_more_classes_than_the_dataset_is_scored_over_the_datasets_classes(tmp_path, capsys):
    """A 10-output head on a 2-class folder: accuracy is that of the head cut to its first 2 outputs,
    computed here on a model whose fc keeps only those rows."""
    from selectivity.data import load_dataset

    torch.manual_seed(0)
    full = torchvision.models.resnet18(num_classes=10)
    full.fc.bias.data[2:] += 100.0  # the extra classes would win every argmax
    torch.save(full.state_dict(), tmp_path / "resnet18.pth")
    tree = write_rgb_tree(tmp_path / "tree")
    assert measure("--torchvision", "resnet18", "--weights", tmp_path / "resnet18.pth", "--dataset",
                   "imagefolder", "--data-root", tree, "--out", tmp_path / "out") == 0
    warning = [line for line in capsys.readouterr().err.splitlines() if "warning:" in line]
    assert len(warning) == 1 and "has 10 outputs but imagefolder has 2 classes" in warning[0], warning
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    cut = torchvision.models.resnet18(num_classes=2)
    state = full.state_dict()
    state["fc.weight"], state["fc.bias"] = state["fc.weight"][:2], state["fc.bias"][:2]
    cut.load_state_dict(state)
    data = load_dataset("imagefolder", root=tree)
    expected = measure_model(cut.eval(), data.test, 2, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert summary["accuracy"] == expected.accuracy and summary["loss"] == pytest.approx(expected.loss, rel=1e-6)


def run_without_checkpoint(tmp_path):
    run = RunDirectory(tmp_path / "run")
    run.claim_settings(config_from_dict({}))
    return run.path


def torchvision_weights(tmp_path):
    path = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(num_classes=10).state_dict(), path)
    return path


@pytest.mark.parametrize(
    "make_argv, expected",
    [
        (lambda t, w: ["--model", "small_cnn", "--weights", w, "--dataset", "digits", "--layers", "fc1"],
         ["layer fc1 has negative activations", "post-ReLU"]),
        (lambda t, w: ["--model", "small_cnn", "--weights", w, "--dataset", "digits", "--layers", "relu1,conv9"],
         ["unknown layer name(s) ['conv9']", "relu1", "relu4"]),
        (lambda t, w: ["--model", "small_cnn", "--weights", w, "--dataset", "digits", "--layers", "relu1,relu2#2"],
         ["layer relu2#2 recorded no activations"]),
        (lambda t, w: ["--model", "resnet99", "--dataset", "digits"], ["unknown model 'resnet99'", "small_cnn"]),
        (lambda t, w: ["--model", "small_cnn", "--dataset", "digitz"], ["unknown dataset 'digitz'", "digits"]),
        (lambda t, w: ["--torchvision", "resnet99", "--weights", w, "--dataset", "digits"],
         ["unknown torchvision model 'resnet99'", "resnet18"]),
        (lambda t, w: ["--run", run_without_checkpoint(t)], ["has no checkpoint.pt"]),
        (lambda t, w: ["--run", t / "nowhere"], ["nowhere does not exist"]),
        (lambda t, w: ["--model", "small_cnn", "--weights", t / "missing.pt", "--dataset", "digits"],
         ["missing.pt does not exist"]),
        (lambda t, w: ["--torchvision", "resnet18", "--dataset", "digits"], ["needs --weights"]),
        (lambda t, w: ["--torchvision", "resnet18", "--weights", torchvision_weights(t), "--dataset", "digits"],
         ["takes 3-channel input", "1-channel images"]),
        (lambda t, w: ["--model", "resnet20", "--weights", w, "--dataset", "digits"], ["do not fit model resnet20"]),
        (lambda t, w: ["--model", "small_cnn", "--dataset", "digits", "--limit", 0], ["--limit 0 is not positive"]),
        (lambda t, w: ["--model", "small_cnn", "--dataset", "digits", "--limit", 1], ["SI needs at least 2 classes"]),
        (lambda t, w: ["--model", "small_cnn"], ["--dataset is required"]),
    ],
    ids=["negative", "unknown-layer", "call-past-end", "unknown-model", "unknown-dataset", "unknown-torchvision",
         "run-without-checkpoint", "no-run-folder", "missing-weights", "torchvision-without-weights",
         "channel-mismatch", "weights-of-another-model", "limit-zero", "limit-one-class", "no-dataset"],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, small_cnn_weights, capsys, make_argv, expected):
    weights, _ = small_cnn_weights
    argv = make_argv(tmp_path, weights)
    capsys.readouterr()
    assert measure(*argv, "--out", tmp_path / "out") == 2
    line = error_line(capsys)
    for fragment in expected:
        assert fragment in line
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_files_are_only_written_when_complete(tmp_path, small_cnn_weights):
    weights, _ = small_cnn_weights
    assert measure("--model", "small_cnn", "--weights", weights, "--dataset", "digits", "--out", tmp_path / "o") == 0
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [
        "layers.csv", "summary.json", "units.csv", "units.parquet"]  # no temporary files left beside them


def test_an_error_line_starts_on_its_own_line_after_a_progress_bar(tmp_path, monkeypatch, capsys):
    import sys

    from tqdm import tqdm

    import selectivity.cli.measure_command as command
    from selectivity.errors import SelectivityError

    def fails_mid_bar(*_, **__):
        bar = tqdm(total=10, file=sys.stderr, desc="measure")
        bar.update(3)
        raise SelectivityError("something went wrong")

    monkeypatch.setattr(command, "measure_model", fails_mid_bar)
    assert main(["measure", "--model", "small_cnn", "--dataset", "digits", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "\nselectivity measure: error: something went wrong" in err, repr(err)
