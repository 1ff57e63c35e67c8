"""The off-axis control on a real (smoke-size) digits sweep: two alpha=0 seeds and regularized runs."""
import shutil

import numpy as np
import pandas as pd
import pytest

from selectivity.config import ExperimentConfig, RegularizerSettings, TrainSettings
from selectivity.store import run_path
from selectivity.sweep.analyses import AnalysisContext
from selectivity.sweep.layout import SweepFolder, SweepRun
from selectivity.sweep.off_axis import off_axis_control
from selectivity.sweep.results import run_rows
from selectivity.train import train_run


def make_run(store, alpha, seed, label=None) -> SweepRun:
    config = ExperimentConfig(train=TrainSettings(epochs=2), regularizer=RegularizerSettings(alpha=alpha),
                              seed=seed, device="cpu")
    run = SweepRun(config, label or format(alpha, "g"), run_path(store, config))
    train_run(config, run.path, progress=False)
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    store = tmp_path_factory.mktemp("sweep") / "runs"
    return [make_run(store, 0.0, 0), make_run(store, 0.0, 1), make_run(store, -10.0, 0)]


def context(runs, folder):
    """What the sweep hands an analysis: the done runs and their rows of the results table."""
    table = pd.concat([run_rows(run) for run in runs], ignore_index=True)
    return AnalysisContext(folder=SweepFolder(folder), runs=runs, table=table)


def test_ratio_rows_for_each_layer_of_each_regularized_run(runs, tmp_path):
    rows = pd.DataFrame(off_axis_control(context(runs, tmp_path)))
    ratios = rows[rows["metric"].isin(["pwcca_ratio", "svcca_ratio"])]
    assert set(ratios["run_id"]) == {runs[2].run_id}
    assert sorted(ratios["layer"].unique()) == ["relu1", "relu2", "relu3", "relu4"]
    assert len(ratios) == 2 * 4 and np.isfinite(ratios["value"]).all() and (ratios["value"] > 0).all()
    assert ratios.groupby("layer")["layer_index"].first().to_dict() == {"relu1": 0, "relu2": 1, "relu3": 2, "relu4": 3}
    note = rows[rows["metric"] == "pwcca_subsample"]
    assert note["value"].tolist() == [450.0]  # the whole digits test set
    assert (runs[2].path / "activations_test_450.npz").exists()  # cached for the next build


def relabelled_copy(run: SweepRun, seed: int, folder) -> SweepRun:
    """Seed 0's unregularized network filed as an alpha = 1 run of `seed`."""
    config = ExperimentConfig(train=TrainSettings(epochs=2), regularizer=RegularizerSettings(alpha=1.0),
                              seed=seed, device="cpu")
    copy = SweepRun(config, "1", folder / "copy")
    shutil.copytree(run.path, copy.path, ignore=shutil.ignore_patterns("activations_*"))
    return copy


def test_a_copy_of_an_unregularized_net_is_closer_than_seed_to_seed(runs, tmp_path):
    """A 'regularized' seed-2 run that is really seed 0's network: numerator mean(0, d01) < d01."""
    copy = relabelled_copy(runs[0], 2, tmp_path)
    rows = pd.DataFrame(off_axis_control(context(runs[:2] + [copy], tmp_path)))
    pwcca = rows[(rows["metric"] == "pwcca_ratio") & (rows["run_id"] == copy.run_id)]
    assert len(pwcca) == 4 and (pwcca["value"] < 0.75).all()


def test_same_seed_baseline_is_left_out_of_the_numerator(runs, tmp_path):
    """Seed 0's own network relabelled as a regularized seed-0 run is compared with seed 1 only: ratio ~1."""
    copy = relabelled_copy(runs[0], 0, tmp_path)
    rows = pd.DataFrame(off_axis_control(context(runs[:2] + [copy], tmp_path)))
    pwcca = rows[(rows["metric"] == "pwcca_ratio") & (rows["run_id"] == copy.run_id)]
    assert len(pwcca) == 4 and (pwcca["value"] > 0.8).all()


def test_needs_two_unregularized_seeds(runs, tmp_path):
    with pytest.warns(UserWarning, match="needs >= 2 alpha = 0 seeds"):
        assert off_axis_control(context([runs[0], runs[2]], tmp_path)) == []
