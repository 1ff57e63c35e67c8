"""write_report: a sweep's tidy table -> figures (PNG + SVG), CSV tables, index.html, report.md.

Reads the table (and, for U5, the image grids the top_units analysis wrote beside it);
never trains or runs a model. Figures whose rows are absent (no unit
rows, no CCA rows) are skipped with a note on the page instead of failing.
"""
import shutil
from pathlib import Path

import pandas as pd

from selectivity.atomic import check_writable, write_text
from selectivity.errors import SelectivityError
from selectivity.report import figures_alpha, figures_toolkit, figures_units
from selectivity.report.claims_summary import epochs_phrase, schedule_words, summary_rows as claims_rows
from selectivity.report.comparison import DEFAULT_MARGIN_POINTS, check_margin
from selectivity.report.figures_robustness import robustness_figures
from selectivity.report.headline import comparison_table, headline_table
from selectivity.report.off_axis_tables import METHOD_LABELS, off_axis_by_layer, off_axis_rows, off_axis_summary
from selectivity.report.page import (FigureEntry, PageContent, comparison_rows, headline_rows, render_html,
                                     render_markdown, summary_rows)
from selectivity.report.provenance import PROVENANCE_FILE, load_provenance, sweep_factors
from selectivity.report.robustness_tables import robustness_tables
from selectivity.report.style import seeds_phrase
from selectivity.report.tables import (condition_summary, layer_summary, load_results, prepare_table,
                                       run_network_table, unit_selectivity)
from selectivity.report.verdict_history import HISTORY_FILE, update_history

CI_NOTE = "Error bars and ± are 95% confidence intervals of the mean across seeds (Student t, n-1 dof)."


def _comparison_note(margin: float) -> str:
    return (f"Difference of mean test accuracy from alpha = 0 (alpha minus baseline), with its Welch 95% CI. "
            f"Verdict: 'no loss' when the CI's lower bound is above -{margin:g} points (the margin), 'loss' when "
            f"its upper bound is below -{margin:g}, else 'undetermined'. The verdict words are Holm-corrected over "
            "every comparison in this table (family-wise error 0.05; the interval shown is the uncorrected one, "
            "and a verdict the correction removes says what it was uncorrected). An undetermined one gives the "
            "seeds per condition for a 50% chance (the observed difference just decided) and for an 80% chance "
            "to decide it at Bonferroni's level, with the verdict it would most likely reach.")


def _cca_note(table: pd.DataFrame, notes: dict) -> str | None:
    """How the CCA inputs were subsampled: notes['pwcca_subsample'] or the metric rows."""
    if notes.get("pwcca_subsample"):
        return f"Subsampling: {notes['pwcca_subsample']}"
    values = table.loc[table["metric"] == "pwcca_subsample", "value"].dropna().unique()
    if len(values):
        images = ", ".join(f"{v:g}" for v in sorted(values))
        return f"CCA on {images} test images, at most a tenth as many units per layer"
    return None


def _unit_figures(table, layers, subtitle, out_dir) -> list[FigureEntry]:
    units = unit_selectivity(table)
    missing_units = "the table has no per-unit `si` rows (unit >= 0)."
    entries = [
        FigureEntry("1a. Per-unit SI distribution, pooled", "Every unit's test-set SI, pooled over layers and "
                    "seeds, one box per alpha (quartiles, min-max whiskers, white dot = mean).",
                    *figures_units.si_distribution_pooled(units, subtitle, out_dir))
        if len(units) else FigureEntry("1a. Per-unit SI distribution, pooled", "", skipped=missing_units),
        FigureEntry("1b. Per-unit SI distribution, per layer", "Cumulative distribution of unit SI in each "
                    "layer (pooled over seeds), one curve per alpha; dashed = alpha schedule.",
                    *figures_units.si_distribution_by_layer(units, subtitle, out_dir))
        if len(units) else FigureEntry("1b. Per-unit SI distribution, per layer", "", skipped=missing_units)]
    if len(layers) and "mean_si_mean" in layers:
        paths = figures_units.si_by_depth(layers, subtitle, out_dir)
        entries.append(FigureEntry("3. Layer mean SI vs depth", "Each layer's mean unit SI (mean over seeds; "
                                   "CIs in summary_by_layer.csv), one line per alpha.", *paths))
    else:
        entries.append(FigureEntry("3. Layer mean SI vs depth", "", skipped="no per-layer mean_si rows."))
    return entries


def _network_figures(runs, conditions, subtitle, out_dir) -> list[FigureEntry]:
    entries = [FigureEntry(
        "2. Mean SI and test accuracy vs alpha", "Test-set mean SI (mean over units, then layers) and test "
        "accuracy against alpha, and accuracy against mean SI. " + CI_NOTE,
        *figures_alpha.si_and_accuracy_vs_alpha(runs, conditions, subtitle, out_dir))]
    if runs["dead_fraction"].notna().any():
        entries.append(FigureEntry("4. Dead-unit fraction vs alpha", "Share of units that never fire on the "
                                   "test set (their SI is 0 by definition). " + CI_NOTE,
                                   *figures_alpha.dead_fraction_vs_alpha(runs, conditions, subtitle, out_dir)))
    else:
        entries.append(FigureEntry("4. Dead-unit fraction vs alpha", "", skipped="no network dead_fraction rows."))
    return entries


def _cca_figure(table, notes, subtitle, out_dir) -> tuple[FigureEntry, pd.DataFrame]:
    heading = "5. Off-axis control: representation distance ratio vs alpha"
    summary = off_axis_summary(table)
    if summary.empty:
        return FigureEntry(heading, "", skipped="the table has no pwcca_ratio or other off-axis ratio rows "
                           "(the CCA analysis was not run for this sweep)."), pd.DataFrame()
    paths = figures_alpha.cca_ratio_vs_alpha(summary, METHOD_LABELS, subtitle, _cca_note(table, notes), out_dir)
    by_layer = off_axis_by_layer(summary)
    caption = ("Per layer and similarity method (SVCCA, PWCCA by the paper's equation and as google/svcca's code "
               "computes it, linear CKA): mean distance (1 - similarity) between a regularized network and an "
               "alpha=0 network of another seed, divided by the mean distance between alpha=0 networks of "
               "different seeds, pooled over seeds, with a 95% CI (delta method on the log ratio, Welch t; "
               "docs/cca.md). Near 1: the layer differs no more than a retrained baseline does, i.e. selectivity "
               "was rotated off the unit axes rather than removed. The table states 'not merely rotated' for a "
               "layer only where every method's CI lies above 1, and says where the methods disagree.")
    return FigureEntry(heading, caption, *paths, table=off_axis_rows(by_layer)), by_layer


TOOLKIT_FIGURES = (  # drawn only when the sweep ran the analysis (docs/unit_toolkit.md)
    ("U1. Units above chance vs depth", figures_toolkit.above_chance_by_depth,
     "Per layer, the fraction of units whose metric beats its label-shuffle null by z > 1.645 (analysis "
     "unit_nulls), mean over seeds, one line per alpha."),
    ("U2. Unit ablation curves", figures_toolkit.ablation_curves,
     "Test accuracy as a growing fraction of a layer's units is clamped (analysis ablation), per ablation "
     "order, mean over ablated layers and seeds; right: each order's area under the curve vs alpha."),
    ("U3. Selectivity over training", figures_toolkit.si_over_training,
     "Network mean SI and test accuracy at every evaluation (analysis training_dynamics), mean over seeds."),
    ("U4. What the most and least selective units respond to", figures_toolkit.top_unit_classes,
     "Share of each unit's top-k test inputs that belong to its preferred class (analysis top_units); the "
     "image grids are in the sweep folder's analyses/top_units/."),
)


def _toolkit_figures(table, subtitle, out_dir) -> list[FigureEntry]:
    entries = []
    for heading, draw, caption in TOOLKIT_FIGURES:
        paths = draw(table, subtitle, out_dir)
        if paths:
            entries.append(FigureEntry(heading, caption, *paths))
    return entries


def top_unit_gallery(sweep_dir: Path, out_dir: Path) -> list[FigureEntry]:
    """U5: the image grids the `top_units` analysis wrote beside the table, copied into the report.

    The grids are files, not rows, so they come from `<sweep>/analyses/top_units/` (named
    `<alpha>_seed<S>_<layer>_<most|least>_unit<u>.png`); none there, no entries.
    """
    source = Path(sweep_dir) / "analyses" / "top_units"
    entries = []
    for png in sorted(source.glob("*.png")) if source.is_dir() else []:
        copy = Path(out_dir) / f"figU5_{png.name}"
        shutil.copyfile(png, copy)
        alpha, _, rest = png.stem.partition("_seed")
        heading = f"U5. Top and bottom inputs: alpha {alpha}, seed {rest.replace('_', ' ', 1).replace('_', ', ')}"
        entries.append(FigureEntry(heading, "The k test images with the highest (top rows) and lowest (bottom rows) "
                                            "response of the unit, each with its class.", png=copy))
    return entries


def summary_tables(table: pd.DataFrame, margin: float = DEFAULT_MARGIN_POINTS) -> dict[str, pd.DataFrame]:
    """The report's per-run and summary CSV tables, by file name, from a prepared tidy table.

    runs.csv (one row per run), summary_by_alpha.csv, headline.csv, accuracy_vs_baseline.csv
    and summary_by_layer.csv, then those of the robustness analyses and alpha schedules whose
    rows exist (corruptions_by_alpha.csv, attacks_by_alpha.csv, dimensionality_by_layer.csv,
    schedules.csv): what a published page quotes and is rebuilt from.
    """
    runs = run_network_table(table)
    conditions = condition_summary(runs)
    return {"runs.csv": runs, "summary_by_alpha.csv": conditions, "headline.csv": headline_table(runs, conditions, margin),
            "accuracy_vs_baseline.csv": comparison_table(runs, conditions, margin),
            "summary_by_layer.csv": layer_summary(table), **robustness_tables(table, runs, conditions)}


def _default_title(model: str, dataset: str, factors: dict) -> str:
    """'<model> on <dataset>: class selectivity sweep', naming a schedule shorter than the paper's."""
    short = schedule_words(model, dataset, factors)
    return f"{model} on {dataset}: class selectivity sweep" + (
        f" on {short}: {epochs_phrase(model, dataset, factors)}" if short else "")


def write_report(table: pd.DataFrame, out_dir: Path, title: str | None = None,
                 notes: dict | None = None, margin: float = DEFAULT_MARGIN_POINTS,
                 extra_figures=None, provenance: pd.DataFrame | None = None,
                 look: tuple[str, str] | None = None) -> Path:
    """Write the sweep report (figures, CSV tables, index.html, report.md) into out_dir.

    Args:
        table: the sweep's tidy results table (see docs/report.md).
        out_dir: output folder, created if needed; existing report files are overwritten.
        title: page title; default "<model> on <dataset>: class selectivity sweep".
        notes: optional extra facts; key "pwcca_subsample" describes CCA subsampling.
        margin: test-accuracy points a loss may reach and still count as "no loss" (>= 0).
        extra_figures: optional callable out_dir -> [FigureEntry] for figures drawn from files
            beside the table (the top-k grids), appended last.
        provenance: the sweep's provenance.csv (report.provenance), for the precision and machine
            of the opening table; None: they read "not recorded".
        look: (commit, date) this report's verdicts are recorded with in out_dir's
            verdict_history.csv (default: this checkout's commit and the time now, UTC).
    Returns:
        The path of index.html.
    """
    margin = check_margin(margin)
    table, notes, out_dir = prepare_table(table), notes or {}, Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model, dataset = table["model"].iloc[0], table["dataset"].iloc[0]
    summaries = summary_tables(table, margin)
    runs, conditions = summaries["runs.csv"], summaries["summary_by_alpha.csv"]
    headline, compared = summaries["headline.csv"], summaries["accuracy_vs_baseline.csv"]
    # appended to, never rewritten: a verdict is read with the seeds (and looks) it was made with
    history = update_history(out_dir, compared, *(look or (None, None)))
    subtitle = f"{model} on {dataset}, {seeds_phrase(conditions['n_seeds'])}"
    figures = (_network_figures(runs, conditions, subtitle, out_dir)
               + _unit_figures(table, summaries["summary_by_layer.csv"], subtitle, out_dir))
    cca_entry, cca = _cca_figure(table, notes, subtitle, out_dir)
    # corruptions, attacks, dimensionality, schedules: only the sections whose rows exist
    robustness_entries = robustness_figures(runs, conditions, summaries, subtitle, out_dir)
    figures = sorted(figures + [cca_entry] + robustness_entries, key=lambda entry: entry.heading)
    figures += _toolkit_figures(table, subtitle, out_dir)
    figures += extra_figures(out_dir) if extra_figures else []
    csv_tables = {**summaries, "cca_by_layer.csv": cca, HISTORY_FILE: history,
                  PROVENANCE_FILE: provenance if provenance is not None else pd.DataFrame()}
    for name, frame in csv_tables.items():
        if len(frame):
            write_text(out_dir / name, frame.to_csv(index=False))
    page_notes = [] if (conditions["alpha"] == 0).any() else ["No alpha=0 runs: headline numbers need the baseline."]
    if conditions["n_seeds"].max() < 2:
        page_notes.append("One seed per alpha: points are shown without confidence intervals.")
    factors = sweep_factors(table, provenance)
    content = PageContent(
        title=title or _default_title(model, dataset, factors),
        claims=claims_rows(compared, model, dataset, factors, history),
        facts=[f"model: {model}; dataset: {dataset}", f"{len(runs)} runs, {len(conditions)} alpha conditions, "
               f"{seeds_phrase(conditions['n_seeds'])}", CI_NOTE,
               "Tables: " + ", ".join(name for name, frame in csv_tables.items() if len(frame))],
        headline=headline_rows(headline), summary=summary_rows(conditions),
        comparison=comparison_rows(compared, history),
        comparison_note=_comparison_note(margin), figures=figures, notes=page_notes)
    write_text(out_dir / "report.md", render_markdown(content))
    write_text(out_dir / "index.html", render_html(content))
    return out_dir / "index.html"


def report_sweep(sweep_dir: Path, out_dir: Path | None = None, margin: float = DEFAULT_MARGIN_POINTS) -> Path:
    """`selectivity report SWEEP`: read SWEEP's results table, write SWEEP/report/ (or out_dir).

    Args:
        sweep_dir: a sweep folder, or its results .parquet / .csv file.
        out_dir: output folder (default: the sweep folder's report/).
        margin: test-accuracy points a loss may reach and still count as "no loss".
    Returns:
        The path of index.html.
    """
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.exists():
        raise SelectivityError(f"sweep {sweep_dir} does not exist: expected a sweep folder or results file")
    base = sweep_dir if sweep_dir.is_dir() else sweep_dir.parent
    out = check_writable(Path(out_dir) if out_dir else base / "report")  # before any figure is drawn
    return write_report(load_results(sweep_dir), out, margin=margin,
                        extra_figures=lambda out_dir: top_unit_gallery(base, out_dir),
                        provenance=load_provenance(sweep_dir))
