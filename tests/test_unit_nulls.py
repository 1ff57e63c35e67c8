"""Single-unit metrics (AUC, mutual information, lifetime sparseness) and their label-shuffle nulls."""
import numpy as np
import pytest
import torch
from scipy.stats import entropy
from sklearn.metrics import mutual_info_score, roc_auc_score

from selectivity.errors import SelectivityError
from selectivity.metrics.null_table import chance_layer_summary, shuffled_unit_table
from selectivity.metrics.shuffles import ShuffledAccumulator, ShuffleSettings, label_shuffles
from tests.reference import reference_selectivity


def accumulate(layers: dict[str, np.ndarray], labels: np.ndarray, shuffles: int, bins: int, batch: int = 10_000,
               seed: int = 0, order: np.ndarray | None = None, in_memory_bytes: int = 2**28, chunk_units: int = 256):
    """Stream `layers` ([N, U] each) through a ShuffledAccumulator, in `order` (default: index order);
    returns (table, labelings). The responses are rounded to float32 in place first (what the spill
    stores, exact for model activations), so the caller's reference sees the same values."""
    for values in layers.values():
        values[...] = values.astype(np.float32)
    order = np.arange(len(labels)) if order is None else order
    accumulator = ShuffledAccumulator(torch.tensor(labels), int(labels.max()) + 1, ShuffleSettings(shuffles, bins, seed),
                                      chunk_units=chunk_units, in_memory_bytes=in_memory_bytes)
    for start in range(0, len(labels), batch):
        rows = order[start:start + batch]
        accumulator.update({name: torch.tensor(values[rows]) for name, values in layers.items()}, torch.tensor(rows))
    stats = accumulator.result()
    return shuffled_unit_table(stats), stats.labelings.numpy()


def numpy_bins(values: np.ndarray, top: float, bins: int) -> np.ndarray:
    """The documented binning, written out: 0 for r <= 0, else min(B - 1, 1 + floor(r / (top / (B - 1))))."""
    return np.where(values > 0, np.minimum(bins - 1, 1 + np.floor(values / (top / (bins - 1)))), 0).astype(int)


def test_auc_is_sklearn_roc_auc_on_the_raw_responses_with_ties():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, 2000)
    responses = np.maximum(rng.normal(0.3 + 0.4 * (labels == 2), 1.0), 0)  # [N]; class 2 preferred; ~35% tied at 0
    responses[::7] = np.round(responses[::7], 1)  # more ties above zero
    table, _ = accumulate({"x": responses[:, None]}, labels, shuffles=0, bins=20, batch=333)
    assert table.loc[0, "auc"] == pytest.approx(roc_auc_score(labels == 2, responses), abs=1e-12)


def test_mutual_information_matches_sklearn_on_the_binned_responses_in_bits():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 5, 1500)
    responses = np.maximum(rng.normal(labels * 0.3, 1.0, size=(3, 1500)).T, 0)  # [N, 3]
    table, _ = accumulate({"x": responses}, labels, shuffles=0, bins=12, batch=400)
    for unit in range(3):
        binned = numpy_bins(responses[:, unit], responses[:, unit].max(), 12)  # top = the exact maximum
        expected = mutual_info_score(labels, binned) / np.log(2)
        assert table.loc[unit, "mutual_information"] == pytest.approx(expected, abs=1e-10)


def test_lifetime_sparseness_and_mean_match_the_numpy_formula():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, 500)
    responses = np.maximum(rng.normal(size=(500, 4)), 0) * [1, 3, 0.1, 0]  # last unit dead
    responses[:, 2] = np.where(np.arange(500) == 7, 5.0, 0.0)  # answers one input only
    table, _ = accumulate({"x": responses}, labels, shuffles=0, bins=10, batch=128)
    n = len(responses)
    for unit in range(2):
        r = responses[:, unit]
        expected = (1 - (r.sum() / n) ** 2 / ((r ** 2).sum() / n)) / (1 - 1 / n)
        assert table.loc[unit, "lifetime_sparseness"] == pytest.approx(expected, rel=1e-10)
    assert table.loc[2, "lifetime_sparseness"] == pytest.approx(1.0)
    assert table.loc[3, "lifetime_sparseness"] == 0.0
    np.testing.assert_allclose(table["mean_activation"], responses.mean(0), rtol=1e-12)


def test_each_shuffle_is_the_si_of_a_permuted_label_vector():
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 4, 240)
    responses = np.maximum(rng.normal(labels[:, None] * [0.5, 0.0], 1.0), 0)  # [N, 2]
    table, labelings = accumulate({"x": responses}, labels, shuffles=3, bins=10, batch=50)
    assert (labelings[0] == labels).all()
    assert all(sorted(row) == sorted(labels) and not (row == labels).all() for row in labelings[1:])
    null_si = np.stack([reference_selectivity(responses, row, 4) for row in labelings[1:]])  # [S, U]
    np.testing.assert_allclose(table["si_null_mean"], null_si.mean(0), rtol=1e-9)
    z = (reference_selectivity(responses, labels, 4) - null_si.mean(0)) / null_si.std(0, ddof=1)
    np.testing.assert_allclose(table["si_z"], z, rtol=1e-9)
    observed = reference_selectivity(responses, labels, 4)
    np.testing.assert_allclose(table["si_p"], (1 + (null_si >= observed - 1e-12).sum(0)) / 4)


def test_a_dead_unit_ties_every_shuffle_so_it_gets_p_1_and_is_never_above_chance():
    labels = np.arange(60) % 3
    responses = np.zeros((60, 1))
    table, _ = accumulate({"x": responses}, labels, shuffles=4, bins=5)
    for metric in ("si", "d_prime", "auc", "mutual_information"):
        assert table.loc[0, f"{metric}_p"] == 1.0 and np.isnan(table.loc[0, f"{metric}_z"]), metric
        assert chance_layer_summary(table).loc[0, f"{metric}_above_chance"] == 0.0
    assert table.loc[0, "auc"] == 0.5 and table.loc[0, "mutual_information"] == 0.0


def test_a_unit_that_fires_for_one_class_only_is_perfect_and_beats_every_shuffle():
    rng = np.random.default_rng(5)
    labels = np.repeat([0, 1], 100)
    rng.shuffle(labels)
    responses = np.where(labels == 1, rng.uniform(1, 2, 200), 0.0)[:, None]  # [N, 1]
    table, _ = accumulate({"x": responses}, labels, shuffles=9, bins=16)
    row = table.iloc[0]
    assert row["auc"] == 1.0
    assert row["mutual_information"] == pytest.approx(entropy([0.5, 0.5], base=2))  # = H(class) = 1 bit
    for metric in ("si", "d_prime", "auc", "mutual_information"):
        assert row[f"{metric}_p"] == pytest.approx(1 / 10), metric
        assert row[f"{metric}_z"] > 3, metric
    summary = chance_layer_summary(table)
    assert summary.loc[0, "auc_above_chance"] == 1.0


def test_units_independent_of_the_class_sit_at_their_null_with_uniform_p_values():
    rng = np.random.default_rng(6)
    labels = rng.integers(0, 5, 400)
    responses = np.maximum(rng.normal(size=(400, 300)), 0)  # [N, U], no class signal
    shuffles = 19
    table, _ = accumulate({"x": responses}, labels, shuffles=shuffles, bins=10, batch=100)
    for metric in ("si", "d_prime", "auc", "mutual_information"):
        p = table[f"{metric}_p"].to_numpy()
        # discrete uniform on {1/20, ..., 1}: mean 0.525, a tenth of units at p <= 0.1
        assert abs(p.mean() - (shuffles + 2) / (2 * (shuffles + 1))) < 0.05, metric
        assert abs((p <= 0.1).mean() - 0.1) < 0.05, metric
        assert abs(np.median(table[f"{metric}_z"])) < 0.3, metric
    above = chance_layer_summary(table).iloc[0]
    assert all(above[f"{m}_above_chance"] < 0.12 for m in ("si", "d_prime", "auc", "mutual_information"))


def test_bad_settings_and_labels_are_refused_in_one_line():
    with pytest.raises(SelectivityError, match="shuffles = 1"):
        ShuffleSettings(shuffles=1)
    with pytest.raises(SelectivityError, match="bins = 2"):
        ShuffleSettings(bins=2)
    with pytest.raises(SelectivityError, match="expected class indices 0..2"):
        label_shuffles(torch.tensor([0, 1, 3]), 3, 2, 0)


def test_values_and_nulls_do_not_depend_on_order_batch_size_or_spilling_to_disk():
    rng = np.random.default_rng(7)
    labels = np.repeat(np.arange(4), 60)  # class-sorted, as an image folder is read
    responses = np.maximum(rng.normal(labels[:, None] * [0.6, 0.2, -0.1], 1.0, size=(240, 3)), 0).astype(np.float32)
    responses[labels == 3, 0] *= 4  # the last class's responses are the largest: a first-batch top would clip them
    sorted_table, _ = accumulate({"x": responses}, labels, shuffles=4, bins=10, batch=60)
    shuffled_table, _ = accumulate({"x": responses}, labels, shuffles=4, bins=10, batch=37,
                                   order=rng.permutation(240), in_memory_bytes=0, chunk_units=2)
    for column in sorted_table.columns.drop(["layer", "unit"]):  # rank sums and bins are exact; float sums to 1e-12
        np.testing.assert_allclose(shuffled_table[column], sorted_table[column], rtol=1e-12, atol=1e-12, err_msg=column)
    binned = numpy_bins(responses[:, 0].astype(np.float64), responses[:, 0].max(), 10)
    assert sorted_table.loc[0, "mutual_information"] == pytest.approx(mutual_info_score(labels, binned) / np.log(2))
    assert sorted_table.loc[0, "auc"] == pytest.approx(roc_auc_score(labels == 3, responses[:, 0]), abs=1e-12)


def test_an_input_given_twice_or_outside_the_split_is_refused():
    accumulator = ShuffledAccumulator(torch.tensor([0, 1, 0]), 2, ShuffleSettings(0, 5))
    accumulator.update({"x": torch.ones(2, 1)}, torch.tensor([0, 1]))
    with pytest.raises(SelectivityError, match="expected each input once"):
        accumulator.update({"x": torch.ones(1, 1)}, torch.tensor([1]))
    with pytest.raises(SelectivityError, match="expected each input once"):
        accumulator.update({"x": torch.ones(1, 1)}, torch.tensor([3]))


def test_the_chunk_shrinks_with_the_number_of_inputs_and_the_values_do_not_change(monkeypatch):
    """More inputs, fewer units per chunk (a bounded post-pass peak); every metric is unchanged."""
    import selectivity.metrics.shuffles as shuffles

    rng = np.random.default_rng(5)
    labels = rng.integers(0, 3, 300)
    layers = {"a": np.maximum(rng.normal(size=(300, 7)) + labels[:, None] * 0.3, 0), "b": rng.random((300, 5))}
    wide, _ = accumulate({k: v.copy() for k, v in layers.items()}, labels, shuffles=3, bins=5)
    monkeypatch.setattr(shuffles, "CHUNK_WORK_BYTES", 64 * 300 * 2)  # room for 2 units of 300 inputs
    chunks = []
    original = shuffles.chunk_metrics
    monkeypatch.setattr(shuffles, "chunk_metrics", lambda r, *a: chunks.append(r.shape[1]) or original(r, *a))
    narrow, _ = accumulate({k: v.copy() for k, v in layers.items()}, labels, shuffles=3, bins=5)
    assert chunks == [2] * 6
    for column in ("auc", "mutual_information", "si_null_mean", "si_z", "d_prime_z", "auc_p", "lifetime_sparseness"):
        np.testing.assert_allclose(narrow[column], wide[column], rtol=1e-12, atol=1e-12, err_msg=column)


def test_signed_responses_rank_raw_for_auc_and_bin_from_the_minimum_for_mi():
    """Raw signed responses (GELU, residual streams): AUC on the values themselves, MI's bins from
    each unit's minimum (r - min binned as documented), sparseness NaN where a unit goes negative."""
    rng = np.random.default_rng(9)
    labels = rng.integers(0, 3, 600)
    signed = rng.normal(size=(600, 4)) + (labels[:, None] == 1) * np.array([0.8, 0.0, -0.6, 0.3])
    signed[:, 3] = np.abs(signed[:, 3])  # one unit without negative values: binned from 0 as before
    values = {"s": signed.copy()}
    table, _ = accumulate(values, labels, shuffles=2, bins=7)
    r = values["s"]  # rounded to float32 by accumulate
    for u in range(4):
        means = [r[labels == k, u].mean() for k in range(3)]
        k = int(np.argmax(means))
        assert table["auc"][u] == pytest.approx(roc_auc_score(labels == k, r[:, u]), abs=1e-12)
        low = min(r[:, u].min(), 0.0)
        bins = numpy_bins(r[:, u] - low, (r[:, u] - low).max(), 7)
        assert table["mutual_information"][u] == pytest.approx(mutual_info_score(labels, bins) / np.log(2), abs=1e-9)
    assert table["lifetime_sparseness"].isna().tolist() == [True, True, True, False]
