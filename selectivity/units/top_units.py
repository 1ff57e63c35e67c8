"""Top-k grids of each layer's most and least selective live unit, for one run (the first seed) per alpha.

Grids go to <sweep>/analyses/top_units/<alpha_label>_seed<S>_<layer>_<most|least>_unit<u>.png; the
row `topk_preferred_fraction` (unit row) is the fraction of the top k test inputs that belong
to the unit's preferred class (1 for a unit that answers its class first; chance is about 1/K).
"""
from pathlib import Path

import numpy as np

from selectivity.data.subsets import stratified_subset
from selectivity.units.sweep_rows import RunRows, run_model
from selectivity.units.topk import unit_responses, write_topk_grid


def first_seed_per_alpha(runs: list) -> list:
    """One run per alpha_label, the smallest seed, in the given order of labels."""
    chosen = {}
    for run in runs:
        best = chosen.get(run.alpha_label)
        if best is None or run.config.seed < best.config.seed:
            chosen[run.alpha_label] = run
    return list(chosen.values())


def extreme_units(units) -> dict[str, list[tuple[str, int]]]:
    """{layer: [("most", unit), ("least", unit)]} among a units table's live units, by SI (ties: lowest index)."""
    chosen = {}
    for layer, group in units.loc[~units["dead"].astype(bool)].groupby("layer", sort=False):
        most = group.sort_values(["si", "unit"], ascending=[False, True])["unit"].iloc[0]
        least = group.sort_values(["si", "unit"])["unit"].iloc[0]
        chosen[layer] = [("most", int(most)), ("least", int(least))]
    return chosen


def top_unit_rows(context, k: int, limit: int | None) -> list[dict]:
    """Write the grids and return the topk_preferred_fraction rows (see the module docstring)."""
    out_dir = Path(context.folder.path) / "analyses" / "top_units"
    rows = []
    for run in first_seed_per_alpha(context.runs):
        model, data, device = run_model(run)
        split = data.test if limit is None else stratified_subset(data.test, limit, seed=0).split
        units = run.directory.read_units()
        preferred = units.set_index(["layer", "unit"])["preferred_class"]
        build = RunRows(run, context.table)
        for layer, picks in extreme_units(units).items():
            responses = unit_responses(model, split, data.mean, data.std, layer, [u for _, u in picks],
                                       device=device).numpy()  # [N, 2]
            for column, (kind, unit) in enumerate(picks):
                name = f"{run.alpha_label}_seed{run.config.seed}_{layer}_{kind}_unit{unit}.png"
                title = f"alpha {run.alpha_label} seed {run.config.seed} {layer} unit {unit} ({kind} selective)"
                top, _ = write_topk_grid(out_dir / name, split, responses[:, column], min(k, len(split)),
                                         data.class_names, title)
                fraction = np.mean(split.labels[top].numpy() == preferred[(layer, unit)])
                rows.append(build.row(layer, "topk_preferred_fraction", fraction, unit=unit))
    return rows
