"""Sweep spec files: parsing, --set overrides, one-line errors, and the grid's run folders."""
from pathlib import Path

import pytest

from selectivity.config import config_hash
from selectivity.errors import SelectivityError
from selectivity.sweep import SweepFolder, alpha_label, load_sweep_spec, parse_set_values, sweep_folder_for
from selectivity.sweep.layout import open_sweep

BASE = """
[train]
epochs = 7
lr = 0.05
"""


def write_spec(tmp_path: Path, body: str, name: str = "spec.toml") -> Path:
    (tmp_path / "configs").mkdir(exist_ok=True)
    (tmp_path / "configs" / "base.toml").write_text(BASE)
    (tmp_path / "sweeps").mkdir(exist_ok=True)
    path = tmp_path / "sweeps" / name
    path.write_text('base = "../configs/base.toml"\n' + body)
    return path


def test_spec_expands_alpha_major_with_seeds_beneath_one_hash(tmp_path):
    path = write_spec(tmp_path, 'name = "demo"\nalphas = [-1, 0, 0.5, "0x2,-20"]\nseeds = 3\n'
                                '[overrides]\n"train.epochs" = 3\n')
    spec = load_sweep_spec(path)
    assert spec.name == "demo" and spec.seeds == (0, 1, 2) and spec.alphas == (-1.0, 0.0, 0.5, "0x2,-20")
    runs = SweepFolder(tmp_path / "out").runs_for(spec)
    assert [(run.alpha_label, run.config.seed) for run in runs[:4]] == [("-1", 0), ("-1", 1), ("-1", 2), ("0", 0)]
    assert len(runs) == 12 and len({run.run_id for run in runs}) == 12
    assert {run.config.train.epochs for run in runs} == {3} and {run.config.train.lr for run in runs} == {0.05}
    hashes = [config_hash(run.config) for run in runs]
    assert len(set(hashes)) == 4  # the seed is not part of the hash: replicates share a folder
    first = runs[0]
    assert first.path == tmp_path / "out" / "runs" / hashes[0] / "seed_0"
    assert first.run_id == f"{hashes[0]}/seed_0"
    assert runs[-1].config.regularizer.alpha == "0x2,-20"


def test_seed_list_default_name_and_store(tmp_path, monkeypatch):
    spec = load_sweep_spec(write_spec(tmp_path, "alphas = [0]\nseeds = [4, 9]\n", name="grid-a.toml"))
    assert spec.name == "grid-a" and spec.seeds == (4, 9)
    monkeypatch.setenv("SELECTIVITY_RUNS", str(tmp_path / "runs-root"))
    assert sweep_folder_for(spec).path == tmp_path / "runs-root" / "grid-a"
    assert sweep_folder_for(spec, tmp_path / "elsewhere").path == tmp_path / "elsewhere"


def test_set_values_override_spec_keys_and_settings(tmp_path):
    values = parse_set_values(["seeds=2", "alphas=[0, -1]", "train.epochs=1", "data.dataset=cifar10",
                               "name=quick"])
    assert values == {"seeds": 2, "alphas": [0, -1], "train.epochs": 1, "data.dataset": "cifar10", "name": "quick"}
    spec = load_sweep_spec(write_spec(tmp_path, "alphas = [1]\nseeds = 5\n"), values)
    assert spec.name == "quick" and spec.seeds == (0, 1) and spec.alphas == (0.0, -1.0)
    assert spec.overrides == {"train.epochs": 1, "data.dataset": "cifar10"}


@pytest.mark.parametrize("value, label", [(10.0, "10"), (-0.1, "-0.1"), (0, "0"), (1e-7, "1e-07"),
                                          (0.1234567891, "0.1234567891"), (" 0x5,-20 ", "0x5,-20")])
def test_alpha_labels_are_the_alpha_as_written(value, label):
    assert alpha_label(value) == label


def test_a_constant_written_as_a_string_is_the_same_run_as_the_number(tmp_path):
    spec = load_sweep_spec(write_spec(tmp_path, 'alphas = ["-1", 2]\n'))
    assert spec.alphas == (-1.0, 2.0) and spec.seeds == (0,)


@pytest.mark.parametrize("body, message", [
    ("alphas = [0]\nepochs = 3\n", "unknown key"),
    ("seeds = 2\n", "lacks 'alphas'"),
    ("alphas = []\n", "non-empty list"),
    ("alphas = [1, 1.0]\n", "repeat a value"),
    ("alphas = ['0x5,']\n", "malformed"),
    ("alphas = [true]\n", "expected a number or a schedule"),
    ("alphas = [0]\nseeds = 0\n", "count >= 1"),
    ("alphas = [0]\nseeds = [1, 1]\n", "repeats a seed"),
    ("alphas = [0]\n[overrides]\n\"regularizer.alpha\" = 1\n", "set by the sweep grid"),
    ("alphas = [0]\nanalyses = 'cca'\n", "list of analysis names"),
])
def test_bad_specs_give_one_line_errors(tmp_path, body, message):
    with pytest.raises(SelectivityError, match=message) as error:
        load_sweep_spec(write_spec(tmp_path, body))
    assert "\n" not in str(error.value)


def test_bad_override_and_missing_files_are_errors(tmp_path):
    spec = load_sweep_spec(write_spec(tmp_path, "alphas = [0]\n"), {"train.epochs": "many"})
    with pytest.raises(SelectivityError, match="train.epochs"):
        SweepFolder(tmp_path).runs_for(spec)
    with pytest.raises(SelectivityError, match="does not exist"):
        load_sweep_spec(tmp_path / "missing.toml")
    with pytest.raises(SelectivityError, match="key=value"):
        parse_set_values(["train.epochs"])


def test_open_sweep_reads_a_spec_or_the_manifest_of_a_sweep_folder(tmp_path):
    path = write_spec(tmp_path, 'alphas = [0, "0x1,-2"]\nseeds = 2\n')
    name, folder, runs, analyses = open_sweep(path, store=tmp_path / "sweep")
    folder.write_manifest(name, runs, ("cca",))
    again_name, _, again_runs, again_analyses = open_sweep(tmp_path / "sweep")
    assert (again_name, again_analyses) == ("spec", ("cca",))
    assert [(r.run_id, r.alpha_label, r.path, r.config) for r in again_runs] == \
        [(r.run_id, r.alpha_label, r.path, r.config) for r in runs]
    with pytest.raises(SelectivityError, match="no sweep.json"):
        open_sweep(tmp_path / "configs")


def test_analysis_settings_reach_each_analysis_and_survive_the_manifest(tmp_path):
    from selectivity.sweep.analyses import AnalysisContext, register_analysis, run_analyses

    seen = {}

    @register_analysis("test-settings-a")
    def first(context):
        seen["a"] = context.settings
        return []

    @register_analysis("test-settings-b")
    def second(context):
        seen["b"] = context.settings
        return []

    path = write_spec(tmp_path, 'alphas = [0]\nanalyses = ["test-settings-a", "test-settings-b"]\n'
                                '[analysis_settings.test-settings-a]\nshuffles = 7\nmode = "mean"\n')
    name, folder, runs, analyses = open_sweep(path, store=tmp_path / "sweep")
    assert analyses == ("test-settings-a", "test-settings-b")  # still reads as the names
    folder.write_manifest(name, runs, analyses)
    _, _, _, again = open_sweep(tmp_path / "sweep")
    run_analyses(again, AnalysisContext(folder=folder, runs=[], table=None))
    assert seen == {"a": {"shuffles": 7, "mode": "mean"}, "b": {}}


def test_settings_of_a_known_analysis_left_out_by_set_are_kept_aside(tmp_path):
    # a spec that configures its analyses must still run with `--set analyses=[]` (train only)
    path = write_spec(tmp_path, 'alphas = [0]\nanalyses = ["ablation"]\n[analysis_settings.ablation]\nk = 1\n')
    spec = load_sweep_spec(path, cli_overrides=parse_set_values(["analyses=[]"]))
    assert tuple(spec.analyses) == ()
    assert spec.analyses.settings == {}


@pytest.mark.parametrize("body, message", [
    ('alphas = [0]\nanalyses = ["cca"]\n[analysis_settings.ablaton]\nk = 1\n', "neither in analyses"),
    ('alphas = [0]\nanalyses = ["cca"]\nanalysis_settings = 3\n', "expected tables"),
    ('alphas = [0]\nanalyses = ["cca"]\n[analysis_settings]\ncca = 3\n', "expected a table of settings"),
])
def test_bad_analysis_settings_are_one_line_errors(tmp_path, body, message):
    with pytest.raises(SelectivityError, match=message):
        load_sweep_spec(write_spec(tmp_path, body))


BAD_SETTING_VALUES = {  # analysis: (its settings table, what the one-line error names)
    "cca-any-key": ("cca", "images = 3", "cca has key(s) ['images']; expected none"),
    "unit-nulls-one-shuffle": ("unit_nulls", "shuffles = 1", "shuffles = 1; expected 0 (no null) or 2 to 1000"),
    "unit-nulls-text": ("unit_nulls", 'bins = "20"', "analysis_settings.unit_nulls = {'bins': '20'} is malformed"),
    "ablation-no-draws": ("ablation", "draws = 0", "ablation draws = 0; expected an integer >= 1"),
    "ablation-text-fraction": ("ablation", 'fractions = ["half"]', "ablation fractions ['half']; expected numbers"),
    "ablation-fraction-above-1": ("ablation", "fractions = [0, 1.5]", "ablation fractions [0, 1.5]; expected numbers"),
    "dynamics-any-key": ("training_dynamics", "every = 2", "unknown analysis_settings.training_dynamics keys"),
    "top-units-k-zero": ("top_units", "k = 0", "analysis_settings.top_units.k = 0; expected an integer >= 1"),
    "top-units-limit-text": ("top_units", 'limit = "all"', "analysis_settings.top_units.limit = 'all'"),
    "corruptions-no-severity": ("corruptions", "severities = []", "corruptions.severities is empty"),
    "attacks-no-eps": ("attacks", "eps_255 = []", "analysis_settings.attacks.eps_255 is empty"),
    "attacks-no-steps": ("attacks", "steps = 0", "analysis_settings.attacks.steps = 0; expected at least 1"),
    "dimensionality-share-above-1": ("dimensionality", "threshold = 2.0", "threshold = 2.0; expected a share"),
    "dimensionality-share-0": ("dimensionality", "threshold = 0", "threshold = 0; expected a share"),
    "images-zero": ("dimensionality", "images = 0", "dimensionality.images = 0; expected at least 1 test image"),
}


@pytest.mark.parametrize("analysis, setting, message", BAD_SETTING_VALUES.values(), ids=BAD_SETTING_VALUES.keys())
def test_bad_analysis_setting_values_fail_when_the_spec_is_read(tmp_path, analysis, setting, message):
    """Before any run trains, not after the whole grid has (the analyses run last)."""
    body = f'alphas = [0]\nanalyses = ["{analysis}"]\n[analysis_settings.{analysis}]\n{setting}\n'
    with pytest.raises(SelectivityError) as error:
        load_sweep_spec(write_spec(tmp_path, body))
    assert message in str(error.value) and "\n" not in str(error.value), str(error.value)


def test_good_analysis_settings_pass_the_check(tmp_path):
    body = ('alphas = [0]\nanalyses = ["ablation", "top_units", "dimensionality", "unit_nulls", "cca"]\n'
            '[analysis_settings.ablation]\ndraws = 2\nfractions = [0, 0.5]\n[analysis_settings.top_units]\nk = 4\n'
            'limit = 100\n[analysis_settings.dimensionality]\nthreshold = 1.0\n[analysis_settings.unit_nulls]\n'
            'shuffles = 0\n')
    spec = load_sweep_spec(write_spec(tmp_path, body))
    assert spec.analyses.settings["top_units"] == {"k": 4, "limit": 100}
    assert spec.analyses.settings["dimensionality"] == {"threshold": 1.0}
