"""What state a run folder is in, how to repair a corrupt one, and its timing record.

    done         done.json exists and every file it names is whole (RunDirectory.is_done)
    running      a live worker holds its claim
    failed       failed.json records why (NaN loss, an exception, a worker that kept dying)
    corrupt      results that cannot be trusted (a done.json that does not match the files,
                 an unreadable metrics.jsonl or units.parquet): redone from scratch
    interrupted  a checkpoint and no live claim: resumes from the checkpoint
    pending      nothing yet

    <run folder>/timing.json   {"attempts": [{"host", "pid", "start", "end", "outcome", "resumed", "threads",
                                              "device", "cpu", "alive", "epochs_done"}]}
                               ("alive", "epochs_done": at the attempt's last checkpoint)
                               written by the sweep worker while it holds the claim
"""
import json
import socket
import os
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as parquet

from selectivity import atomic
from selectivity.claims import DEFAULT_STALE_AFTER, claim_is_stale, read_claim
from selectivity.store import RunDirectory, is_damage

TIMING_FILE = "timing.json"


@dataclass(frozen=True)
class RunState:
    state: str  # done | running | failed | corrupt | interrupted | pending
    detail: str = ""  # failure reason, claim holder, or what is corrupt


def corruption(directory: RunDirectory) -> str:
    """Why a not-done folder's results cannot be trusted, or "" when they can (or are absent).

    Raises:
        OSError: a file could not be read at all (permissions, I/O): not a reason to redo.
    """
    if directory.done_path.exists():
        try:
            return directory.checkpoint_problem() or "done.json does not match the files it names"
        except Exception as error:
            if not is_damage(error):
                raise
            return "done.json does not match the files it names"
    try:
        directory.read_metrics(strict=True)
    except Exception as error:
        if not is_damage(error):
            raise
        return "metrics.jsonl is truncated or unreadable"
    if directory.units_path.exists():
        try:
            parquet.read_metadata(directory.units_path)
        except Exception as error:
            if not is_damage(error):
                raise
            return "units.parquet is truncated or unreadable"
    return ""


def run_state(directory: RunDirectory, stale_after: float = DEFAULT_STALE_AFTER) -> RunState:
    """Classify one run folder (see module docstring); a done run is always "done"."""
    if directory.is_done():
        return RunState("done")
    claim = read_claim(directory.path)
    if claim is not None and not claim_is_stale(claim, stale_after):
        return RunState("running", f"{claim.get('host', '?')}:{claim.get('pid', '?')}")
    failure = directory.failure()
    if failure is not None:
        return RunState("failed", f"{failure.get('reason', '?')} (epoch {failure.get('epoch', '?')})")
    reason = corruption(directory)
    if reason:
        return RunState("corrupt", reason)
    if directory.checkpoint_path.exists():
        return RunState("interrupted", "resumes from checkpoint.pt")
    return RunState("pending")


def move_results_aside(directory: RunDirectory, reason: str) -> None:
    """Move every result file of a corrupt run into a damaged-* folder, so it is redone from scratch.

    Nothing is deleted: the damaged files stay for a person to look at. config.json (which
    names the run) and timing.json (its history) stay where they are.
    """
    directory.move_aside([directory.done_path, directory.failed_path, directory.metrics_path, directory.units_path,
                          directory.units_csv_path, directory.checkpoint_path], reason)


# --- timing ---------------------------------------------------------------------------------
def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_attempt(entry) -> bool:
    """An attempt record the timing code can use: a numeric start; end, alive numeric if set."""
    return (isinstance(entry, dict) and _is_number(entry.get("start"))
            and all(entry.get(key) is None or _is_number(entry[key]) for key in ("end", "alive"))
            and (entry.get("epochs_done") is None or isinstance(entry["epochs_done"], int)))


def _load_timing(run_dir: str | Path) -> tuple[dict, bool]:
    """(the usable timing record, whether the file held anything unusable)."""
    try:
        timing = json.loads((Path(run_dir) / TIMING_FILE).read_text())
    except FileNotFoundError:
        return {"attempts": []}, False
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {"attempts": []}, True
    attempts = timing.get("attempts") if isinstance(timing, dict) else None
    if not isinstance(attempts, list):
        return {"attempts": []}, True
    usable = [entry for entry in attempts if _is_attempt(entry)]
    return {**timing, "attempts": usable}, len(usable) < len(attempts)


def read_timing(run_dir: str | Path) -> dict:
    """The run's attempts; a damaged timing.json reads as its usable attempts (it is bookkeeping:
    damage there must never stop a run or `selectivity status`)."""
    return _load_timing(run_dir)[0]


def start_attempt(run_dir: str | Path, resumed: bool, threads: int | None = None,
                  machine: dict | None = None) -> None:
    """Record that this process starts (or resumes) the run; call only while holding its claim.

    `machine` ({"device", "cpu"}, setup.machine_description) is kept with the attempt: which
    device and CPU trained it. A damaged timing.json is moved aside (kept for a person to look
    at) before it is rewritten.
    """
    timing, damaged = _load_timing(run_dir)
    if damaged:
        RunDirectory(run_dir).move_aside([Path(run_dir) / TIMING_FILE], "timing.json is malformed")
    timing["attempts"].append({"host": socket.gethostname(), "pid": os.getpid(), "start": time.time(),
                               "end": None, "outcome": None, "resumed": resumed,
                               "threads": threads,  # torch threads: a CPU run's numbers depend on them
                               **(machine or {})})
    atomic.write_json(Path(run_dir) / TIMING_FILE, timing)


def mark_alive(run_dir: str | Path, epochs_done: int | None = None) -> None:
    """Record, after each checkpoint, that this process's open attempt is still training.

    An attempt killed outright (SIGKILL, the session or machine gone) never writes its end; its
    last "alive" still says how long it trained, to within the epoch it lost. `epochs_done`
    (the checkpoint's epoch count, when the trainer passes it) is what `selectivity status` shows.
    """
    timing = read_timing(run_dir)
    if timing["attempts"] and timing["attempts"][-1].get("end") is None:
        timing["attempts"][-1]["alive"] = time.time()
        if epochs_done is not None:
            timing["attempts"][-1]["epochs_done"] = int(epochs_done)
        atomic.write_json(Path(run_dir) / TIMING_FILE, timing)


def epochs_done(run_dir: str | Path) -> int | None:
    """Epochs in the run's newest checkpoint, as its attempts recorded them (None if none did).

    A resumed attempt that has not checkpointed yet holds the epochs of the attempt before it;
    an attempt that started from scratch (a redo) does not.
    """
    for attempt in reversed(read_timing(run_dir)["attempts"]):
        if "epochs_done" in attempt:
            return attempt["epochs_done"]
        if not attempt.get("resumed"):
            return None
    return None


def attempt_seconds(attempt: dict) -> float | None:
    """One attempt's wall time: to its end, or to its last checkpoint if it never recorded an end;
    None when it recorded neither."""
    last = attempt.get("end") or attempt.get("alive")
    return last - attempt["start"] if last else None


def finish_attempt(run_dir: str | Path, outcome: str) -> float | None:
    """Close this process's open attempt with its outcome; returns its duration in seconds.

    None when there is no open attempt to close (timing.json was damaged while the run trained).
    """
    timing = read_timing(run_dir)
    if not timing["attempts"] or timing["attempts"][-1].get("end") is not None:
        return None
    attempt = timing["attempts"][-1]
    attempt["end"], attempt["outcome"] = time.time(), outcome
    atomic.write_json(Path(run_dir) / TIMING_FILE, timing)
    return attempt["end"] - attempt["start"]


def seconds_before(run_dir: str | Path, moment: float) -> float:
    """Seconds the run's attempts that started before `moment` trained: what a resumed run brings."""
    return sum(attempt_seconds(a) or 0.0 for a in read_timing(run_dir)["attempts"] if a["start"] < moment)


def training_seconds(run_dir: str | Path) -> float | None:
    """The run's cost for ETAs: seconds of its attempts, or of its recorded epochs if more.

    An attempt killed outright (SIGKILL, a machine that went away) never records its end; it
    counts to its last checkpoint ("alive"). Folders written before "alive" existed lack it, so
    a resumed run's attempts can cover only its last epochs; the per-epoch `seconds` of
    metrics.jsonl (training + evaluation of each recorded epoch, whichever attempt ran it) is
    then the larger, and still a lower bound. None when neither says anything.
    """
    timed = [seconds for seconds in map(attempt_seconds, read_timing(run_dir)["attempts"]) if seconds is not None]
    recorded = [record.get("seconds", 0.0) for record in RunDirectory(run_dir).read_metrics(strict=False)]
    if not timed and not recorded:
        return None
    return max(sum(timed), sum(recorded))
