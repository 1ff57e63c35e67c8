"""`measure` with label-shuffle nulls: the same pass, the same SI, extra columns per unit and layer."""
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import mutual_info_score, roc_auc_score

from selectivity.capture import UnitCapture
from selectivity.cli import main
from selectivity.data import LabelledImages, load_dataset
from selectivity.data.batches import normalize_images
from selectivity.measure import measure_model
from selectivity.metrics.shuffles import ShuffleSettings
from selectivity.models import create_model
from tests.test_unit_nulls import numpy_bins


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SELECTIVITY_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def digits_subset():
    digits = load_dataset("digits")
    return digits, LabelledImages(digits.test.images[:200], digits.test.labels[:200])


def test_shuffles_add_columns_without_changing_si_and_means_match_a_direct_pass(digits_subset):
    digits, split = digits_subset
    torch.manual_seed(0)
    model = create_model("small_cnn", num_classes=10, in_channels=1).eval()
    plain = measure_model(model, split, 10, digits.mean, digits.std, batch_size=64)
    nulls = measure_model(model, split, 10, digits.mean, digits.std, batch_size=64, shuffles=ShuffleSettings(3, 8, 1))
    pd.testing.assert_frame_equal(nulls.units[plain.units.columns], plain.units)
    assert nulls.accuracy == plain.accuracy
    with torch.no_grad(), UnitCapture(model, "relu") as capture:
        model(normalize_images(split.images, digits.mean, digits.std))
        direct = torch.cat(list(capture.activations.values()), 1).double().numpy()  # [N, U]
    np.testing.assert_allclose(nulls.units["mean_activation"], direct.mean(0), rtol=1e-9, atol=1e-12)
    labels, top = split.labels.numpy(), direct.max(0)  # the exact maximum over every input sets the top bin edge
    for unit in np.flatnonzero(top > 0)[:5]:
        binned = numpy_bins(direct[:, unit], top[unit], 8)
        assert nulls.units.loc[unit, "mutual_information"] == pytest.approx(mutual_info_score(labels, binned) / np.log(2))
        preferred = nulls.units.loc[unit, "preferred_class"]
        assert nulls.units.loc[unit, "auc"] == pytest.approx(roc_auc_score(labels == preferred, direct[:, unit]), abs=1e-9)
    above = nulls.layers["si_above_chance"]
    expected = (nulls.units["si_z"] > 1.6448536269514722).groupby(nulls.units["layer"], sort=False).mean()
    np.testing.assert_allclose(above, expected.to_numpy())
    assert list(nulls.layers["layer"]) == list(plain.layers["layer"])


def test_measure_command_writes_the_null_columns(tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["measure", "--no-progress", "--model", "small_cnn", "--dataset", "digits", "--limit", "120",
            "--shuffles", "2", "--bins", "6", "--out", str(out)]
    assert main(argv) == 0
    units, layers = pd.read_csv(out / "units.csv"), pd.read_csv(out / "layers.csv")
    assert {"auc", "mutual_information", "lifetime_sparseness", "si_p", "auc_z"} <= set(units.columns)
    assert set(units["si_p"].round(6)) <= {round(1 / 3, 6), round(2 / 3, 6), 1.0}  # (1 + #>=) / (S + 1), S = 2
    assert "mutual_information_above_chance" in layers and "SI>chance" in capsys.readouterr().out


def test_measure_command_refuses_a_single_shuffle(tmp_path, capsys):
    argv = ["measure", "--no-progress", "--model", "small_cnn", "--dataset", "digits", "--shuffles", "1",
            "--out", str(tmp_path / "out")]
    assert main(argv) == 2
    assert "shuffles = 1" in capsys.readouterr().err


@pytest.mark.parametrize("flags, expected", [
    (["--shuffles", "1001"], "shuffles = 1001; expected 0 (no null) or 2 to 1000"),
    (["--shuffles", str(10**12)], f"shuffles = {10**12}; expected"),  # once reached 24 GB before any result
    (["--shuffles", "2", "--bins", "2"], "bins = 2; expected 3"),
    (["--shuffles", "2", "--bins", "1001"], "bins = 1001; expected 3 (a zero bin and two above it) to 1000"),
    (["--shuffles", "2", "--shuffle-seed", "-1"], "shuffle seed = -1; expected an integer in [0, 2**63)"),
    (["--shuffles", "2", "--shuffle-seed", str(2**63)], f"shuffle seed = {2**63}; expected"),
], ids=["1001-shuffles", "10**12-shuffles", "2-bins", "1001-bins", "negative-seed", "seed-2**63"])
def test_measure_refuses_shuffle_settings_out_of_range_in_one_line_before_the_pass(tmp_path, capsys, flags,
                                                                                    expected):
    argv = ["measure", "--no-progress", "--model", "small_cnn", "--dataset", "digits", *flags,
            "--out", str(tmp_path / "out")]
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], lines
    assert not (tmp_path / "out").exists()


def test_labelings_that_would_not_fit_in_memory_are_refused_before_the_pass(monkeypatch):
    from selectivity.errors import SelectivityError
    from selectivity.metrics import shuffles

    labels = torch.arange(1000) % 10
    monkeypatch.setattr(shuffles, "LABELINGS_BYTES", 11 * 1000 * 8)  # room for 10 shuffles of 1,000 labels, not 11
    shuffles.ShuffledAccumulator(labels, 10, ShuffleSettings(10)).close()
    with pytest.raises(SelectivityError, match=r"11 shuffles of 1000 inputs need 0\.0 GiB of labelings; expected at "
                                               r"most 0 GiB: fewer shuffles, or a --limit sample"):
        shuffles.ShuffledAccumulator(labels, 10, ShuffleSettings(11))
