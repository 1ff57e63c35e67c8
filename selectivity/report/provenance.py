"""What a sweep's numbers were made with: epochs, training recipe, precision, machine.

The results table records each run's final `epoch`; the rest comes from `provenance.csv`, one
row per run, which `selectivity sweep` writes beside results.csv (columns PROVENANCE_COLUMNS,
any of them empty when a run did not record it). A factor neither records reads as None, "not
recorded": a comparison of two sweeps cannot show that they agree in it.
"""
from pathlib import Path

import pandas as pd

from selectivity.errors import SelectivityError

PROVENANCE_FILE = "provenance.csv"
RECIPE_COLUMNS = ("batch_size", "lr", "momentum", "nesterov", "weight_decay", "schedule", "warmup_epochs")
PROVENANCE_COLUMNS = ("run_id", "epochs", *RECIPE_COLUMNS, "precision", "device", "cpu", "started")
FACTORS = ("epochs", "recipe", "precision", "machine")  # what two sweeps must share to be compared head to head


def load_provenance(results_path: str | Path) -> pd.DataFrame | None:
    """provenance.csv beside a results table (or in a sweep folder); None when there is none."""
    path = Path(results_path)
    folder = path if path.is_dir() else path.parent
    candidate = folder / PROVENANCE_FILE
    if not candidate.is_file():
        return None
    try:
        frame = pd.read_csv(candidate, dtype={"run_id": str, "precision": str, "device": str, "cpu": str,
                                              "schedule": str, "started": str})
    except Exception as error:  # pandas and the OS raise their own types for a damaged file
        raise SelectivityError(f"{candidate} cannot be read ({type(error).__name__}); expected the "
                               "provenance.csv `selectivity sweep` writes") from None
    if "run_id" not in frame.columns:
        raise SelectivityError(f"{candidate} has no run_id column: expected columns {list(PROVENANCE_COLUMNS)}")
    return frame


def final_epochs(table: pd.DataFrame) -> list[int]:
    """The distinct final epochs of the table's runs (the network test_accuracy rows), sorted."""
    network = table[(table["layer"] == "network") & (table["unit"] == -1) & (table["metric"] == "test_accuracy")]
    return sorted(int(epoch) for epoch in network.groupby("run_id")["epoch"].max().unique())


def _values(provenance: pd.DataFrame | None, run_ids, column: str) -> list[str] | None:
    """The distinct recorded values of a column over the runs, or None when any run lacks it."""
    if provenance is None or column not in provenance.columns:
        return None
    rows = provenance[provenance["run_id"].isin(set(run_ids))]
    if len(rows) < len(set(run_ids)) or rows[column].isna().any():
        return None
    return sorted({_text(value) for value in rows[column]})


def _text(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def sweep_factors(table: pd.DataFrame, provenance: pd.DataFrame | None = None) -> dict[str, str | None]:
    """Each of FACTORS as a short description, or None where the sweep's records do not say.

    Args:
        table: a prepared results table (its runs are the network test_accuracy rows).
        provenance: its provenance.csv, or None.
    Returns:
        {"epochs": "6", "recipe": "batch_size 256, lr 0.2, ..." or None, "precision": "fp32" or None,
         "machine": "cpu: AMD EPYC 7B13 (AVX2)" or None}; several values are joined with " / ".
    """
    network = table[(table["layer"] == "network") & (table["metric"] == "test_accuracy")]
    run_ids = list(network["run_id"].unique())
    factors = {"epochs": " / ".join(str(epoch) for epoch in final_epochs(table))}
    recipe = [(column, _values(provenance, run_ids, column)) for column in RECIPE_COLUMNS]
    factors["recipe"] = (None if any(values is None for _, values in recipe)
                         else ", ".join(f"{column} {' / '.join(values)}" for column, values in recipe))
    precision = _values(provenance, run_ids, "precision")
    factors["precision"] = " / ".join(precision) if precision else None
    device, cpu = _values(provenance, run_ids, "device"), _values(provenance, run_ids, "cpu")
    factors["machine"] = (None if device is None or (cpu is None and "cpu" in device)
                          else " / ".join(device) + (f": {' / '.join(cpu)}" if cpu else ""))
    return factors


def confounds(first: dict, second: dict, varied=()) -> list[str]:
    """The factors (other than `varied`) in which two sweeps differ or that either does not record.

    Returns:
        One phrase per factor, e.g. "precision (fp32 vs bf16)" or "machine (not recorded)".
    """
    found = []
    for factor in FACTORS:
        if factor in varied:
            continue
        a, b = first.get(factor), second.get(factor)
        if a is None or b is None:
            found.append(f"{factor} (not recorded)")
        elif a != b:
            found.append(f"{factor} ({a} vs {b})")
    return found
