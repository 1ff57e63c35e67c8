"""A decision rule written into a sweep spec, when git says it was fixed, and what it decides.

A spec's `[rule]` table (docs/report.md, "Pre-registered rules"):

    [rule]
    claim = "a longer schedule shrinks the cost of near-zero selectivity"
    metric = "test_accuracy"        # a `selectivity compare` metric
    alpha = -10                     # the condition whose change it judges
    holds = "above"                 # holds when the change's 95% CI lies above 0 ("below": below 0);
                                    # the other side fails, a CI containing 0 is undetermined
    text = '...'                    # the rule in words, as the spec first stated it

The rule was fixed by the first commit whose version of the spec holds `text` (comment marks
and line breaks ignored), so rewriting the rule in a later commit moves that date. A rule is
"fixed before the data" only when every run it judges started after that commit; the start
times are those of the runs' provenance.csv.
"""
import datetime
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from selectivity.config import read_toml
from selectivity.errors import SelectivityError

BEFORE, AFTER, UNCHECKABLE = "fixed before the data", "fixed after the data", "not checkable"
RULE_KEYS = ("claim", "metric", "alpha", "holds", "text")


@dataclass(frozen=True)
class Rule:
    claim: str
    metric: str
    alpha: float
    holds: str  # "above" or "below": the side of 0 the change's CI must lie on for the claim to hold
    text: str


def read_rule(spec: str | Path) -> Rule:
    """The spec's [rule] table; one-line errors for a missing table, key or side."""
    values = read_toml(Path(spec), "sweep spec").get("rule")
    if not isinstance(values, dict):
        raise SelectivityError(f"sweep spec {spec} has no [rule] table: expected keys {', '.join(RULE_KEYS)}")
    missing = [key for key in RULE_KEYS if key not in values]
    if missing:
        raise SelectivityError(f"sweep spec {spec}: [rule] lacks {', '.join(missing)}; expected {', '.join(RULE_KEYS)}")
    if values["holds"] not in ("above", "below"):
        raise SelectivityError(f"sweep spec {spec}: [rule] holds = {values['holds']!r}; expected 'above' or 'below'")
    return Rule(str(values["claim"]), str(values["metric"]), float(values["alpha"]), values["holds"],
                _normalized(str(values["text"])))


def _normalized(text: str) -> str:
    """Text without comment marks or line breaks, so a rule reads the same in a comment and in a string."""
    return " ".join(" ".join(re.sub(r"^\s*#", " ", line) for line in text.splitlines()).split())


def rule_verdict(rule: Rule, change: pd.DataFrame) -> tuple[str, pd.Series]:
    """'holds' / 'fails' / 'undetermined' for the rule's row of a `selectivity compare` table, and that row."""
    rows = change[(change["metric"] == rule.metric) & (change["alpha"] == rule.alpha)]
    if len(rows) != 1:
        raise SelectivityError(f"the comparison has no {rule.metric} row at alpha = {rule.alpha:g}: the rule judges it")
    row = rows.iloc[0]
    if row["direction"] == "undetermined":
        return "undetermined", row
    return ("holds" if (row["direction"] == "higher") == (rule.holds == "above") else "fails"), row


def _git(folder: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def fixing_commit(spec: str | Path, rule: Rule) -> tuple[str, str] | None:
    """(short commit, ISO date) of the first commit whose spec holds the rule's text; None outside git."""
    spec = Path(spec).resolve()
    root = _git(spec.parent, "rev-parse", "--show-toplevel")
    if root is None:
        return None
    root = Path(root.strip())  # pathspecs are relative to the folder git runs in
    relative = spec.relative_to(root).as_posix()
    for line in (_git(root, "log", "--reverse", "--format=%h %cI", "--", relative) or "").splitlines():
        commit, date = line.split()
        if rule.text in _normalized(_git(root, "show", f"{commit}:{relative}") or ""):
            return commit, date
    return None


def timing(fixed_at: str, started) -> str:
    """AFTER when a run started at or before the fixing commit's date, BEFORE when every run started
    after it, UNCHECKABLE when no run or only some record a start (an unrecorded one may precede it).

    Args:
        fixed_at: the fixing commit's ISO date.
        started: each judged run's ISO start time, None or NaN where it was not recorded.
    """
    started = list(started)
    fixed = datetime.datetime.fromisoformat(fixed_at)
    starts = [datetime.datetime.fromisoformat(value) for value in started if isinstance(value, str) and value]
    if any(start <= fixed for start in starts):
        return AFTER
    return BEFORE if starts and len(starts) == len(started) else UNCHECKABLE
