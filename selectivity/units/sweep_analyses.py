"""The unit toolkit as post-sweep analyses: `analyses = ["unit_nulls", "ablation", "training_dynamics",
"top_units"]`, each configured by `[analysis_settings.<name>]` (docs/unit_toolkit.md lists the keys).

Rows (layer rows have unit -1; see docs/unit_toolkit.md for every metric name):
    unit_nulls         layer: <metric>_above_chance, mean_auc, mean_mutual_information, mean_lifetime_sparseness;
                       unit: auc, mutual_information, lifetime_sparseness, si_p
    ablation           layer: ablation_<order>@<fraction>, ablation_<order>_area (+ <run>/ablation.csv)
    training_dynamics  every evaluation epoch: epoch_mean_si, epoch_test_accuracy (network), epoch_mean_si
                       (layer), epoch_preferred_class_agreement (layer, with evaluation.save_units);
                       final epoch: preferred_class_consistency (layer)
    top_units          unit: topk_preferred_fraction, for the most and least selective live unit per layer
                       of each alpha's first seed (+ <sweep>/analyses/top_units/*.png)
"""
from selectivity.atomic import write_table
from selectivity.errors import SelectivityError
from selectivity.measure import measure_model
from selectivity.metrics.shuffles import ShuffleSettings
from selectivity.sweep.analyses import AnalysisContext, register_analysis
from selectivity.units.ablation_run import AblationSettings, model_ablation_curves
from selectivity.units.ablation_summary import tidy_ablation_rows
from selectivity.units.dynamics import dynamics_rows
from selectivity.units.sweep_rows import RunRows, run_model
from selectivity.units.top_units import top_unit_rows

UNIT_NULL_COLUMNS = ("auc", "mutual_information", "lifetime_sparseness", "si_p")
LAYER_MEANS = ("mean_auc", "mean_mutual_information", "mean_lifetime_sparseness")


def _settings(settings: dict, name: str, allowed: set[str]) -> dict:
    unknown = sorted(set(settings) - allowed)
    if unknown:
        raise SelectivityError(f"unknown analysis_settings.{name} keys {unknown}; expected some of {sorted(allowed)}")
    return dict(settings)


def _shuffle_settings(settings: dict) -> ShuffleSettings:
    return ShuffleSettings(**_settings(settings, "unit_nulls", {"shuffles", "bins", "seed"}))


def _top_units_settings(settings: dict) -> tuple[int, int | None]:
    """(k, limit): k inputs a side, on `limit` class-stratified test inputs (seed 0; None: all)."""
    settings = _settings(settings, "top_units", {"k", "limit"})
    k, limit = settings.get("k", 8), settings.get("limit")
    for key, value in (("k", k), ("limit", limit)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise SelectivityError(f"analysis_settings.top_units.{key} = {value!r}; expected an integer >= 1")
    return k, limit


@register_analysis("unit_nulls", check_settings=_shuffle_settings)
def unit_nulls(context: AnalysisContext) -> list[dict]:
    """Each run's test-set AUC, MI, lifetime sparseness and label-shuffle nulls (settings: shuffles, bins, seed)."""
    settings = _shuffle_settings(context.settings)
    rows = []
    for run in context.runs:
        model, data, device = run_model(run)
        config = run.config
        measurement = measure_model(model, data.test, data.num_classes, data.mean, data.std,
                                    layers=config.evaluation.layers, batch_size=config.evaluation.batch_size,
                                    device=device, shuffles=settings)
        build = RunRows(run, context.table)
        for layer_row in measurement.layers.to_dict("records"):
            rows += [build.row(layer_row["layer"], metric, value) for metric, value in layer_row.items()
                     if metric.endswith("_above_chance") or metric in LAYER_MEANS]
        columns = [column for column in UNIT_NULL_COLUMNS if column in measurement.units]  # si_p needs shuffles
        for unit_row in measurement.units[["layer", "unit", *columns]].to_dict("records"):
            rows += [build.row(unit_row["layer"], column, unit_row[column], unit=unit_row["unit"]) for column in columns]
    return rows


@register_analysis("ablation", check_settings=AblationSettings.from_dict)
def ablation(context: AnalysisContext) -> list[dict]:
    """Ablation curves of every run (settings: the AblationSettings fields); writes <run>/ablation.csv."""
    settings = AblationSettings.from_dict(context.settings)
    rows = []
    for run in context.runs:
        model, data, device = run_model(run)
        curves = model_ablation_curves(model, data, data.mean, data.std, run.config.evaluation.layers, settings, device)
        write_table(run.path / "ablation.csv", curves)
        build = RunRows(run, context.table)
        rows += [build.row(row.layer, row.metric, row.value) for row in tidy_ablation_rows(curves).itertuples()]
    return rows


def _dynamics_settings(settings: dict) -> dict:
    return _settings(settings, "training_dynamics", set())


@register_analysis("training_dynamics", check_settings=_dynamics_settings)
def training_dynamics(context: AnalysisContext) -> list[dict]:
    """SI and accuracy at every evaluation, and preferred-class consistency across epochs (no settings)."""
    _dynamics_settings(context.settings)
    return [row for run in context.runs for row in dynamics_rows(run, RunRows(run, context.table))]


@register_analysis("top_units", check_settings=_top_units_settings)
def top_units(context: AnalysisContext) -> list[dict]:
    """Top-k grids of each layer's most and least selective unit, one run per alpha (settings: k, limit)."""
    k, limit = _top_units_settings(context.settings)
    return top_unit_rows(context, k=k, limit=limit)

