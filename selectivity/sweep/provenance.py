"""provenance.csv: what each done run was made with, written beside the sweep's results table.

One row per done run (PROVENANCE_COLUMNS, the columns selectivity.report.provenance reads):
its final epoch, the training recipe from config.json, the precision "auto" resolved to, and
from timing.json the device and CPU of its attempts and when its first attempt started (UTC).
A value a run did not record (an older run folder) is left empty, and reads "not recorded".
"""
import datetime

import pandas as pd

from selectivity.sweep.layout import SweepRun
from selectivity.sweep.run_state import read_timing

RECIPE_COLUMNS = ("batch_size", "lr", "momentum", "nesterov", "weight_decay", "schedule", "warmup_epochs")
PROVENANCE_COLUMNS = ("run_id", "epochs", *RECIPE_COLUMNS, "precision", "device", "cpu", "started")
PROVENANCE_FILE = "provenance.csv"


def _recorded(attempts: list[dict], key: str) -> str | None:
    """The attempts' value of key, ' / '-joined when they differ (a resumed run that moved); None if any lacks it."""
    values = [attempt.get(key) for attempt in attempts]
    if not values or any(value is None for value in values):
        return None
    return " / ".join(dict.fromkeys(values))


def run_provenance(run: SweepRun) -> dict:
    """One done run's row (PROVENANCE_COLUMNS)."""
    train = run.config.train
    records = run.directory.read_metrics(strict=True)
    attempts = read_timing(run.path)["attempts"]
    started = (datetime.datetime.fromtimestamp(attempts[0]["start"], datetime.timezone.utc)
               .isoformat(timespec="seconds") if attempts else None)
    return {"run_id": run.run_id, "epochs": int(records[-1]["epoch"]) if records else None,
            **{column: getattr(train, column) for column in RECIPE_COLUMNS},
            "precision": run.directory.recorded_precision(), "device": _recorded(attempts, "device"),
            "cpu": _recorded(attempts, "cpu"), "started": started}


def provenance_table(runs: list[SweepRun]) -> pd.DataFrame:
    """The provenance rows of the done runs among `runs`, in their order."""
    rows = [run_provenance(run) for run in runs if run.directory.is_done()]
    return pd.DataFrame(rows, columns=list(PROVENANCE_COLUMNS))
