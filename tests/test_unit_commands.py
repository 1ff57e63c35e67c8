"""Top-k images of a unit, and the `topk` and `ablate` commands end to end on tiny models."""
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from selectivity.cli import main
from selectivity.data import load_dataset
from selectivity.units.ablation_run import random_subset
from selectivity.units.topk import top_and_bottom, unit_responses, write_topk_grid
from tests.test_ablation import planted_data, planted_network


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SELECTIVITY_CACHE", str(tmp_path / "cache"))


def test_topk_of_a_planted_unit_returns_its_class_and_the_bottom_the_other(tmp_path):
    split = planted_data(60)
    model = planted_network(redundant=False)
    responses = unit_responses(model, split, (0.0,), (1.0,), "2", [0, 3], batch_size=16)
    pixels = split.images.double() / 255  # [N, 1, 4, 4]; unit 0 reads pixel (0, 0), unit 3 pixel 4 = (1, 0)
    np.testing.assert_allclose(responses[:, 0], pixels[:, 0, 0, 0])
    np.testing.assert_allclose(responses[:, 1], pixels[:, 0, 1, 0])
    top, bottom = write_topk_grid(tmp_path / "grid.png", split, responses[:, 0].numpy(), 10, ("off", "on"), "planted")
    assert (split.labels[top] == 1).all() and (split.labels[bottom] == 0).all()
    assert plt.imread(tmp_path / "grid.png").ndim == 3


def test_top_and_bottom_order_by_response():
    responses = np.array([0.2, 0.9, 0.0, 0.5, 0.9])
    top, bottom = top_and_bottom(responses, 3)
    assert list(top) == [1, 4, 3] and list(bottom) == [2, 0, 3]


def test_topk_command_writes_a_grid_and_refuses_a_unit_out_of_range(tmp_path, capsys):
    base = ["topk", "--model", "small_cnn", "--dataset", "digits", "--layer", "relu4", "--limit", "60", "--k", "4"]
    assert main(base + ["--unit", "3", "--out", str(tmp_path / "u3.png")]) == 0
    assert (tmp_path / "u3.png").is_file() and "top 4 classes" in capsys.readouterr().out
    assert main(base + ["--unit", "128", "--out", str(tmp_path / "bad.png")]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "expected 0..127" in error[0]


def test_ablate_command_curve_starts_at_the_intact_accuracy_of_its_subset(tmp_path):
    argv = ["ablate", "--model", "small_cnn", "--dataset", "digits", "--layer", "relu4", "--orders", "si_high,random",
            "--draws", "2", "--fractions", "0,1", "--subset", "80", "--train-images", "80", "--out", str(tmp_path)]
    assert main(argv) == 0
    curves = pd.read_csv(tmp_path / "ablation.csv")
    summary = pd.read_csv(tmp_path / "ablation_summary.csv")
    assert len(curves) == 2 * 3 and set(summary["order"]) == {"si_high", "random"}
    digits = load_dataset("digits")
    subset = random_subset(digits.test, 80, 1)  # the command's seed 0 -> test subset seed 1
    intact = curves.loc[curves["fraction"] == 0, "accuracy"]
    assert intact.nunique() == 1  # every order starts from the same intact network on the same subset
    labels = subset.labels.numpy()
    assert {f"recall_{k}" for k in range(10)} <= set(curves.columns)
    recalls = curves.loc[curves["fraction"] == 0, [f"recall_{k}" for k in range(10)]].iloc[0].to_numpy()
    counts = np.bincount(labels, minlength=10)
    assert intact.iloc[0] == pytest.approx(np.nansum(recalls * counts) / counts.sum())
