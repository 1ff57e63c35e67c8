"""Tidy result rows for the unit toolkit's post-sweep analyses, and the shared run loading."""
import functools

import pandas as pd

from selectivity.data import load_dataset
from selectivity.data.base import DatasetSplits
from selectivity.model_loading import load_run_model
from selectivity.setup import resolve_device

NETWORK_LAYER = "network"


class RunRows:
    """Builds rows of one run in the results table's columns, taking alpha, epoch and depth order
    from the rows the table already holds for it (its final evaluation)."""

    def __init__(self, run, table: pd.DataFrame):
        own = table[table["run_id"] == run.run_id]
        self.run, self.alpha, self.final_epoch = run, float(own["alpha"].iloc[0]), int(own["epoch"].max())
        layers = own[(own["unit"] == -1) & (own["layer"] != NETWORK_LAYER)].drop_duplicates("layer")
        self.layer_index = dict(zip(layers["layer"], layers["layer_index"].astype(int)))

    def row(self, layer: str, metric: str, value: float, unit: int = -1, epoch: int | None = None) -> dict:
        """One row; `layer` "network" gets layer_index -1, an unknown layer -1 as well."""
        config = self.run.config
        return {"run_id": self.run.run_id, "model": config.model.name, "dataset": config.data.dataset,
                "alpha": self.alpha, "alpha_label": self.run.alpha_label, "seed": config.seed,
                "epoch": self.final_epoch if epoch is None else int(epoch), "layer": layer,
                "layer_index": -1 if layer == NETWORK_LAYER else self.layer_index.get(layer, -1),
                "unit": int(unit), "metric": metric, "value": float(value)}


@functools.lru_cache(maxsize=2)
def _cached_data(dataset: str, root: str, download: bool) -> DatasetSplits:
    return load_dataset(dataset, root=root or None, download=download)  # as selectivity.setup.load_data


def run_model(run) -> tuple:
    """(model in eval mode on the run's device, DatasetSplits) of a done run; the data is loaded once
    per dataset across runs."""
    config = run.config
    data = _cached_data(config.data.dataset, config.data.root, config.data.download)
    device = resolve_device(config.device)
    model = load_run_model(run.path, config, data).model.to(device).eval()
    return model, data, device
