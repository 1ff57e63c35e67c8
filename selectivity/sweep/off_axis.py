"""The off-axis control (docs/definitions.md#off-axis-control, docs/cca.md) as a post-sweep analysis:
`analyses = ["cca"]`.

Is selectivity removed by the regularizer, or only rotated away from the unit axes? Per
condition (alpha_label), layer and similarity method, compare regularized networks with
unregularized (alpha = 0) ones and divide by how much alpha = 0 networks differ:

    ratio = mean over (regularized run r, alpha = 0 run b, seed(b) != seed(r)) of d(r, b)
            / mean over pairs {a, b} of alpha = 0 runs of d(a, b)

with d = 1 - similarity for SVCCA, PWCCA (the equation and the google/svcca code), linear
CKA. A ratio near 1: the regularized layer differs from an unregularized one no more than
two unregularized seeds do. Each ratio comes with a 95% CI (`ratio_of_means_interval`).
PWCCA is asymmetric: the regularized side is its first argument, and a baseline pair's
distance is the mean of both orders.

Activations are the unit activations of SAMPLE_IMAGES test images, a class-stratified sample
drawn with SUBSET_SEED (the test files are ordered by class, so never the first N), from the
evaluation pass every measurement uses (`measure.unit_activations`: eval mode), in the
model's dtype; each layer keeps at most a tenth as many units (seeded) as images. The sample
is recorded as network rows off_axis_subset_seed and off_axis_subset_count:<class>.
"""
import itertools
import warnings
from functools import partial

import numpy as np
from scipy import stats

from selectivity.analysis.cca import SAMPLES_PER_UNIT_FOR_WARNING, pwcca_similarity, subsample_units, svcca_similarity
from selectivity.analysis.cka import linear_cka
from selectivity.data.base import DatasetSplits
from selectivity.data.subsets import stratified_subset
from selectivity.errors import SelectivityError
from selectivity.measure import unit_activations
from selectivity.model_loading import load_run_model
from selectivity.sweep.analyses import AnalysisContext, register_analysis
from selectivity.sweep.analysis_cache import cached_arrays
from selectivity.sweep.layout import SweepRun
from selectivity.setup import load_data

SAMPLE_IMAGES = 2000
SUBSET_SEED = 0
SIMILARITIES = {"svcca": svcca_similarity, "pwcca": partial(pwcca_similarity, variant="equation"),
                "pwcca_svcca": partial(pwcca_similarity, variant="svcca"), "cka": linear_cka}
SYMMETRIC = ("svcca", "cka")  # d(a, b) == d(b, a): one order suffices
CONFIDENCE = 0.95


def is_unregularized(run: SweepRun) -> bool:
    return run.alpha_label in ("0", "0.0")


def layer_activations(run: SweepRun, data: DatasetSplits, num_images: int) -> dict[str, np.ndarray]:
    """{layer: [N, U]} of the run's final model on `num_images` stratified test images, cached.

    The cache's name says what it holds (test split, stratified sample and its seed, eval pass) and it is
    keyed to the checkpoint it came from, so a redone run is recomputed; arrays keep the
    model's float dtype so CCA applies that dtype's rank tolerance.
    """
    cache = run.path / f"off_axis_activations_test_stratified{num_images}_seed{SUBSET_SEED}_eval.npz"
    return cached_arrays(cache, run.directory.checkpoint_path, lambda: _compute_activations(run, data, num_images))


def _compute_activations(run: SweepRun, data: DatasetSplits, num_images: int) -> dict[str, np.ndarray]:
    config = run.config
    model = load_run_model(run.path, config, data).model
    subset = stratified_subset(data.test, num_images, SUBSET_SEED).split
    activations = unit_activations(model, subset, data.mean, data.std, len(subset),
                                   config.evaluation.layers, config.evaluation.batch_size)
    return {name: units.float().numpy() if units.dtype.itemsize < 4 else units.numpy()
            for name, units in activations.items()}  # numpy has no bfloat16


def ratio_of_means_interval(numerator, denominator, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """mean(numerator) / mean(denominator) with a delta-method t-interval on the log scale.

    log R = log m_n - log m_d has standard error se = sqrt(s_n^2 / (n_n m_n^2) + s_d^2 /
    (n_d m_d^2)) (sample sds, the two groups taken as independent); the interval is
    R * exp(+-t se) with Welch-Satterthwaite degrees of freedom. The log scale keeps it
    positive and follows the skew of a ratio.

    Args:
        numerator, denominator: positive per-pair distances.
        confidence: two-sided level.
    Returns:
        (ratio, low, high); low and high are NaN with fewer than 2 values on a side.
    """
    numerator, denominator = np.asarray(numerator, float), np.asarray(denominator, float)
    mean_n, mean_d = numerator.mean(), denominator.mean()
    ratio = float(mean_n / mean_d)
    if min(len(numerator), len(denominator)) < 2 or mean_n <= 0:
        return ratio, float("nan"), float("nan")
    relative_n = numerator.var(ddof=1) / (len(numerator) * mean_n**2)  # var(log mean), delta method
    relative_d = denominator.var(ddof=1) / (len(denominator) * mean_d**2)
    standard_error = np.sqrt(relative_n + relative_d)
    if standard_error == 0:
        return ratio, ratio, ratio
    dof = (relative_n + relative_d) ** 2 / (relative_n**2 / (len(numerator) - 1)
                                            + relative_d**2 / (len(denominator) - 1))
    spread = np.exp(stats.t.ppf(0.5 + confidence / 2, dof) * standard_error)
    return ratio, float(ratio / spread), float(ratio * spread)


def _distance(x: np.ndarray, y: np.ndarray, method: str) -> float | None:
    """1 - similarity, or None where it is undefined (a dead layer)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the sample rule is kept by subsampling
            return 1.0 - SIMILARITIES[method](x, y)
    except (SelectivityError, np.linalg.LinAlgError):
        return None


def _pair_distances(activations, pairs, method: str, both_orders: bool) -> list[float]:
    """Distances of (first, second) run pairs; with both_orders the mean of d(a, b) and d(b, a)."""
    distances = []
    for first, second in pairs:
        orders = [(first, second), (second, first)] if both_orders else [(first, second)]
        values = [_distance(activations[a], activations[b], method) for a, b in orders]
        if all(value is not None for value in values):
            distances.append(float(np.mean(values)))
    return distances


def _no_settings(settings: dict) -> None:
    if settings:
        raise SelectivityError(f"analysis_settings.cca has key(s) {sorted(settings)}; expected none (cca has no "
                               "settings)")


@register_analysis("cca", check_settings=_no_settings)
def off_axis_control(context: AnalysisContext) -> list[dict]:
    """`<method>_ratio`, `_ratio_ci_low`, `_ratio_ci_high`, `_ratio_pairs`, `_ratio_baseline_pairs`
    layer rows per regularized condition (run_id "off_axis/<alpha_label>", seed -1: pooled
    over seeds), and a `pwcca_subsample` network row (images used) per regularized run."""
    baseline = [run for run in context.runs if is_unregularized(run)]
    conditions: dict[str, list[SweepRun]] = {}
    for run in context.runs:
        if not is_unregularized(run):
            conditions.setdefault(run.alpha_label, []).append(run)
    if len({run.config.seed for run in baseline}) < 2 or not conditions:
        warnings.warn("the off-axis control needs >= 2 alpha = 0 seeds and one other alpha; skipped")
        return []
    data = load_data(baseline[0].config)
    num_images = min(SAMPLE_IMAGES, len(data.test))
    max_units = num_images // SAMPLES_PER_UNIT_FOR_WARNING
    # one fixed unit subset per network and layer, whichever side of a pair it is on
    activations = {run.run_id: {layer: subsample_units(units, max_units, seed=0)
                                for layer, units in layer_activations(run, data, num_images).items()}
                   for run in context.runs}
    final = context.table.drop_duplicates("run_id").set_index("run_id")[["alpha", "epoch"]].to_dict("index")
    # depth order as the trainer recorded it, so these rows share one index per layer with the table's
    depth = context.table[context.table["unit"] == -1].drop_duplicates("layer").set_index("layer")["layer_index"]
    rows = []
    for layer in activations[baseline[0].run_id]:
        by_run = {run_id: layers[layer] for run_id, layers in activations.items()}
        layer_index = int(depth[layer]) if layer in depth.index else -1
        rows += _layer_rows(by_run, baseline, conditions, final, layer, layer_index)
    for runs in conditions.values():
        rows += [_run_row(run, final[run.run_id], "pwcca_subsample", float(num_images)) for run in runs]
    sample = stratified_subset(data.test, num_images, SUBSET_SEED)
    for run in context.runs:
        rows += [_run_row(run, final[run.run_id], metric, value) for metric, value in sample.metric_values("off_axis")]
    return rows


def _layer_rows(by_run: dict, baseline: list[SweepRun], conditions: dict[str, list[SweepRun]], final: dict,
                layer: str, layer_index: int) -> list[dict]:
    """Every method's ratio rows of one layer: one denominator, one numerator per condition."""
    baseline_pairs = [(a.run_id, b.run_id) for a, b in itertools.combinations(baseline, 2)
                      if a.config.seed != b.config.seed]
    rows = []
    for method in SIMILARITIES:
        denominator = _pair_distances(by_run, baseline_pairs, method, both_orders=method not in SYMMETRIC)
        if not denominator or np.mean(denominator) <= 0:
            continue
        for runs in conditions.values():
            pairs = [(run.run_id, b.run_id) for run in runs for b in baseline if b.config.seed != run.config.seed]
            numerator = _pair_distances(by_run, pairs, method, both_orders=False)
            if numerator:
                values = dict(zip(("", "_ci_low", "_ci_high"), ratio_of_means_interval(numerator, denominator)))
                values |= {"_pairs": len(numerator), "_baseline_pairs": len(denominator)}
                rows += [_condition_row(runs, final, layer, layer_index, f"{method}_ratio{suffix}", value)
                         for suffix, value in values.items()]
    return rows


def _condition_row(runs: list[SweepRun], final: dict, layer: str, layer_index: int, metric: str, value) -> dict:
    """A row pooled over a condition's seeds: alpha and epoch of its runs' final evaluations."""
    first = runs[0]
    return {
        "run_id": f"off_axis/{first.alpha_label}", "model": first.config.model.name,
        "dataset": first.config.data.dataset, "alpha": float(final[first.run_id]["alpha"]),
        "alpha_label": first.alpha_label, "seed": -1, "epoch": max(int(final[run.run_id]["epoch"]) for run in runs),
        "layer": layer, "layer_index": layer_index, "unit": -1, "metric": metric, "value": float(value),
    }


def _run_row(run: SweepRun, record: dict, metric: str, value: float) -> dict:
    return {
        "run_id": run.run_id, "model": run.config.model.name, "dataset": run.config.data.dataset,
        "alpha": float(record["alpha"]), "alpha_label": run.alpha_label, "seed": run.config.seed,
        "epoch": int(record["epoch"]), "layer": "network", "layer_index": -1, "unit": -1,
        "metric": metric, "value": value,
    }
