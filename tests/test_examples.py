"""The three scripts in examples/ run end to end, and what they write is checked against
computations done here (a numpy SI loop, a pandas/numpy mean over seeds)."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from tests.reference import reference_selectivity

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(path.name for path in (REPO / "examples").glob("*.py"))


def run_example(name: str, cwd: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO), "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, str(REPO / "examples" / name)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{name} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_the_three_examples_are_percent_format_scripts():
    assert EXAMPLES == ["measure_torchvision_model.py", "regularize_your_training_loop.py", "sweep_results_figure.py"]
    for name in EXAMPLES:
        text = (REPO / "examples" / name).read_text()
        assert text.startswith("# %% [markdown]\n# # ") and text.count("\n# %%\n") >= 3, name


def test_measure_torchvision_model_matches_a_numpy_si_loop(tmp_path):
    torchvision = pytest.importorskip("torchvision")
    run_example("measure_torchvision_model.py", tmp_path)
    out = tmp_path / "example_outputs" / "measure_torchvision_model"
    units = pd.read_csv(out / "units.csv")
    assert (out / "si_by_depth.png").stat().st_size > 0
    relu_calls = 1 + 2 * 2 * 4  # the stem's ReLU, then two calls in each of two blocks of four stages
    assert units["layer"].nunique() == relu_calls
    assert len(units) == 64 + 64 * 4 + 128 * 4 + 256 * 4 + 512 * 4

    # The stem ReLU's units, recomputed here: the same seeded model, the images the script wrote.
    classes = sorted(p.name for p in (out / "images" / "test").iterdir())
    files = [(path, label) for label, name in enumerate(classes)
             for path in sorted((out / "images" / "test" / name).glob("*.png"))]
    images = torch.tensor(np.stack([np.asarray(Image.open(path)) for path, _ in files])).permute(0, 3, 1, 2)
    labels = np.array([label for _, label in files])
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=len(classes)).eval()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        x = (images.float() / 255 - mean) / std
        stem = model.relu(model.bn1(model.conv1(x))).mean(dim=(2, 3)).double().numpy()
    expected = reference_selectivity(stem, labels, len(classes))
    got = units[units["layer"] == "relu"].sort_values("unit")["si"].to_numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


def test_regularize_your_training_loop_shows_alpha_zero_is_plain_training(tmp_path):
    stdout = run_example("regularize_your_training_loop.py", tmp_path)
    assert "alpha = 0: every parameter is bitwise identical to plain training" in stdout
    for alpha in ("-1", "+0", "+1"):
        assert f"alpha = {alpha}: test accuracy" in stdout


def test_sweep_results_figure_means_match_the_table(tmp_path):
    run_example("sweep_results_figure.py", tmp_path)
    out = tmp_path / "example_outputs" / "sweep_results_figure"
    assert (out / "accuracy_and_si_vs_alpha.png").stat().st_size > 0
    got = pd.read_csv(out / "by_alpha.csv")
    results = pd.read_csv(REPO / "docs" / "results" / "resnet20-cifar10" / "results.csv")
    for metric in ("test_accuracy", "mean_si"):
        rows = results[(results["layer"] == "network") & (results["metric"] == metric) & (results["epoch"] == 6)]
        for alpha, values in rows.groupby("alpha")["value"]:
            values = values.to_numpy()
            assert len(values) == 5  # one per seed
            half_width = 2.7764451051977987 * values.std(ddof=1) / np.sqrt(5)  # t(0.975, 4 dof)
            row = got[got["alpha"] == alpha].iloc[0]
            assert row[metric] == pytest.approx(values.mean(), rel=1e-12)
            assert row[f"{metric}_ci95"] == pytest.approx(half_width, rel=1e-9)
    assert sorted(got["alpha"]) == [-10.0, -2.0, -1.0, 0.0, 1.0]
