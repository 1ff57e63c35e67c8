"""Every bad input to `selectivity train`, `sweep` and `report` is one line on stderr and exit code 2,
before anything is trained (no checkpoint, no metrics)."""
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from selectivity.cli import main
from selectivity.errors import SelectivityError

FAKE_TRAINER = "tests.sweep_fake_trainer:train_run"
TRAINED_FILES = ("checkpoint.pt", "metrics.jsonl", "done.json", "failed.json")


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SELECTIVITY_CACHE", str(tmp_path / "cache"))


def error_line(capsys, command: str) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"selectivity {command}: error: ")
    return lines[0]


def assert_nothing_trained(folder):
    assert not [path for name in TRAINED_FILES for path in folder.rglob(name)]


def write_image_tree(root, size: int, classes=("ant", "bee"), per_class=2):
    """root/{train,test}/<class>/<i>.png: RGB images of size x size."""
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for class_name in classes:
            (root / split / class_name).mkdir(parents=True)
            for index in range(per_class):
                pixels = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / class_name / f"{index}.png")
    return root


def image_folder_args(tmp_path, size: int, classes=("ant", "bee")) -> list[str]:
    root = write_image_tree(tmp_path / "images", size, classes)
    return ["--set", "data.dataset=imagefolder", "--data-root", str(root)]


TRAIN_CASES = {
    "batch-size-zero": (["--batch-size", "0"], "train.batch_size = 0 is invalid; expected an integer >= 1"),
    "batch-size-negative": (["--batch-size", "-4"], "train.batch_size = -4"),
    "epochs-zero": (["--epochs", "0"], "train.epochs = 0 is invalid"),
    "epochs-negative": (["--epochs", "-2"], "train.epochs = -2"),
    "lr-negative": (["--set", "train.lr=-0.1"], "train.lr = -0.1 is invalid; expected a number in [0, 3.4e38] (float32)"),
    "lr-nan": (["--set", "train.lr=nan"], "train.lr = nan"),
    "momentum-above-one": (["--set", "train.momentum=1.5"], "train.momentum = 1.5 is invalid; expected a number in [0, 1)"),
    "momentum-one": (["--set", "train.momentum=1"], "train.momentum = 1.0 is invalid; expected a number in [0, 1)"),
    "warmup-longer-than-the-run": (["--epochs", "2", "--set", "train.warmup_epochs=2.5"],
                                   "train.warmup_epochs = 2.5 is longer than train.epochs = 2"),
    "alpha-schedule-longer-than-the-run": (["--epochs", "2", "--alpha", "0x2,-1"],
                                           "regularizer.alpha = '0x2,-1' is a schedule of 2+ epochs, longer than "
                                           "train.epochs = 2"),
    "weight-decay-negative": (["--set", "train.weight_decay=-1"], "train.weight_decay = -1.0"),
    "gamma-zero": (["--set", "train.gamma=0"], "train.gamma = 0.0 is invalid; expected a finite number > 0"),
    "warmup-negative": (["--set", "train.warmup_epochs=-1"], "train.warmup_epochs = -1.0"),
    "milestone-zero": (["--set", "train.milestones=[0, 3]"], "train.milestones = (0, 3)"),
    "label-smoothing-above-one": (["--set", "train.label_smoothing=2"], "train.label_smoothing = 2.0"),
    "unknown-precision": (["--set", "train.precision=fp16"], "train.precision = 'fp16' is invalid"),
    "nesterov-without-momentum": (["--set", "train.nesterov=true", "--set", "train.momentum=0"],
                                  "train.nesterov = true with train.momentum = 0"),
    "evaluation-every-zero": (["--set", "evaluation.every=0"], "evaluation.every = 0 is invalid"),
    "evaluation-batch-size-zero": (["--set", "evaluation.batch_size=0"], "evaluation.batch_size = 0 is invalid"),
    "crop-padding-negative": (["--set", "data.crop_padding=-1"], "data.crop_padding = -1 is invalid; expected an integer >= 0"),
    "seed-beyond-64-bits": (["--seed", str(2**64)], "seed = 18446744073709551616 is invalid; expected an integer in [0, 2**64)"),
    "seed-negative": (["--seed", "-1"], "seed = -1 is invalid"),
    "unknown-model": (["--set", "model.name='resnet7'"],
                      "model.name = 'resnet7' is not a registered model; expected one of resnet18, resnet20,"),
    "unknown-dataset": (["--set", "data.dataset='mnist'"],
                        "data.dataset = 'mnist' is not a registered dataset; expected one of cifar10, cifar100, digits"),
    "unknown-device": (["--device", "gpu"], "device = 'gpu' is invalid; expected auto, cpu, cuda or cuda:N"),
    "cuda-without-gpu": (["--device", "cuda"], "device 'cuda' but CUDA is not available here"),
    "cuda-index-without-gpu": (["--device", "cuda:1"], "device 'cuda:1' but CUDA is not available here"),
    "alpha-nan": (["--alpha", "nan"], "regularizer.alpha = nan is not finite"),
    "alpha-inf": (["--alpha=-inf"], "regularizer.alpha = -inf is not finite"),
    "alpha-nan-in-schedule": (["--alpha", "0x1,nan"], "has the value 'nan'; expected finite values"),
    "alpha-inf-in-schedule": (["--alpha", "infx2,0"], "has the value 'infx2'; expected finite values"),
    "unknown-layer-preset": (["--set", "evaluation.layers=all"], "evaluation.layers = 'all' is invalid"),
    "no-layers": (["--set", "regularizer.layers=[]"], "regularizer.layers = () is invalid"),
    "non-relu-evaluation-layer": (["--set", "evaluation.layers=['relu1', 'fc1']"],
                                  "evaluation.layers selects layer fc1, which has negative activations"),
    "non-relu-regularizer-layer": (["--set", "regularizer.layers=['conv2']"],
                                   "regularizer.layers selects layer conv2, which has negative activations"),
    "layer-that-never-runs": (["--set", "evaluation.layers=['relu1', 'relu2#2']"],
                              "evaluation.layers names layer relu2#2, which recorded no activations"),
    "lr-beyond-float32": (["--set", "train.lr=1e39"], "train.lr = 1e+39 is invalid; expected a number in [0, 3.4e38]"),
    "weight-decay-beyond-float32": (["--set", "train.weight_decay=3.5e38"], "train.weight_decay = 3.5e+38 is invalid"),
    "alpha-beyond-float32": (["--alpha", "1e39"], "regularizer.alpha = 1e+39 is not a finite float32"),
    "alpha-beyond-float32-in-schedule": (["--alpha", "0x1,-4e38"], "has the value '-4e38'; expected finite values "
                                                                   "within +-3.4e38"),
    "one-by-one-images": (lambda tmp: image_folder_args(tmp, 1), "cannot take the 1x1 images of imagefolder"),
    "one-class-dataset": (lambda tmp: image_folder_args(tmp, 8, classes=("ant",)),
                          "dataset imagefolder has 1 class in its train split; class selectivity needs at least 2"),
}


@pytest.mark.parametrize("arguments, expected", TRAIN_CASES.values(), ids=TRAIN_CASES.keys())
def test_bad_train_input_is_one_line_exit_2_before_training(tmp_path, capsys, monkeypatch, arguments, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # "cuda" must be absent, also on a GPU host
    config = tmp_path / "config.toml"
    config.write_text("[train]\nepochs = 1\n")
    arguments = arguments(tmp_path) if callable(arguments) else arguments
    code = main(["train", str(config), "--no-progress", "--out", str(tmp_path / "runs"), *arguments])
    assert code == 2
    assert expected in error_line(capsys, "train")
    assert not (tmp_path / "runs").exists()  # refused before the run folder is written


@pytest.mark.parametrize("epochs", [10**6 + 1, 10**20])
def test_an_epoch_count_beyond_a_million_is_refused_when_the_config_is_read(epochs):
    # checked on the config, not through `train`: were the bound gone, a CLI test would train for ever
    from selectivity.config import config_from_dict

    with pytest.raises(SelectivityError, match=rf"train.epochs = {epochs} is invalid; expected an integer in "
                                               r"\[1, 1000000\]"):
        config_from_dict({"train": {"epochs": epochs}})
    assert config_from_dict({"train": {"epochs": 10**6}}).train.epochs == 10**6


@pytest.mark.parametrize("content, expected", [
    (b"", "sets nothing; expected a TOML config file with at least one setting"),
    (b"# only a comment\n\n", "sets nothing"),
    ("[train]\nepochs = 1\n".encode("utf-16"), "is not UTF-8 text (byte 0); expected a TOML config file"),
    (b"[train]\nepochs = 1 # \xff\xfe\n", "is not UTF-8 text (byte 21)"),
    (b"[train]\nlr = 1979-05-27\n", "train.lr = datetime.date(1979, 5, 27) has type date; expected float"),
], ids=["empty", "comments-only", "utf-16", "stray-byte", "a-toml-date"])
def test_a_config_file_that_is_empty_not_utf8_or_holds_a_date_is_one_line(tmp_path, capsys, content, expected):
    config = tmp_path / "config.toml"
    config.write_bytes(content)
    # --set too: the overrides are applied to the file's tables (a TOML date must not break that copy)
    code = main(["train", str(config), "--no-progress", "--out", str(tmp_path / "runs"), "--set", "train.epochs=1"])
    assert code == 2
    assert expected in error_line(capsys, "train")
    assert not (tmp_path / "runs").exists()


def write_sweep(tmp_path, body: str):
    (tmp_path / "base.toml").write_text("[train]\nepochs = 1\n")
    spec = tmp_path / "spec.toml"
    spec.write_text('name = "bad"\nbase = "base.toml"\n' + body)
    return spec


SWEEP_CASES = {
    "unknown-analysis": ("alphas = [0, -1]\nanalyses = [\"cca\", \"nope\"]\n", [], "unknown analysis 'nope'"),
    "analysis-that-does-not-load": ("alphas = [0]\nanalyses = [\"tests.nowhere:f\"]\n", [],
                                    "analysis 'tests.nowhere:f' cannot be loaded"),
    "unknown-trainer-module": ("alphas = [0]\n", ["--trainer", "tests.nowhere:train_run"],
                               "trainer 'tests.nowhere:train_run' cannot be loaded"),
    "unknown-trainer-function": ("alphas = [0]\n", ["--trainer", "tests.sweep_fake_trainer:nothing"],
                                 "trainer 'tests.sweep_fake_trainer:nothing' cannot be loaded"),
    "malformed-trainer": ("alphas = [0]\n", ["--trainer", "train_run"], "trainer 'train_run' is malformed"),
    "alpha-nan-in-grid": ("alphas = [0, nan]\n", [], "alphas[1]: alpha = nan is not finite"),
    "alpha-inf-in-grid-schedule": ("alphas = [0, \"0x1,inf\"]\n", [], "alphas[1]: alpha schedule '0x1,inf'"),
    "seed-beyond-64-bits": (f"alphas = [0]\nseeds = [{2**64}]\n", [], "seed = 18446744073709551616 is invalid"),
    "epochs-zero": ("alphas = [0]\n", ["--set", "train.epochs=0"], "train.epochs = 0 is invalid"),
    "seed-count-beyond-10000": ("alphas = [0]\nseeds = 100000000000\n", [],
                                "seeds = 100000000000 is too many; expected a count of at most 10000 runs per alpha"),
    "unknown-model": ("alphas = [0, -1]\n", ["--set", "model.name='resnet7'"],
                      "model.name = 'resnet7' is not a registered model; expected one of resnet18"),
    "unknown-dataset": ("alphas = [0, -1]\n[overrides]\n\"data.dataset\" = \"mnist\"\n", [],
                        "data.dataset = 'mnist' is not a registered dataset; expected one of cifar10"),
    "cuda-without-gpu": ("alphas = [0]\n[overrides]\ndevice = \"cuda\"\n", [],
                         "device 'cuda' but CUDA is not available"),
    "stale-after-zero": ("alphas = [0]\n", ["--stale-after", "0"], "--stale-after 0.0 is out of range"),
    "runs-per-gpu-zero": ("alphas = [0]\n", ["--runs-per-gpu", "0"], "--runs-per-gpu 0 is out of range"),
    "stale-after-nan": ("alphas = [0]\n", ["--stale-after", "nan"], "--stale-after nan is out of range"),
    "name-escapes-the-runs-folder": ("alphas = [0]\n", ["--set", "name=../../x"],
                                     "name = '../../x' is not a safe folder name; expected one path component"),
    "name-empty": ("alphas = [0]\n", ["--set", "name=''"], "name = '' is not a safe folder name"),
    "name-root": ("alphas = [0]\n", ["--set", "name=/"], "name = '/' is not a safe folder name"),
    "name-dot": ("alphas = [0]\n", ["--set", "name=."], "name = '.' is not a safe folder name"),
    "name-dot-dot": ("alphas = [0]\n", ["--set", "name=.."], "name = '..' is not a safe folder name"),
    "name-nul": ("alphas = [0]\n", ["--set", 'name="a\\u0000b"'], "name = 'a\\x00b' is not a safe folder name"),
    "name-not-a-string": ("alphas = [0]\n", ["--set", "name=5"], "name = 5 is not a safe folder name"),
    "report-margin-nan": ("alphas = [0]\n", ["--report", "--report-margin", "nan"],
                          "--report-margin: margin nan is not allowed"),
    "report-margin-inf": ("alphas = [0]\n", ["--report-margin", "inf"], "--report-margin: margin inf is not allowed"),
    "analysis-setting-nan": ("alphas = [0]\nanalyses = [\"attacks\"]\n[analysis_settings.attacks]\n"
                             "eps_255 = [0, nan]\n", [], "analysis_settings.attacks.eps_255[1] is not finite"),
    "analysis-setting-inf": ("alphas = [0]\nanalyses = [\"dimensionality\"]\n[analysis_settings.dimensionality]\n"
                             "threshold = inf\n", [], "analysis_settings.dimensionality.threshold is not finite"),
    "settings-for-an-analysis-not-run": ("alphas = [0]\nanalyses = [\"cca\"]\n[analysis_settings.ablation]\nk = 1\n",
                                         [], "analysis_settings for ['ablation'], which analyses = ['cca'] does not run"),
    "warmup-longer-than-the-run": ("alphas = [0]\n", ["--set", "train.warmup_epochs=2"],
                                   "train.warmup_epochs = 2 is longer than train.epochs = 1"),
    "alpha-schedule-longer-than-the-run": ("alphas = [0, \"0x2,-1\"]\n", [],
                                           "regularizer.alpha = '0x2,-1' is a schedule of 2+ epochs"),
    "workers-negative": ("alphas = [0]\n", ["--workers", "-1"], "--workers -1 for the local pool; expected >= 1 (0 runs inline)"),
}


@pytest.mark.parametrize("spec_body, arguments, expected", SWEEP_CASES.values(), ids=SWEEP_CASES.keys())
def test_bad_sweep_input_is_one_line_exit_2_before_any_run(tmp_path, capsys, monkeypatch, spec_body, arguments,
                                                          expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    spec = write_sweep(tmp_path, spec_body)
    store = tmp_path / "sweep"
    arguments = ["--trainer", FAKE_TRAINER, *arguments] if "--trainer" not in arguments else arguments
    code = main(["sweep", str(spec), "--store", str(store), "--workers", "0", "--no-progress", *arguments])
    assert code == 2
    assert expected in error_line(capsys, "sweep")
    assert_nothing_trained(tmp_path)


@pytest.mark.parametrize("content", [b"not a parquet file at all", b"PAR1" + bytes(range(256)) + b"PAR1", b""],
                         ids=["text", "broken-parquet", "empty"])
def test_a_garbage_results_table_is_one_line_exit_2(tmp_path, capsys, content):
    table = tmp_path / "results.parquet"
    table.write_bytes(content)
    assert main(["report", str(table), "--out", str(tmp_path / "report")]) == 2
    assert f"results table {table} cannot be read" in error_line(capsys, "report")
    assert not (tmp_path / "report").exists()


@pytest.mark.parametrize("metric, scale, shift, shown", [
    ("test_accuracy", 100.0, 0.0, "test_accuracy = "),  # a table in percent: every difference 100x
    ("si", 1.0, -0.5, "si = -"),
    ("mean_si", 1.0, 1.0, "mean_si = 1."),
])
def test_a_results_table_with_fractions_out_of_range_is_one_line_exit_2(tmp_path, capsys, metric, scale, shift,
                                                                        shown):
    from tests.report_fixture import sweep_table

    table = sweep_table()
    rows = table["metric"] == metric
    table.loc[rows, "value"] = table.loc[rows, "value"] * scale + shift
    path = tmp_path / "results.csv"
    table.to_csv(path, index=False)
    for command in (["report", str(path), "--out", str(tmp_path / "report")], ["compare", str(path), str(path)]):
        assert main(command) == 2
        line = error_line(capsys, command[0])
        assert shown in line and "outside [0, 1]: expected fractions, not percentages" in line, line
    assert not (tmp_path / "report").exists()


def _damaged_table(kind: str):
    from tests.report_fixture import sweep_table

    table = sweep_table()
    if kind == "accuracy-nan":
        table.loc[table.index[table["metric"] == "test_accuracy"][1], "value"] = float("nan")
    elif kind == "alpha-nan":
        table.loc[table.index[3], "alpha"] = float("nan")
    elif kind == "a-run-twice":
        table = pd.concat([table, table[table["run_id"] == table["run_id"].iloc[0]]], ignore_index=True)
    return table


@pytest.mark.parametrize("kind, shown", [
    ("accuracy-nan", "test_accuracy = nan (run "),  # would drop that seed from its condition's mean silently
    ("alpha-nan", "alpha = nan (run "),
    ("a-run-twice", " repeated rows (e.g. run "),  # a seed counted twice narrows every interval
])
def test_a_results_table_with_a_missing_value_or_a_repeated_run_is_one_line_exit_2(tmp_path, capsys, kind, shown):
    path = tmp_path / "results.csv"
    _damaged_table(kind).to_csv(path, index=False)
    for command in (["report", str(path), "--out", str(tmp_path / "report")], ["compare", str(path), str(path)]):
        assert main(command) == 2
        assert shown in error_line(capsys, command[0])
    assert not (tmp_path / "report").exists()


def test_a_results_csv_with_text_where_numbers_belong_is_one_line(tmp_path, capsys):
    table = tmp_path / "results.csv"
    table.write_text("run_id,model,dataset,alpha,alpha_label,seed,epoch,layer,layer_index,unit,metric,value\n"
                     "a,m,d,minus one,-1,0,1,network,-1,-1,mean_si,0.5\n")
    assert main(["report", str(table), "--out", str(tmp_path / "report")]) == 2
    assert "results table has a value of the wrong type" in error_line(capsys, "report")
