"""The off-axis control (docs/definitions.md#off-axis-control) as a post-sweep analysis: `analyses = ["cca"]`.

Is selectivity removed by the regularizer, or only rotated away from the unit axes? Per
layer, compare each regularized run with the unregularized (alpha = 0) runs by CCA
distance, and divide by the distance between unregularized runs of different seeds:

    ratio_l(run) = mean_{b: seed(b) != seed(run)} d(run_l, b_l) / mean_{a != b} d(a_l, b_l)

A ratio near 1 means the regularized representation differs from an unregularized one no
more than two unregularized seeds differ from each other: selectivity was rotated off the
unit axes, not removed. Activations are test-set unit activations (spatial means of conv
maps, the same units as SI) of the first SAMPLE_IMAGES test images; each side keeps at
most SAMPLE_IMAGES / 10 units (random, fixed seed) so CCA has 10 samples per unit. The
regularized side is always CCA's first argument (PWCCA weighs by it).
"""
import itertools
import warnings

import numpy as np
import torch

from selectivity.analysis.cca import SAMPLES_PER_UNIT_FOR_WARNING, cca_distance, subsample_units
from selectivity.capture import UnitCapture
from selectivity.data.base import DatasetSplits
from selectivity.data.batches import normalize_images
from selectivity.errors import SelectivityError
from selectivity.sweep.analyses import AnalysisContext, register_analysis
from selectivity.sweep.analysis_cache import cached_arrays
from selectivity.sweep.layout import SweepRun
from selectivity.model_loading import load_run_model
from selectivity.train.setup import load_data

SAMPLE_IMAGES = 2000
METHODS = ("pwcca", "svcca")


def is_unregularized(run: SweepRun) -> bool:
    return run.alpha_label in ("0", "0.0")


def layer_activations(run: SweepRun, data: DatasetSplits, num_images: int) -> dict[str, np.ndarray]:
    """{layer: [N, U] float64} of the run's final model on the first `num_images` test images.

    Cached in the run folder, keyed to the checkpoint it came from (a redone run is recomputed).
    """
    cache = run.path / f"activations_test_{num_images}.npz"
    return cached_arrays(cache, run.directory.checkpoint_path, lambda: _compute_activations(run, data, num_images))


@torch.no_grad()
def _compute_activations(run: SweepRun, data: DatasetSplits, num_images: int) -> dict[str, np.ndarray]:
    config = run.config
    model = load_run_model(run.path, config, data).model.eval()
    collected: dict[str, list[torch.Tensor]] = {}
    with UnitCapture(model, config.evaluation.layers) as capture:
        for start in range(0, num_images, 500):
            images = data.test.images[start : min(start + 500, num_images)]
            model(normalize_images(images, data.mean, data.std))
            for name, units in capture.activations.items():
                collected.setdefault(name, []).append(units.double())
    return {name: torch.cat(parts).numpy() for name, parts in collected.items()}


def _distance(x: np.ndarray, y: np.ndarray, method: str, max_units: int) -> float | None:
    """CCA distance of two layers' activations, or None where it is undefined (a dead layer)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the sample rule is kept by max_units
            return cca_distance(subsample_units(x, max_units, seed=0), subsample_units(y, max_units, seed=1), method)
    except (SelectivityError, np.linalg.LinAlgError):
        return None


@register_analysis("cca")
def off_axis_control(context: AnalysisContext) -> list[dict]:
    """pwcca_ratio and svcca_ratio layer rows for every regularized done run."""
    baseline = [run for run in context.runs if is_unregularized(run)]
    others = [run for run in context.runs if not is_unregularized(run)]
    if len(baseline) < 2 or not others:
        warnings.warn("the off-axis control needs >= 2 alpha = 0 seeds and one other alpha; skipped")
        return []
    data = load_data(baseline[0].config)
    num_images = min(SAMPLE_IMAGES, len(data.test))
    max_units = num_images // SAMPLES_PER_UNIT_FOR_WARNING
    activations = {run.run_id: layer_activations(run, data, num_images) for run in baseline + others}
    first = activations[baseline[0].run_id]
    # alpha and epoch of each run's final evaluation, as the table already holds them
    final_records = context.table.drop_duplicates("run_id").set_index("run_id")[["alpha", "epoch"]].to_dict("index")
    # depth order as the trainer recorded it, so these rows share one index per layer with the table's
    depth = context.table[context.table["unit"] == -1].drop_duplicates("layer").set_index("layer")["layer_index"]
    rows = []
    for method in METHODS:
        for layer in first:
            layer_index = int(depth[layer]) if layer in depth.index else -1
            pairs = [_distance(activations[a.run_id][layer], activations[b.run_id][layer], method, max_units)
                     for a, b in itertools.permutations(baseline, 2)]
            pairs = [d for d in pairs if d is not None]
            if not pairs or np.mean(pairs) <= 0:
                continue
            seed_to_seed = float(np.mean(pairs))
            for run in others:
                distances = [_distance(activations[run.run_id][layer], activations[b.run_id][layer], method, max_units)
                             for b in _other_seeds(baseline, run)]
                distances = [d for d in distances if d is not None]
                if distances:
                    ratio = float(np.mean(distances)) / seed_to_seed
                    rows.append(_row(run, final_records, layer, layer_index, f"{method}_ratio", ratio))
    for run in others:
        rows.append(_row(run, final_records, "network", -1, "pwcca_subsample", float(num_images)))
    return rows


def _other_seeds(baseline: list[SweepRun], run: SweepRun) -> list[SweepRun]:
    """Unregularized runs of other seeds: a shared seed means a shared initialisation and data
    order, which would make a weakly regularized net look closer than seed-to-seed."""
    return [b for b in baseline if b.config.seed != run.config.seed] or baseline


def _row(run: SweepRun, final_records: dict, layer: str, layer_index: int, metric: str, value: float) -> dict:
    record = final_records[run.run_id]
    return {
        "run_id": run.run_id, "model": run.config.model.name, "dataset": run.config.data.dataset,
        "alpha": float(record["alpha"]), "alpha_label": run.alpha_label, "seed": run.config.seed,
        "epoch": int(record["epoch"]), "layer": layer, "layer_index": layer_index, "unit": -1,
        "metric": metric, "value": value,
    }
