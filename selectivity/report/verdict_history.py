"""Each verdict with the seeds it was made with, kept across re-runs of the report.

A verdict read once more seeds have come in is a second look at the same question. The report
therefore appends to `verdict_history.csv` in its output folder, one row per look and condition
(HISTORY_COLUMNS), and never rewrites the rows before: a look is recorded when its seed counts or
its verdict differ from the condition's last recorded look. The page quotes the looks, e.g.
"looks at n = 2 vs 2: undetermined, 3 vs 3: loss; decided at n = 3 vs 3".
"""
import datetime
import math
import subprocess
from pathlib import Path

import pandas as pd

from selectivity.errors import SelectivityError

HISTORY_FILE = "verdict_history.csv"
CLAIM = "test accuracy vs alpha = 0"
HISTORY_COLUMNS = ("claim", "alpha_label", "n_alpha", "n_baseline", "verdict", "correction", "commit", "date")
DECIDED = ("loss", "no loss")


def read_history(path: Path) -> pd.DataFrame:
    """The recorded looks (empty when the file does not exist yet); a damaged file is a one-line error."""
    path = Path(path)
    if not path.exists():
        return pd.DataFrame(columns=list(HISTORY_COLUMNS))
    try:
        history = pd.read_csv(path, dtype={"alpha_label": str, "commit": str, "date": str}, keep_default_na=False)
    except Exception as error:  # pandas and the OS raise their own types for a damaged file
        raise SelectivityError(f"{path} cannot be read ({type(error).__name__}); expected the verdict history "
                               "an earlier report wrote (move it aside to start a new one)") from None
    missing = [column for column in HISTORY_COLUMNS if column not in history.columns]
    if missing:
        raise SelectivityError(f"{path} lacks columns {missing}: expected {list(HISTORY_COLUMNS)}")
    return history[list(HISTORY_COLUMNS)]


def code_commit() -> str:
    """The short commit of the checkout this package runs from, or "" outside a git checkout."""
    try:
        result = subprocess.run(["git", "-C", str(Path(__file__).parent), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


def correction_of(row) -> str:
    """How a look's verdict was corrected for the page's other comparisons."""
    if math.isnan(row.ci_low_points):
        return "no CI"
    return f"Holm over {int(row.family_size)}"


def current_looks(compared: pd.DataFrame, commit: str, date: str) -> pd.DataFrame:
    """One look per compared condition (accuracy_vs_baseline rows), recorded at `commit` and `date`."""
    rows = [{"claim": CLAIM, "alpha_label": row.alpha_label, "n_alpha": int(row.n_alpha),
             "n_baseline": int(row.n_baseline), "verdict": row.verdict, "correction": correction_of(row),
             "commit": commit, "date": date} for row in compared.itertuples(index=False)]
    return pd.DataFrame(rows, columns=list(HISTORY_COLUMNS))


def append_looks(history: pd.DataFrame, looks: pd.DataFrame) -> pd.DataFrame:
    """history plus each look whose seeds or verdict differ from its condition's last recorded one."""
    new = []
    for look in looks.itertuples(index=False):
        earlier = history[(history["claim"] == look.claim) & (history["alpha_label"] == look.alpha_label)]
        last = earlier.iloc[-1] if len(earlier) else None
        if last is None or (int(last["n_alpha"]), int(last["n_baseline"]), last["verdict"]) != (
                look.n_alpha, look.n_baseline, look.verdict):
            new.append(look._asdict())
    if not new:
        return history.reset_index(drop=True)
    return pd.concat([history, pd.DataFrame(new, columns=list(HISTORY_COLUMNS))], ignore_index=True)


def update_history(out_dir: Path, compared: pd.DataFrame, commit: str | None = None,
                   date: str | None = None) -> pd.DataFrame:
    """Read out_dir's verdict history, append this report's looks, and return it (the caller writes it).

    Args:
        out_dir: the report folder (its verdict_history.csv, if any, holds the earlier looks).
        compared: this report's accuracy_vs_baseline rows.
        commit, date: what the looks are recorded with (default: this checkout's commit, now in UTC).
    """
    commit = code_commit() if commit is None else commit
    date = date or datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return append_looks(read_history(Path(out_dir) / HISTORY_FILE), current_looks(compared, commit, date))


def looks_phrase(history: pd.DataFrame, alpha_label: str, claim: str = CLAIM) -> str:
    """'looks at n = 2 vs 2: undetermined, 3 vs 3: loss; decided at n = 3 vs 3' ('' without a look).

    "decided at" is the first look of the last run of looks that share the current, decided verdict.
    """
    looks = history[(history["claim"] == claim) & (history["alpha_label"] == alpha_label)]
    if looks.empty:
        return ""
    seeds = [f"{int(look.n_alpha)} vs {int(look.n_baseline)}" for look in looks.itertuples(index=False)]
    verdicts = list(looks["verdict"])
    text = "looks at n = " + ", ".join(f"{n}: {verdict}" for n, verdict in zip(seeds, verdicts))
    if verdicts[-1] in DECIDED:
        first = len(verdicts) - 1
        while first > 0 and verdicts[first - 1] == verdicts[-1]:
            first -= 1
        text += f"; decided at n = {seeds[first]}"
    return text
