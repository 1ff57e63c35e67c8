"""Post-sweep analyses `corruptions`, `attacks` and `dimensionality`, also runnable on one run folder.

In a sweep spec:

    analyses = ["corruptions", "attacks", "dimensionality"]
    [analysis_settings.attacks]
    images = 1000
    eps_255 = [0, 0.25, 0.5, 1, 2]

Each evaluates every done run's final model on `images` test images, a class-stratified
sample drawn with `subset_seed` (datasets are ordered by class, so never the first N), in eval
mode, fp32, on the CPU, and returns tidy rows (docs/robustness.md lists metrics and settings):

    corruptions     network rows corruption_accuracy:<corruption>:<severity>, mean_corruption_accuracy,
                    clean_subset_accuracy
    attacks         network rows attack_accuracy:<fgsm|pgd>:<eps x 255>
    dimensionality  layer rows dim_pcs, dim_pr (and perturbation_dim_pcs, perturbation_dim_pr with
                    a perturbation); a network row dim_threshold
    every analysis  network rows <analysis>_subset_seed and <analysis>_subset_count:<class> (the
                    sample it used)
"""
import hashlib
import json
import math
import sys
import time
from functools import partial
from pathlib import Path

import pandas as pd
import torch

from selectivity.analysis.corruptions import CORRUPTIONS
from selectivity.atomic import write_json
from selectivity.errors import SelectivityError
from selectivity.model_loading import load_run_model, read_run_config
from selectivity.sweep.analyses import AnalysisContext, register_analysis
from selectivity.sweep.robustness import (ATTACKS, ModelUnderTest, attack_accuracies, corruption_accuracies,
                                          layer_dimensionalities, test_subset)
from selectivity.setup import load_data

DEFAULTS = {
    "corruptions": {"images": 1000, "corruptions": list(CORRUPTIONS), "severities": [1, 2, 3, 4, 5],
                    "folder": "", "seed": 0, "subset_seed": 0},
    "attacks": {"images": 1000, "attacks": list(ATTACKS), "eps_255": [0, 0.25, 0.5, 1, 2], "steps": 10,
                "step_size_255": 0.0, "random_start": False, "seed": 0, "subset_seed": 0},
    "dimensionality": {"images": 2000, "threshold": 0.95, "perturbation": "gaussian_noise:3", "seed": 0,
                       "subset_seed": 0},
}


def resolve_settings(analysis: str, settings: dict | None) -> dict:
    """The analysis's DEFAULTS updated by `settings`; an unknown key is a one-line error."""
    settings = dict(settings or {})
    unknown = sorted(set(settings) - set(DEFAULTS[analysis]))
    if unknown:
        raise SelectivityError(f"analysis_settings.{analysis} has unknown key(s) {unknown}; valid keys are: "
                               f"{', '.join(DEFAULTS[analysis])}")
    for key, value in settings.items():
        default = DEFAULTS[analysis][key]
        expected = (int, float) if isinstance(default, float) else type(default)
        if isinstance(value, bool) != isinstance(default, bool) or not isinstance(value, expected):
            raise SelectivityError(f"analysis_settings.{analysis}.{key} = {value!r}; expected a "
                                   f"{type(default).__name__} like {default!r}")
    resolved = {**DEFAULTS[analysis], **settings}
    _check_values(analysis, resolved)
    return resolved


def _check_values(analysis: str, settings: dict) -> None:
    """Ranges, before any model is loaded: an empty grid or a share outside (0, 1] has no answer."""
    where = f"analysis_settings.{analysis}"
    if settings["images"] < 1:
        raise SelectivityError(f"{where}.images = {settings['images']}; expected at least 1 test image")
    if not 0 <= settings["subset_seed"] < 2**64:
        raise SelectivityError(f"{where}.subset_seed = {settings['subset_seed']}; expected an integer in [0, 2**64)")
    for key in ("corruptions", "severities", "attacks", "eps_255"):
        if key in settings and not settings[key]:
            raise SelectivityError(f"{where}.{key} is empty; expected at least one value, "
                                   f"e.g. {DEFAULTS[analysis][key]}")
    if analysis == "attacks" and settings["steps"] < 1:
        raise SelectivityError(f"{where}.steps = {settings['steps']}; expected at least 1 PGD step")
    if analysis == "dimensionality" and not 0 < settings["threshold"] <= 1:
        raise SelectivityError(f"{where}.threshold = {settings['threshold']}; expected a share of variance in (0, 1]")


def _measure_run(analysis: str, target: ModelUnderTest, data, dataset: str, settings: dict) -> list[tuple]:
    """(layer, metric, value) rows of one model for one analysis, and the sample it was measured on."""
    subset = test_subset(data.test, int(settings["images"]), int(settings["subset_seed"]))
    return _measure_subset(analysis, target, subset.split, subset.indices, dataset, settings) + [
        ("network", metric, value) for metric, value in subset.metric_values(analysis)]


def _measure_subset(analysis: str, target: ModelUnderTest, split, indices, dataset: str, settings: dict) -> list[tuple]:
    if analysis == "corruptions":
        accuracies = corruption_accuracies(target, split, dataset, tuple(settings["corruptions"]),
                                           tuple(settings["severities"]), str(settings["folder"]),
                                           int(settings["seed"]), indices)
        rows = [("network", f"corruption_accuracy:{name}:{severity}", value)
                for (name, severity), value in accuracies.items()]
        rows.append(("network", "mean_corruption_accuracy", sum(accuracies.values()) / len(accuracies)))
        return rows + [("network", "clean_subset_accuracy", target.measure(split).accuracy)]
    if analysis == "attacks":
        eps_grid = tuple(float(eps) / 255 for eps in settings["eps_255"])
        step_size = float(settings["step_size_255"]) / 255 or None
        accuracies = attack_accuracies(target, split, tuple(settings["attacks"]), eps_grid, int(settings["steps"]),
                                       step_size, bool(settings["random_start"]), int(settings["seed"]))
        return [("network", f"attack_accuracy:{name}:{eps * 255:g}", value) for (name, eps), value in accuracies.items()]
    threshold = float(settings["threshold"])
    layers = layer_dimensionalities(target, split, threshold, str(settings["perturbation"]), dataset,
                                    int(settings["seed"]))
    rows = [(layer, metric, value) for layer, values in layers.items() for metric, value in values.items()
            if not math.isnan(value)]  # a dead layer has no dimensionality
    return rows + [("network", "dim_threshold", threshold)]


def analyse_run(run_dir: str | Path, analysis: str, settings: dict | None = None) -> pd.DataFrame:
    """One run folder's rows for `analysis` ("corruptions", "attacks", "dimensionality").

    Args:
        run_dir: a finished (or checkpointed) run folder written by the trainer.
        analysis: which analysis.
        settings: overrides of DEFAULTS[analysis].
    Returns:
        A DataFrame with columns run_dir, seed, layer, metric, value (layer "network" for network rows).
    """
    if analysis not in DEFAULTS:
        raise SelectivityError(f"unknown analysis {analysis!r}; expected one of {', '.join(DEFAULTS)}")
    settings = resolve_settings(analysis, settings)
    config = read_run_config(run_dir)
    data = load_data(config)
    rows = _measure_run(analysis, _target(run_dir, config, data), data, config.data.dataset, settings)
    return pd.DataFrame([{"run_dir": str(run_dir), "seed": config.seed, "layer": layer, "metric": metric,
                          "value": value} for layer, metric, value in rows])


def _target(run_dir, config, data) -> ModelUnderTest:
    model = load_run_model(run_dir, config, data).model.float().eval()
    return ModelUnderTest(model, data.num_classes, data.mean, data.std, config.evaluation.layers)


def _sweep_rows(analysis: str, context: AnalysisContext) -> list[dict]:
    """Rows of every done run, with the table's columns (alpha and epoch of its final evaluation)."""
    settings = resolve_settings(analysis, context.settings)
    final = context.table.drop_duplicates("run_id").set_index("run_id")[["alpha", "epoch"]].to_dict("index")
    depth = context.table[context.table["unit"] == -1].drop_duplicates("layer").set_index("layer")["layer_index"]
    datasets, rows = {}, []
    for number, run in enumerate(context.runs, 1):
        config = run.config
        if config.data.dataset not in datasets:  # a sweep's runs share one dataset: load it once
            datasets[config.data.dataset] = load_data(config)
        data = datasets[config.data.dataset]
        measured, seconds = _cached_rows(run.path, analysis, settings, lambda: _measure_run(
            analysis, _target(run.path, config, data), data, config.data.dataset, settings))
        # one line per run: an analysis of a whole sweep takes minutes to hours on a CPU
        print(f"analysis {analysis} [{number}/{len(context.runs)}] {run.run_id} alpha={run.alpha_label} "
              f"seed={config.seed}: " + (f"{seconds:.0f} s" if seconds is not None else "kept from before"),
              file=sys.stderr, flush=True)
        for layer, metric, value in measured:
            rows.append({
                "run_id": run.run_id, "model": config.model.name, "dataset": config.data.dataset,
                "alpha": float(final[run.run_id]["alpha"]), "alpha_label": run.alpha_label, "seed": config.seed,
                "epoch": int(final[run.run_id]["epoch"]), "layer": layer,
                "layer_index": int(depth.get(layer, -1)), "unit": -1, "metric": metric, "value": float(value)})
    return rows


def _cached_rows(run_dir: Path, analysis: str, settings: dict, measure) -> tuple[list, float | None]:
    """A run's rows for these settings, kept in the run folder: rebuilding a sweep's results does not
    evaluate its runs again (the runs are done, so their models no longer change).

    Returns (rows, seconds the measurement took now, or None when the rows were kept from before);
    the file records the seconds too (the cost of an analysis, for docs/benchmarks.md).
    """
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    path = Path(run_dir) / f"analysis_{analysis}_{key}.json"
    if path.is_file():
        return [tuple(row) for row in json.loads(path.read_text())["rows"]], None
    start = time.perf_counter()
    rows = measure()
    seconds = time.perf_counter() - start
    write_json(path, {"analysis": analysis, "settings": settings, "rows": [list(row) for row in rows],
                      "seconds": seconds, "threads": torch.get_num_threads()})
    return rows, seconds


@register_analysis("corruptions", check_settings=partial(resolve_settings, "corruptions"))
def corruptions_analysis(context: AnalysisContext) -> list[dict]:
    """Accuracy under common corruptions at 5 severities, per done run."""
    return _sweep_rows("corruptions", context)


@register_analysis("attacks", check_settings=partial(resolve_settings, "attacks"))
def attacks_analysis(context: AnalysisContext) -> list[dict]:
    """Accuracy under white-box FGSM and PGD over an eps grid, per done run."""
    return _sweep_rows("attacks", context)


@register_analysis("dimensionality", check_settings=partial(resolve_settings, "dimensionality"))
def dimensionality_analysis(context: AnalysisContext) -> list[dict]:
    """Per-layer dimensionality of the test activations and of a perturbation's change, per done run."""
    return _sweep_rows("dimensionality", context)
