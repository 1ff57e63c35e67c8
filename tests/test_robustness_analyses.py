"""The corruptions / attacks / dimensionality post-sweep analyses on a real (smoke-size) digits run."""
import json
import re

import numpy as np
import pandas as pd
import pytest
import torch

from selectivity.config import ExperimentConfig, TrainSettings
from selectivity.data import load_dataset
from selectivity.data.batches import normalize_images
from selectivity.errors import SelectivityError
from selectivity.model_loading import load_run_model
from selectivity.store import run_path
from selectivity.sweep.analyses import AnalysisContext, get_analysis
from selectivity.sweep.layout import SweepFolder, SweepRun
from selectivity.sweep.results import run_rows, typed_table
from selectivity.sweep.robustness_analyses import analyse_run, resolve_settings
from selectivity.train import train_run
from tests.reference import reference_stratified_indices

IMAGES = 40
pytestmark = pytest.mark.slow  # trains a (1-epoch digits) run first


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    config = ExperimentConfig(train=TrainSettings(epochs=1), seed=3, device="cpu")
    run = SweepRun(config, "0", run_path(tmp_path_factory.mktemp("sweep") / "runs", config))
    train_run(config, run.path, progress=False)
    return run


def analysis_rows(run, name, settings, folder) -> pd.DataFrame:
    table = run_rows(run)
    rows = get_analysis(name)(AnalysisContext(SweepFolder(folder), [run], table, settings))
    return typed_table(rows)  # the results table's columns and dtypes, or it raises


def sample_positions(count=IMAGES, seed=0) -> torch.Tensor:
    """The class-stratified sample the analyses must use, computed here by loops (tests/reference.py)."""
    data = load_dataset("digits")
    return torch.from_numpy(reference_stratified_indices(data.test.images.numpy(), data.test.labels.numpy(),
                                                         count, seed))


def clean_accuracy(run, seed=0) -> float:
    """Accuracy of the run's model on the stratified IMAGES test images, computed here directly."""
    data = load_dataset("digits")
    model = load_run_model(run.path, run.config, data).model.eval()
    chosen = sample_positions(seed=seed)
    with torch.no_grad():
        logits = model(normalize_images(data.test.images[chosen], data.mean, data.std))
    return (logits.argmax(1) == data.test.labels[chosen]).double().mean().item()


def subset_metrics(analysis: str, count=IMAGES, seed=0) -> set:
    """The sample's recorded rows: its seed and one count per class present in the test split."""
    return {f"{analysis}_subset_seed"} | {f"{analysis}_subset_count:{k}" for k in range(10)}


def test_attack_rows(run, tmp_path):
    rows = analysis_rows(run, "attacks", {"images": IMAGES, "eps_255": [0, 16], "steps": 3}, tmp_path)
    values = rows.set_index("metric")["value"]
    assert set(values.index) == {"attack_accuracy:fgsm:0", "attack_accuracy:fgsm:16", "attack_accuracy:pgd:0",
                                 "attack_accuracy:pgd:16"} | subset_metrics("attacks")
    labels = load_dataset("digits").test.labels[sample_positions()]
    assert values["attacks_subset_seed"] == 0
    assert all(values[f"attacks_subset_count:{k}"] == int((labels == k).sum()) for k in range(10))
    assert set(rows["layer"]) == {"network"} and set(rows["run_id"]) == {run.run_id} and set(rows["seed"]) == {3}
    assert values["attack_accuracy:fgsm:0"] == pytest.approx(clean_accuracy(run))
    assert values["attack_accuracy:pgd:16"] <= values["attack_accuracy:fgsm:16"] < values["attack_accuracy:fgsm:0"]


def test_the_subset_seed_setting_draws_that_sample(run, tmp_path):
    """A non-default subset_seed is used and recorded: eps 0 accuracy is the one on that seed's sample."""
    rows = analysis_rows(run, "attacks", {"images": IMAGES, "eps_255": [0], "attacks": ["fgsm"], "subset_seed": 7},
                         tmp_path)
    values = rows.set_index("metric")["value"]
    assert values["attacks_subset_seed"] == 7
    assert sample_positions(seed=7).tolist() != sample_positions(seed=0).tolist()  # the seeds draw different images
    assert values["attack_accuracy:fgsm:0"] == pytest.approx(clean_accuracy(run, seed=7))


def test_corruption_rows_from_files(run, tmp_path):
    data = load_dataset("digits")
    clean = data.test.images.numpy().transpose(0, 2, 3, 1)  # [N, 8, 8, 1], the whole test split's order
    blank = np.zeros_like(clean)
    np.save(tmp_path / "contrast.npy", np.concatenate([clean, clean, blank, blank, blank]))
    np.save(tmp_path / "labels.npy", np.tile(data.test.labels.numpy(), 5))
    rows = analysis_rows(run, "corruptions", {"images": IMAGES, "corruptions": ["contrast"],
                                              "folder": str(tmp_path)}, tmp_path)
    values = rows.set_index("metric")["value"]
    accuracy = clean_accuracy(run)
    assert values["corruption_accuracy:contrast:1"] == pytest.approx(accuracy)
    assert values["clean_subset_accuracy"] == pytest.approx(accuracy)
    blank_accuracy = values["corruption_accuracy:contrast:5"]
    assert values["mean_corruption_accuracy"] == pytest.approx((2 * accuracy + 3 * blank_accuracy) / 5)


def dimensionalities_by_hand(run, eps: float, threshold: float = 0.95) -> dict[tuple[str, str], float]:
    """{(layer, metric): value} from numpy: one eval-mode forward pass with hooks on the stratified sample,
    an FGSM step of size eps written out here, and the eigenvalues of each covariance (divisor N - 1)."""
    data = load_dataset("digits")
    model = load_run_model(run.path, run.config, data).model.eval()
    chosen = sample_positions()
    pixels, labels = data.test.images[chosen].float() / 255, data.test.labels[chosen]  # [N, 1, 8, 8] in [0, 1]
    mean, std = torch.tensor(data.mean).view(1, -1, 1, 1), torch.tensor(data.std).view(1, -1, 1, 1)
    layers = ["relu1", "relu2", "relu3", "relu4"]

    def activations(images):
        captured = {}
        handles = [getattr(model, name).register_forward_hook(
            lambda m, i, out, name=name: captured.__setitem__(name, out.mean((2, 3)) if out.dim() == 4 else out))
            for name in layers]
        logits = model((images - mean) / std)
        for handle in handles:
            handle.remove()
        return logits, {name: captured[name].detach().double().numpy() for name in layers}

    images = pixels.clone().requires_grad_(True)
    logits, clean = activations(images)
    (gradient,) = torch.autograd.grad(torch.nn.functional.cross_entropy(logits, labels, reduction="sum"), images)
    with torch.no_grad():
        _, attacked = activations((pixels + eps * gradient.sign()).clamp(0, 1))
    values = {}
    for name in layers:
        for prefix, units in (("dim", clean[name]), ("perturbation_dim", attacked[name] - clean[name])):
            eigenvalues = np.sort(np.linalg.eigvalsh(np.cov(units, rowvar=False)))[::-1].clip(0)
            if eigenvalues[0] <= 0:
                continue  # a dead layer has no dimensionality (and no row)
            share = np.cumsum(eigenvalues) / eigenvalues.sum()
            values[(name, f"{prefix}_pcs")] = float(np.argmax(share >= threshold - 1e-12) + 1)
            values[(name, f"{prefix}_pr")] = eigenvalues.sum() ** 2 / (eigenvalues**2).sum()
    return values


def test_dimensionality_rows_carry_the_runs_layer_order_and_equal_numpy(run, tmp_path):
    rows = analysis_rows(run, "dimensionality", {"images": IMAGES, "perturbation": "fgsm:8"}, tmp_path)
    layers = rows[rows["layer"] != "network"]
    depth = run_rows(run).drop_duplicates("layer").set_index("layer")["layer_index"]
    assert set(layers["layer"]) == {"relu1", "relu2", "relu3", "relu4"}
    assert all(row.layer_index == depth[row.layer] for row in layers.itertuples())
    assert set(layers["metric"]) == {"dim_pcs", "dim_pr", "perturbation_dim_pcs", "perturbation_dim_pr"}
    assert rows.loc[rows["metric"] == "dim_threshold", "value"].tolist() == [0.95]
    expected = dimensionalities_by_hand(run, eps=8 / 255)
    single = analyse_run(run.path, "dimensionality", {"images": IMAGES, "perturbation": "fgsm:8"})  # one-run entry
    for table in (layers, single[single["layer"] != "network"]):
        got = table.set_index(["layer", "metric"])["value"].to_dict()
        assert set(got) == set(expected)
        for key, value in expected.items():
            assert got[key] == (value if key[1].endswith("_pcs") else pytest.approx(value, rel=1e-4)), key


def test_settings_are_checked():
    assert resolve_settings("attacks", {"steps": 3})["eps_255"] == [0, 0.25, 0.5, 1, 2]
    with pytest.raises(SelectivityError, match=r"unknown key\(s\) \['eps'\]; valid keys are"):
        resolve_settings("attacks", {"eps": [1]})
    with pytest.raises(SelectivityError, match="attacks.steps = '10'; expected a int"):
        resolve_settings("attacks", {"steps": "10"})
    with pytest.raises(SelectivityError, match="attacks.steps = True; expected a int"):
        resolve_settings("attacks", {"steps": True})  # a bool is an int to Python, not to us


def test_a_runs_rows_are_kept_for_the_same_settings(run, tmp_path, monkeypatch, capsys):
    import selectivity.sweep.robustness_analyses as analyses

    settings = {"images": 8, "eps_255": [0, 4], "attacks": ["fgsm"], "seed": 11}
    first = analysis_rows(run, "attacks", settings, tmp_path)
    # one progress line per run, with the seconds it took; the kept file records them too
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert re.fullmatch(rf"analysis attacks \[1/1\] {run.run_id} alpha=0 seed=3: \d+ s", line), line
    (kept,) = [json.loads(path.read_text()) for path in run.path.glob("analysis_attacks_*.json")
               if json.loads(path.read_text())["settings"]["seed"] == 11]
    assert kept["seconds"] > 0 and kept["threads"] >= 1

    def no_evaluation(*args):
        raise AssertionError("evaluated again")

    monkeypatch.setattr(analyses, "_measure_run", no_evaluation)
    pd.testing.assert_frame_equal(analysis_rows(run, "attacks", settings, tmp_path), first)
    assert capsys.readouterr().err.strip().endswith(f"{run.run_id} alpha=0 seed=3: kept from before")
    with pytest.raises(AssertionError, match="evaluated again"):  # other settings: other rows
        analysis_rows(run, "attacks", {**settings, "images": 9}, tmp_path)


def test_the_robustness_command_analyses_one_run(run, tmp_path, capsys):
    from selectivity.cli import main

    data = load_dataset("digits")  # no published corruption parameters for digits: files, as CIFAR-10-C ships
    clean = data.test.images.numpy().transpose(0, 2, 3, 1)  # in the test split's order, as CIFAR-10-C
    np.save(tmp_path / "contrast.npy", np.concatenate([clean] * 4 + [np.zeros_like(clean)]))
    np.save(tmp_path / "labels.npy", np.tile(data.test.labels.numpy(), 5))
    out = tmp_path / "robust.csv"
    code = main(["robustness", str(run.path), "--analysis", "attacks", "--analysis", "corruptions",
                 "--set", f"images={IMAGES}", "attacks.eps_255=[0,16]", "steps=2", "corruptions=['contrast']",
                 "severities=[1,5]", f"folder='{tmp_path}'", "--out", str(out)])
    assert code == 0
    rows = pd.read_csv(out)
    assert list(rows.columns) == ["analysis", "run_dir", "seed", "layer", "metric", "value"]
    values = rows.set_index("metric")["value"]
    accuracy = clean_accuracy(run)  # `images` reached both analyses: their clean numbers are these 40 images'
    assert values["attack_accuracy:fgsm:0"] == pytest.approx(accuracy)
    assert values["clean_subset_accuracy"] == pytest.approx(accuracy)
    assert set(rows.loc[rows["analysis"] == "corruptions", "metric"]) == {
        "corruption_accuracy:contrast:1", "corruption_accuracy:contrast:5", "mean_corruption_accuracy",
        "clean_subset_accuracy"} | subset_metrics("corruptions")
    assert set(rows.loc[rows["analysis"] == "attacks", "metric"]) == {
        "attack_accuracy:fgsm:0", "attack_accuracy:fgsm:16", "attack_accuracy:pgd:0",
        "attack_accuracy:pgd:16"} | subset_metrics("attacks")
    assert values["corruption_accuracy:contrast:1"] == pytest.approx(accuracy)  # severity 1 is the clean images
    assert "mean_corruption_accuracy" in capsys.readouterr().out


@pytest.mark.parametrize("assignment, message", [
    ("eps=[1]", "no chosen analysis has this setting; expected one of"),
    ("corruptions.images=10", "'corruptions' is not a chosen analysis"),
    ("attacks.steps='ten'", "attacks.steps = 'ten'; expected a int"),
    ("attacks.eps_255=[]", "analysis_settings.attacks.eps_255 is empty"),  # was a KeyError on an empty table
    ("dimensionality.threshold=2", "dimensionality.threshold = 2; expected a share of variance in (0, 1]"),
])
def test_the_robustness_command_refuses_bad_settings_before_any_work(run, tmp_path, capsys, assignment, message):
    from selectivity.cli import main

    out = tmp_path / "robust.csv"  # dimensionality runs first: a setting checked late would leave its table
    assert main(["robustness", str(run.path), "--analysis", "dimensionality", "--analysis", "attacks",
                 "--set", f"dimensionality.images={IMAGES}", assignment, "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and len(error.splitlines()) == 1, error
    assert not out.exists()


def test_the_robustness_command_names_a_missing_run_folder(tmp_path, capsys):
    from selectivity.cli import main

    assert main(["robustness", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x.csv")]) == 2
    assert "does not exist; expected a folder holding config.json" in capsys.readouterr().err
