import numpy as np
import pytest
import torch

from selectivity import SelectivityAccumulator, SelectivityError, layer_summary, network_mean_si, unit_table
from tests.reference import reference_selectivity


def random_layers(rng, num_inputs, sizes):
    return {f"layer{i}": torch.tensor(np.maximum(rng.normal(size=(num_inputs, size)), 0)) for i, size in enumerate(sizes)}


@pytest.mark.parametrize("batch_size", [1, 7, 64, 500])
def test_streaming_equals_whole_data(batch_size):
    rng = np.random.default_rng(batch_size)
    labels = torch.tensor(rng.integers(0, 6, size=500))
    labels[labels == 4] = 5  # class 4 absent
    layers = random_layers(rng, 500, [3, 8])
    layers["layer1"][:, 2] = 0  # a dead unit
    accumulator = SelectivityAccumulator(num_classes=6)
    for start in range(0, 500, batch_size):
        accumulator.update({k: v[start : start + batch_size].float() for k, v in layers.items()}, labels[start : start + batch_size])
    table = unit_table(accumulator.result())
    whole = np.concatenate([v.numpy() for v in layers.values()], 1)
    reference = reference_selectivity(whole.astype(np.float32).astype(np.float64), labels.numpy(), 6)
    np.testing.assert_allclose(table["si"].to_numpy(), reference, rtol=1e-9)
    assert table["dead"].tolist() == [False] * 3 + [False, False, True] + [False] * 5
    assert table.loc[5, "si"] == 0.0
    assert list(table["layer"]) == ["layer0"] * 3 + ["layer1"] * 8


def test_summaries_mean_over_units_then_layers():
    accumulator = SelectivityAccumulator(num_classes=2)
    # layer a: one unit, SI 1; layer b: three flat units, SI 0 -> network mean 0.5 (not 0.25)
    accumulator.update(
        {"a": torch.tensor([[1.0], [0.0]]), "b": torch.tensor([[1.0, 2.0, 0.0], [1.0, 2.0, 0.0]])},
        torch.tensor([0, 1]),
    )
    table = unit_table(accumulator.result())
    summary = layer_summary(table)
    assert summary["layer"].tolist() == ["a", "b"]
    assert summary["mean_si"].tolist() == pytest.approx([1.0, 0.0], abs=1e-6)
    assert summary["dead_units"].tolist() == [0, 1]
    assert network_mean_si(table) == pytest.approx(0.5, abs=1e-6)


def test_mu_max_mu_rest_preferred_class_and_d_prime():
    accumulator = SelectivityAccumulator(num_classes=3)
    activations = torch.tensor([[1.0], [3.0], [6.0], [6.0], [0.0], [2.0]])
    accumulator.update({"x": activations}, torch.tensor([0, 0, 1, 1, 2, 2]))
    row = unit_table(accumulator.result()).iloc[0]
    assert row["preferred_class"] == 1 and row["mu_max"] == 6.0 and row["mu_rest"] == 1.5
    # preferred inputs (6, 6): mean 6, var 0; rest (1, 3, 0, 2): mean 1.5, var 1.25
    assert row["d_prime"] == pytest.approx((6 - 1.5) / np.sqrt(1.25 / 2))


def test_bad_input_errors():
    accumulator = SelectivityAccumulator(num_classes=3)
    with pytest.raises(SelectivityError, match="negative activations"):
        accumulator.update({"x": torch.tensor([[-1.0], [1.0]])}, torch.tensor([0, 1]))
    accumulator = SelectivityAccumulator(num_classes=3)
    with pytest.raises(SelectivityError, match=r"outside \[0, 3\)"):
        accumulator.update({"x": torch.ones(2, 1)}, torch.tensor([0, 7]))
    accumulator = SelectivityAccumulator(num_classes=3)
    with pytest.raises(SelectivityError, match="NaN/inf"):
        accumulator.update({"x": torch.tensor([[float("nan")], [1.0]])}, torch.tensor([0, 1]))
    accumulator = SelectivityAccumulator(num_classes=3)
    accumulator.update({"x": torch.ones(2, 4)}, torch.tensor([0, 1]))
    with pytest.raises(SelectivityError, match="do not match the first batch"):
        accumulator.update({"x": torch.ones(2, 5)}, torch.tensor([0, 1]))
    with pytest.raises(SelectivityError, match="one label per input"):
        accumulator.update({"x": torch.ones(3, 4)}, torch.tensor([0, 1]))
    # the batches already seen are kept: the accumulator still answers
    assert accumulator.result().counts.tolist() == [1.0, 1.0, 0.0]
    with pytest.raises(SelectivityError, match="no batches"):
        SelectivityAccumulator(num_classes=3).result()


@pytest.mark.parametrize("num_classes", [1, 0, 2.5, True])
def test_a_class_count_below_two_or_not_an_integer_is_refused(num_classes):
    with pytest.raises(SelectivityError, match=r"num_classes = .* is invalid; expected an integer >= 2"):
        SelectivityAccumulator(num_classes)


@pytest.mark.parametrize("activations, labels, message", [
    (torch.rand(4, 2), torch.tensor([0, 1, 2, 0]), r"update\(Tensor, Tensor\); expected a dict of layer name"),
    ({"l": torch.rand(4, 2)}, [0, 1, 2, 0], r"update\(dict, list\); expected a dict"),
    ({"l": torch.rand(4, 2, 2)}, torch.tensor([0, 1, 2, 0]), r"layer l gave \(4, 2, 2\); expected a \[B, U\] tensor"),
    ({"l": [[1.0, 2.0]]}, torch.tensor([0]), r"layer l gave list; expected a \[B, U\] tensor"),
])
def test_a_batch_of_the_wrong_kind_is_a_one_line_error(activations, labels, message):
    with pytest.raises(SelectivityError, match=message):
        SelectivityAccumulator(3).update(activations, labels)


def test_the_summaries_name_the_input_they_expected():
    accumulator = SelectivityAccumulator(3)
    accumulator.update({"l": torch.rand(4, 2)}, torch.tensor([0, 1, 2, 0]))
    statistics = accumulator.result()
    with pytest.raises(SelectivityError, match="got a NoneType; expected the UnitStatistics"):
        unit_table(None)
    with pytest.raises(SelectivityError, match="got a UnitStatistics; expected the per-unit DataFrame"):
        layer_summary(statistics)
    with pytest.raises(SelectivityError, match=r"lacking columns \['dead'\]"):
        network_mean_si(unit_table(statistics).drop(columns="dead"))
