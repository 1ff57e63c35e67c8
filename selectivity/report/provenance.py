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
# what two sweeps must share for a difference between them to have one cause
FACTORS = ("model", "dataset", "epochs", *RECIPE_COLUMNS, "precision", "machine")
VARIABLE = (*FACTORS, "recipe")  # what `selectivity compare --vary` may name


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
        {"model": "resnet20", "dataset": "cifar10", "epochs": "6", "lr": "0.2" or None, ...,
         "precision": "fp32" or None, "machine": "cpu: AMD EPYC 7B13 (AVX2)" or None}; a factor whose
        runs differ joins their values with " / ".
    """
    network = table[(table["layer"] == "network") & (table["metric"] == "test_accuracy")]
    run_ids = list(network["run_id"].unique())
    factors = {"model": " / ".join(sorted(table["model"].unique())),
               "dataset": " / ".join(sorted(table["dataset"].unique())),
               "epochs": " / ".join(str(epoch) for epoch in final_epochs(table))}
    for column in (*RECIPE_COLUMNS, "precision"):
        values = _values(provenance, run_ids, column)
        factors[column] = " / ".join(values) if values else None
    device, cpu = _values(provenance, run_ids, "device"), _values(provenance, run_ids, "cpu")
    factors["machine"] = (None if device is None or (cpu is None and "cpu" in device)
                          else " / ".join(device) + (f": {' / '.join(cpu)}" if cpu else ""))
    return factors


def confounds(first: dict, second: dict, varied=()) -> list[str]:
    """The factors, other than `varied`, in which two sweeps differ or that either does not record.

    Args:
        first, second: sweep_factors of the two sweeps.
        varied: the factors the comparison is about (FACTORS, or "recipe" for all RECIPE_COLUMNS).
    Returns:
        One phrase per differing factor, e.g. "precision (fp32 vs bf16)", then one for the
        unrecorded ones, e.g. "recipe, precision, machine not recorded"; empty when none.
    """
    varied = {column for name in varied for column in (RECIPE_COLUMNS if name == "recipe" else (name,))}
    found, unrecorded = [], []
    for factor in FACTORS:
        a, b = first.get(factor), second.get(factor)
        if factor in varied:
            continue
        if a is None or b is None:
            unrecorded.append("recipe" if factor in RECIPE_COLUMNS else factor)
        elif a != b:
            found.append(f"{factor} ({a} vs {b})")
    if unrecorded:
        found.append(", ".join(dict.fromkeys(unrecorded)) + " not recorded")
    return found
