"""Seed docs/results/NAME/verdict_history.csv from the verdicts git history shows were published.

    python3 experiments/verdict-history-from-git.py NAME [NAME ...]

Every committed version of docs/results/NAME/accuracy_vs_baseline.csv, oldest first, is one
look per condition, recorded with the commit that published it and that commit's date; a look
is kept when its seed counts or verdict differ from the condition's last (the report's own
rule, selectivity.report.verdict_history). Versions written before the Holm correction carry
correction "none". Nothing else is a look: verdicts stated only in a page's prose are not.
"""
import io
import math
import subprocess
import sys

import pandas as pd

from selectivity.report.verdict_history import CLAIM, HISTORY_COLUMNS, append_looks


def git(*args: str) -> str:
    return subprocess.run(["git", *args], check=True, capture_output=True, text=True).stdout


def looks_at(commit: str, date: str, path: str) -> pd.DataFrame:
    table = pd.read_csv(io.StringIO(git("show", f"{commit}:{path}")), dtype={"alpha_label": str})
    holm = "verdict_uncorrected" in table.columns  # the column came with the Holm correction
    rows = [{"claim": CLAIM, "alpha_label": row.alpha_label, "n_alpha": int(row.n_alpha),
             "n_baseline": int(row.n_baseline), "verdict": row.verdict,
             "correction": "no CI" if math.isnan(row.ci_low_points) else
             f"Holm over {int(row.family_size)}" if holm else "none", "commit": commit, "date": date}
            for row in table.itertuples(index=False)]
    return pd.DataFrame(rows, columns=list(HISTORY_COLUMNS))


def main(names: list[str]) -> None:
    for name in names:
        path = f"docs/results/{name}/accuracy_vs_baseline.csv"
        history = pd.DataFrame(columns=list(HISTORY_COLUMNS))
        for line in git("log", "--reverse", "--format=%h %cI", "--", path).splitlines():
            commit, date = line.split()
            history = append_looks(history, looks_at(commit, date, path))
        history.to_csv(f"docs/results/{name}/verdict_history.csv", index=False)
        print(f"{name}: {len(history)} looks")


if __name__ == "__main__":
    main(sys.argv[1:])
