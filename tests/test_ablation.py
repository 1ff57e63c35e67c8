"""Unit ablation curves on planted networks whose answers are known."""
import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from torch import nn

from selectivity.capture import UnitCapture
from selectivity.data.base import DatasetSplits, LabelledImages
from selectivity.errors import SelectivityError
from selectivity.units.ablation import UnitAblation, ablation_curves, random_orders
from selectivity.units.ablation_run import AblationSettings, model_ablation_curves
from selectivity.units.ablation_summary import mean_curves, parse_ablation_metric, tidy_ablation_rows

UNITS = 8


def planted_data(num_images: int = 200, seed: int = 0) -> LabelledImages:
    """[N, 1, 4, 4] uint8 images, balanced classes 0/1; pixel (0, 0) is 255 for class 1, else 0; the rest noise."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(num_images) % 2
    images = torch.randint(0, 256, (num_images, 1, 4, 4), dtype=torch.uint8, generator=generator)
    images[:, 0, 0, 0] = (labels * 255).to(torch.uint8)
    return LabelledImages(images, labels)


def planted_network(redundant: bool, threshold: float = 0.5) -> nn.Sequential:
    """hidden unit u = relu(pixel (0, 0)) for the signal units, relu(another pixel) for the others;
    logits = [threshold, sum of signal units], so class 1 wins while any signal unit is intact.
    Only unit 0 carries the signal unless `redundant`, when every unit does."""
    hidden, readout = nn.Linear(16, UNITS), nn.Linear(UNITS, 2)
    with torch.no_grad():
        hidden.weight.zero_(), hidden.bias.zero_(), readout.weight.zero_()
        for unit in range(UNITS):
            hidden.weight[unit, 0 if redundant or unit == 0 else unit + 1] = 1.0
        readout.weight[1, : UNITS if redundant else 1] = 1.0
        readout.bias.copy_(torch.tensor([threshold, 0.0]))
    return nn.Sequential(nn.Flatten(), hidden, nn.ReLU(), readout).eval()


def planted_splits() -> DatasetSplits:
    return DatasetSplits("planted", planted_data(400, 1), planted_data(200, 2), ("off", "on"), (0.0,), (1.0,))


def test_ablating_the_one_unit_that_carries_the_signal_drops_accuracy_to_chance():
    settings = AblationSettings(orders=("si_high", "si_low"), fractions=(0.0, 0.125, 0.875, 1.0), subset=200)
    curves = model_ablation_curves(planted_network(redundant=False), planted_splits(), (0.0,), (1.0,), "relu", settings)
    accuracy = curves.set_index(["order", "fraction"])["accuracy"]
    assert accuracy[("si_high", 0.0)] == 1.0 and accuracy[("si_high", 0.125)] == 0.5  # unit 0 (SI 1) goes first
    assert accuracy[("si_low", 0.875)] == 1.0 and accuracy[("si_low", 1.0)] == 0.5  # ... and last
    high = curves[(curves["order"] == "si_high") & (curves["fraction"] == 0.125)].iloc[0]
    assert (high["recall_0"], high["recall_1"]) == (1.0, 0.0)  # every input now reads as class 0


def test_clamping_to_the_training_mean_holds_the_unit_at_its_average():
    settings = AblationSettings(orders=("si_high",), fractions=(0.125,), clamp="mean")
    model = planted_network(redundant=False, threshold=0.4)  # unit 0's training mean, 0.5, now reads as class 1
    curves = model_ablation_curves(model, planted_splits(), (0.0,), (1.0,), "relu", settings)
    assert (curves.loc[0, "recall_0"], curves.loc[0, "recall_1"]) == (0.0, 1.0)


def test_random_order_ablation_of_redundant_units_leaves_accuracy_flat():
    settings = AblationSettings(orders=("random",), draws=3, fractions=(0.0, 0.5, 0.875, 1.0))
    curves = model_ablation_curves(planted_network(redundant=True), planted_splits(), (0.0,), (1.0,), "relu", settings)
    assert set(curves["draw"]) == {0, 1, 2}
    assert (curves.loc[curves["fraction"] < 1, "accuracy"] == 1.0).all()
    assert (curves.loc[curves["fraction"] == 1, "accuracy"] == 0.5).all()


def test_clamping_to_the_mean_sets_the_whole_conv_map_after_batchnorm():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2)).eval()
    with torch.no_grad():
        model[1].bias.fill_(3.0)  # zeroing the conv weights would still pass this shift through
    images = torch.randn(5, 1, 6, 6)
    model(images)
    values = torch.tensor([0.0, 0.7, 0.0, 0.0])
    with UnitAblation(model, "2", values) as ablation, UnitCapture(model, ["2"]) as capture:
        ablation.set_ablated(torch.tensor([0, 1]))
        model(images)
        units = capture.activations["2"]  # [B, 4] spatial means
    assert (units[:, 0] == 0).all() and torch.allclose(units[:, 1], torch.full((5,), 0.7))
    assert (units[:, 2:] > 0).all()
    assert not model[2]._forward_hooks and not model._forward_pre_hooks  # every hook removed


def test_only_the_named_call_of_a_reused_module_is_ablated():
    relu = nn.ReLU()

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.relu = relu

        def forward(self, x):
            return self.relu(x) + 10 * self.relu(x)

    model, x = Twice(), torch.ones(2, 3)
    with UnitAblation(model, "relu#2", torch.zeros(3)) as ablation:
        ablation.set_ablated(torch.arange(3))
        assert torch.equal(model(x), torch.ones(2, 3))  # the second call's 10 * 1 is gone, the first kept


def test_curve_means_cis_and_areas_follow_their_formulas():
    curves = pd.DataFrame({"layer": "l", "order": ["random"] * 6 + ["si_high"] * 3, "draw": [0, 0, 0, 1, 1, 1, 0, 0, 0],
                           "fraction": [0, 0.5, 1] * 3, "accuracy": [1, 0.8, 0.2, 1, 0.6, 0.4, 1, 0.5, 0]})
    rows = tidy_ablation_rows(curves).set_index("metric")["value"]
    assert rows["ablation_random@0.5"] == pytest.approx(0.7)
    assert rows["ablation_si_high_area"] == pytest.approx(0.25 * (1 + 0.5) + 0.25 * 0.5)
    areas = [0.25 * 1.8 + 0.25 * 1.0, 0.25 * 1.6 + 0.25 * 1.0]
    assert rows["ablation_random_area"] == pytest.approx(np.mean(areas))
    ci = mean_curves(curves).set_index(["order", "fraction"]).loc[("random", 0.5), "accuracy_ci95"]
    assert ci == pytest.approx(stats.t.ppf(0.975, 1) * np.std([0.8, 0.6], ddof=1) / np.sqrt(2))
    assert parse_ablation_metric("ablation_si_high@0.25") == ("si_high", 0.25)
    assert parse_ablation_metric("ablation_si_high_area") is None and parse_ablation_metric("mean_si") is None


def test_random_orders_are_permutations_fixed_by_the_seed():
    first, again = random_orders(10, 3, seed=5), random_orders(10, 3, seed=5)
    assert all(sorted(order) == list(range(10)) for order in first.values())
    assert all((first[k] == again[k]).all() for k in first) and not (first["random#0"] == first["random#1"]).all()


@pytest.mark.parametrize("values, message", [
    ({"clamp": "half"}, "clamp 'half'"), ({"orders": ["si_middle"]}, "order 'si_middle'"),
    ({"shuffle": 3}, "unknown ablation settings"), ({"draws": 0}, "ablation draws = 0; expected an integer >= 1"),
    ({"subset": 0}, "ablation subset = 0;"), ({"train_images": -2}, "ablation train_images = -2;"),
    ({"batch_size": 0}, "ablation batch_size = 0;"), ({"fractions": []}, "ablation fractions are empty")])
def test_bad_settings_are_refused_in_one_line(values, message):
    with pytest.raises(SelectivityError, match=message):
        AblationSettings.from_dict(values)


def test_fractions_outside_0_1_are_refused():
    with pytest.raises(SelectivityError, match=r"expected values in \[0, 1\]"):
        ablation_curves(planted_network(False), planted_data(10), 2, (0.0,), (1.0,), "2", torch.zeros(UNITS),
                        {"a": np.arange(UNITS)}, (0.5, 1.5))
