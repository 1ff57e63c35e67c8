"""`selectivity status`: each run's state, the sweep's progress and its expected time left.

The time left is estimated from the training time of done runs (timing.json): the mean
run time x the runs still to do, plus each running run's share still to do (by the epochs its
checkpoint holds; else by the time it has spent, in this attempt and, for a resumed run, its
earlier ones), divided by the number of runs in flight (at least one).
"""
import time
from dataclasses import dataclass

from selectivity.claims import DEFAULT_STALE_AFTER, read_claim
from selectivity.sweep.layout import SweepRun
from selectivity.sweep.run_state import RunState, epochs_done, run_state, seconds_before, training_seconds

SHOWN_STATE = {"corrupt": "pending-redo", "interrupted": "pending-resume"}


@dataclass(frozen=True)
class RunStatus:
    run: SweepRun
    state: RunState
    seconds: float | None  # done: training time; running: earlier attempts + time since its claim; else None
    epochs_done: int | None = None  # running or interrupted: epochs in its newest checkpoint, when reported

    @property
    def shown_state(self) -> str:
        return SHOWN_STATE.get(self.state.state, self.state.state)


def sweep_status(runs: list[SweepRun], stale_after: float = DEFAULT_STALE_AFTER) -> list[RunStatus]:
    """The state of every run of a sweep, in grid order."""
    rows = []
    for run in runs:
        state = run_state(run.directory, stale_after)
        seconds, done_epochs = None, None
        if state.state == "done":
            seconds = training_seconds(run.path)
        elif state.state == "running":
            claim = read_claim(run.path) or {}
            if "started" in claim:  # a resumed run has trained before this claim: its earlier attempts count
                seconds = seconds_before(run.path, claim["started"]) + time.time() - claim["started"]
            done_epochs = epochs_done(run.path)
        elif state.state == "interrupted":  # resumes from its checkpoint: only the rest is left to train
            done_epochs = epochs_done(run.path)
        rows.append(RunStatus(run, state, seconds, done_epochs))
    return rows


def seconds_left(rows: list[RunStatus]) -> float | None:
    """Expected seconds until the sweep is done (None until some done run has a timing)."""
    durations = [row.seconds for row in rows if row.state.state == "done" and row.seconds is not None]
    if not durations:
        return None
    mean = sum(durations) / len(durations)
    running = [row for row in rows if row.state.state == "running"]
    to_start = [row for row in rows if row.state.state not in ("done", "failed", "running")]
    work = sum(_share_left(row, mean) for row in to_start + running)
    return work / max(len(running), 1)


def _share_left(row: RunStatus, mean: float) -> float:
    """A run's share of a mean run still to do: by its checkpointed epochs when known (a running
    or interrupted run), else by the time a running run has spent (a lower bound for an attempt
    killed before "alive" existed), else a whole run."""
    total = row.run.config.train.epochs
    if row.epochs_done is not None and total > 0:
        return mean * max(1.0 - row.epochs_done / total, 0.0)
    if row.state.state == "running":
        return max(mean - (row.seconds or 0.0), 0.0)
    return mean


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def _detail(row: RunStatus) -> str:
    if row.epochs_done is None:
        return row.state.detail
    progress = f"epoch {row.epochs_done} of {row.run.config.train.epochs} checkpointed"
    return f"{row.state.detail}, {progress}" if row.state.detail else progress


def format_status(name: str, rows: list[RunStatus]) -> str:
    """A summary line and a plain aligned table: run, alpha, seed, state, time, detail."""
    counts = {state: sum(row.state.state == state for row in rows) for state in ("done", "running", "failed")}
    pending = len(rows) - sum(counts.values())
    left = seconds_left(rows)
    estimate = "unknown until a run is done" if left is None else f"about {_duration(left)}"
    header = (f"sweep {name}: {counts['done']} of {len(rows)} done, {counts['running']} running, "
              f"{counts['failed']} failed, {pending} pending; expected time left: {estimate}")
    table = [("run", "alpha", "seed", "state", "time", "detail")]
    table += [(row.run.run_id, row.run.alpha_label, str(row.run.config.seed), row.shown_state,
               _duration(row.seconds), _detail(row)) for row in rows]
    widths = [max(len(line[column]) for line in table) for column in range(len(table[0]) - 1)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)) + "  " + line[-1] for line in table]
    return "\n".join([header, ""] + [line.rstrip() for line in lines])
