"""The unit toolkit's post-sweep analyses on two real smoke-size digits runs (alpha 0 and -10)."""
import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from selectivity.config import EvaluationSettings, ExperimentConfig, RegularizerSettings, TrainSettings
from selectivity.data import load_dataset
from selectivity.errors import SelectivityError
from selectivity.model_loading import load_run_model
from selectivity.store import run_path
from selectivity.sweep.analyses import AnalysisContext, get_analysis
from selectivity.sweep.layout import SweepFolder, SweepRun
from selectivity.sweep.results import run_rows, typed_table
from selectivity.train import train_run
from tests.reference import reference_selectivity, reference_stratified_indices

pytestmark = pytest.mark.slow  # trains two smoke-size runs (shared by every test here)
LAYERS = ("relu1", "relu2", "relu3", "relu4")  # small_cnn's unit layers, in depth order


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    store = tmp_path_factory.mktemp("sweep") / "runs"
    made = []
    for alpha in (0.0, -10.0):
        config = ExperimentConfig(train=TrainSettings(epochs=2), regularizer=RegularizerSettings(alpha=alpha),
                                  evaluation=EvaluationSettings(save_units=True), seed=0, device="cpu")
        run = SweepRun(config, format(alpha, "g"), run_path(store, config))
        train_run(config, run.path, progress=False)
        made.append(run)
    return made


def analyse(name: str, runs, folder, settings: dict | None = None) -> pd.DataFrame:
    table = pd.concat([run_rows(run) for run in runs], ignore_index=True)
    context = AnalysisContext(folder=SweepFolder(folder), runs=runs, table=table, settings=settings or {})
    return typed_table(get_analysis(name)(context))  # the results table's columns and dtypes


def test_save_units_writes_a_snapshot_per_evaluation_and_hashes_alike(runs):
    assert sorted(runs[0].directory.read_units_snapshots()) == [1, 2]
    final = runs[0].directory.read_units_snapshots()[2]
    pd.testing.assert_frame_equal(final, runs[0].directory.read_units())
    plain = dataclasses.replace(runs[0].config, evaluation=EvaluationSettings())
    assert run_path("s", plain) == run_path("s", runs[0].config)  # a reporting switch, not a new run


def test_training_dynamics_rows_follow_every_record_and_the_snapshots(runs, tmp_path):
    rows = analyse("training_dynamics", runs, tmp_path)
    run = runs[1]
    records = run.directory.read_metrics()
    own = rows[rows["run_id"] == run.run_id].set_index(["layer", "metric", "epoch"])["value"]
    for record in records:
        assert own[("network", "epoch_mean_si", record["epoch"])] == record["mean_si"]
        assert own[("relu2", "epoch_mean_si", record["epoch"])] == record["layers"]["relu2"]["mean_si"]
    first, final = (run.directory.read_units_snapshots()[e] for e in (1, 2))
    live = ~final["dead"].to_numpy()
    agrees = (first["preferred_class"].to_numpy() == final["preferred_class"].to_numpy()) & ~first["dead"].to_numpy()
    layer = (final["layer"] == "relu3").to_numpy()
    expected = agrees[live & layer].mean()
    assert own[("relu3", "epoch_preferred_class_agreement", 1)] == pytest.approx(expected)
    assert own[("relu3", "epoch_preferred_class_agreement", 2)] == 1.0
    assert own[("relu3", "preferred_class_consistency", 2)] == pytest.approx(expected)  # one earlier evaluation


def split_responses_by_hand(run, data) -> dict[str, np.ndarray]:
    """{layer: [N, U] float64}: post-ReLU spatial means over the whole test split, by hooks, normalised as the
    evaluation loop does (float32 on the 0..255 scale) so ties between a unit's value and its null stay ties."""
    model = load_run_model(run.path, run.config, data).model.eval()
    captured = {}
    handles = [getattr(model, name).register_forward_hook(
        lambda m, i, out, name=name: captured.__setitem__(name, out.mean((2, 3)) if out.dim() == 4 else out))
        for name in LAYERS]
    shift = (torch.tensor(data.mean) * 255).view(1, -1, 1, 1)
    scale = (torch.tensor(data.std) * 255).view(1, -1, 1, 1)
    with torch.no_grad():
        model((data.test.images.float() - shift) / scale)
    for handle in handles:
        handle.remove()
    return {name: captured[name].double().numpy() for name in LAYERS}


def test_unit_nulls_rows_equal_label_shuffle_statistics_computed_here(runs, tmp_path):
    """si_p, si_above_chance, auc and lifetime sparseness of every unit of both runs, from numpy: the S label
    vectors are the test labels permuted by torch.randperm with a generator seeded by the shuffle seed."""
    shuffles, seed = 3, 5
    rows = analyse("unit_nulls", runs, tmp_path, {"shuffles": shuffles, "bins": 6, "seed": seed})
    data = load_dataset("digits")
    labels = data.test.labels
    generator = torch.Generator().manual_seed(seed)
    labelings = [labels.numpy()] + [labels[torch.randperm(len(labels), generator=generator)].numpy()
                                    for _ in range(shuffles)]
    layer_rows = rows[(rows["unit"] == -1) & (rows["metric"] == "si_above_chance")]
    assert len(layer_rows) == 2 * 4 and layer_rows.groupby("layer")["layer_index"].first().to_dict() == {
        "relu1": 0, "relu2": 1, "relu3": 2, "relu4": 3}
    for run in runs:
        own = rows[rows["run_id"] == run.run_id]
        unit_values = own[own["unit"] >= 0].set_index(["layer", "unit", "metric"])["value"]
        layer_values = own[own["unit"] == -1].set_index(["layer", "metric"])["value"]
        for layer, responses in split_responses_by_hand(run, data).items():  # [N, U]
            si = np.stack([reference_selectivity(responses, labeling, 10) for labeling in labelings])  # [S+1, U]
            observed, null = si[0], si[1:]
            with np.errstate(divide="ignore", invalid="ignore"):  # a dead unit's null has no spread: z NaN
                z = (observed - null.mean(0)) / null.std(0, ddof=1)
            p = (1 + (null >= observed).sum(0)) / (shuffles + 1)
            units = np.arange(responses.shape[1])
            np.testing.assert_array_equal([unit_values[(layer, u, "si_p")] for u in units], p)
            assert layer_values[(layer, "si_above_chance")] == pytest.approx(np.mean(z > 1.6448536269514722))
            class_means = np.stack([responses[labels.numpy() == k].mean(0) for k in range(10)])  # [K, U]
            preferred = class_means.argmax(0)
            auc = [roc_auc_score(labels.numpy() == preferred[u], responses[:, u]) for u in units]
            np.testing.assert_allclose([unit_values[(layer, u, "auc")] for u in units], auc, atol=1e-9)
            mean_square = (responses**2).mean(0)
            with np.errstate(divide="ignore", invalid="ignore"):  # Vinje & Gallant; 0 for a dead unit
                activity = np.where(mean_square > 0, responses.mean(0) ** 2 / mean_square, 1.0)
            sparseness = np.clip((1 - activity) / (1 - 1 / len(labels)), 0, 1)
            np.testing.assert_allclose([unit_values[(layer, u, "lifetime_sparseness")] for u in units], sparseness,
                                       rtol=1e-6, atol=1e-9)


def test_ablation_rows_and_csv(runs, tmp_path):
    settings = {"layers": ["relu4"], "orders": ["si_high", "random"], "draws": 2, "fractions": [0, 0.5, 1],
                "subset": 60, "train_images": 60}
    rows = analyse("ablation", runs, tmp_path, settings)
    curves = pd.read_csv(runs[0].path / "ablation.csv")
    own = rows[rows["run_id"] == runs[0].run_id].set_index("metric")["value"]
    random_half = curves[(curves["order"] == "random") & (curves["fraction"] == 0.5)]["accuracy"].mean()
    assert own["ablation_random@0.5"] == pytest.approx(random_half)
    high = curves[curves["order"] == "si_high"].sort_values("fraction")["accuracy"].to_numpy()
    assert own["ablation_si_high_area"] == pytest.approx(0.25 * (high[0] + 2 * high[1] + high[2]))
    assert set(rows["layer"]) == {"relu4"} and set(rows["layer_index"]) == {3}
    # the ends of every curve by hand, on the test subset (60 inputs drawn with seed + 1 = 1): intact at
    # fraction 0; at fraction 1 every relu4 unit is zero, so the logits are fc2's bias for every input
    data = load_dataset("digits")
    chosen = torch.randperm(len(data.test.labels), generator=torch.Generator().manual_seed(1))[:60].sort().values
    images, labels = data.test.images[chosen], data.test.labels[chosen]
    for run in runs:
        model = load_run_model(run.path, run.config, data).model.eval()
        with torch.no_grad():
            logits = model((images.float() / 255 - torch.tensor(data.mean).view(1, -1, 1, 1))
                           / torch.tensor(data.std).view(1, -1, 1, 1))
        intact = (logits.argmax(1) == labels).double().mean().item()
        silenced = (labels == model.fc2.bias.argmax()).double().mean().item()
        curves = pd.read_csv(run.path / "ablation.csv")
        for fraction, expected in ((0.0, intact), (1.0, silenced)):
            ends = curves.loc[curves["fraction"] == fraction, "accuracy"]
            assert len(ends) == 3 and ends.to_numpy() == pytest.approx([expected] * 3)  # si_high, 2 random draws


def test_top_units_grids_show_each_layers_most_and_least_selective_live_unit(runs, tmp_path):
    """The units picked, chosen here from each run's units table: the live unit of highest and of lowest SI
    per layer (the lower unit index on a tie); one grid each, named by alpha, seed, layer, kind and unit."""
    rows = analyse("top_units", runs, tmp_path, {"k": 2, "limit": 40})
    expected_grids, expected_units = set(), set()
    for run in runs:  # one seed per alpha here, so every run is its alpha's first seed
        units = run.directory.read_units()
        for layer in LAYERS:
            live = units[(units["layer"] == layer) & ~units["dead"].astype(bool)]
            si, index = live["si"].to_numpy(), live["unit"].to_numpy()
            most, least = index[si == si.max()].min(), index[si == si.min()].min()
            for kind, unit in (("most", most), ("least", least)):
                expected_grids.add(f"{run.alpha_label}_seed{run.config.seed}_{layer}_{kind}_unit{unit}.png")
                expected_units.add((run.run_id, layer, int(unit)))
    assert {path.name for path in (tmp_path / "analyses" / "top_units").glob("*.png")} == expected_grids
    assert set(zip(rows["run_id"], rows["layer"], rows["unit"].astype(int))) == expected_units
    assert len(rows) == 2 * 4 * 2 and set(rows["metric"]) == {"topk_preferred_fraction"}


def test_top_units_fraction_is_the_preferred_share_of_the_top_k_of_the_stratified_sample(runs, tmp_path):
    """Each row's value, recomputed here: hooks by hand, spatial means, the top k of the seed-0 stratified
    sample of `limit` test images (chosen by tests/reference.py), the share in the unit's preferred class."""
    k, limit = 3, 40
    rows = analyse("top_units", runs, tmp_path, {"k": k, "limit": limit})
    data = load_dataset("digits")
    chosen = torch.from_numpy(reference_stratified_indices(data.test.images.numpy(), data.test.labels.numpy(),
                                                           limit, 0))
    images, labels = data.test.images[chosen], data.test.labels[chosen].numpy()
    checked = 0
    for run in runs:
        model = load_run_model(run.path, run.config, data).model.eval()
        preferred = run.directory.read_units().set_index(["layer", "unit"])["preferred_class"]
        captured = {}
        handles = [module.register_forward_hook(lambda m, i, o, name=name: captured.__setitem__(name, o))
                   for name, module in model.named_modules() if name in set(rows["layer"])]
        with torch.no_grad():
            model((images.float() / 255 - torch.tensor(data.mean).view(1, -1, 1, 1))
                  / torch.tensor(data.std).view(1, -1, 1, 1))
        for handle in handles:
            handle.remove()
        for row in rows[rows["run_id"] == run.run_id].itertuples():
            output = captured[row.layer]
            response = (output.mean(dim=(2, 3)) if output.dim() == 4 else output)[:, int(row.unit)].double().numpy()
            ranked = np.sort(response)[::-1]
            if ranked[k - 1] == ranked[k]:
                continue  # a tie at the k-th place: which input is in the top k is a tie-break, not checked here
            top = np.argsort(-response, kind="stable")[:k]
            assert row.value == pytest.approx(np.mean(labels[top] == preferred[(row.layer, int(row.unit))]))
            checked += 1
    assert checked >= len(rows) // 2


def test_unknown_settings_are_refused(runs, tmp_path):
    with pytest.raises(SelectivityError, match="unknown analysis_settings.top_units keys"):
        analyse("top_units", runs, tmp_path, {"kk": 4})
