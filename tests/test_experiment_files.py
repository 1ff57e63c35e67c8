"""Every experiment config and sweep spec shipped in experiments/ loads and names what exists."""
from pathlib import Path

import pytest

from selectivity.config import load_config
from selectivity.data import list_datasets
from selectivity.models import list_models
from selectivity.sweep.spec import grid_configs, load_sweep_spec

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


@pytest.mark.parametrize("path", sorted(EXPERIMENTS.glob("*.toml")), ids=lambda p: p.name)
def test_experiment_config_loads_with_a_registered_model_and_dataset(path):
    config = load_config(path)
    assert config.model.name in list_models() and config.data.dataset in list_datasets()
    assert "Expected" in path.read_text()  # each config states its expected runtime and result


@pytest.mark.parametrize("path", sorted((EXPERIMENTS / "sweeps").glob("*.toml")), ids=lambda p: p.name)
def test_sweep_spec_expands_to_its_grid(path):
    spec = load_sweep_spec(path)
    grid = grid_configs(spec)
    assert len(grid) == len(spec.alphas) * len(spec.seeds) > 0
