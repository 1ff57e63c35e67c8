"""One sweep task: claim a run, repair or resume it, train it, record the outcome.

This is the function every executor runs (in a spawned process or a Ray task), so it takes
one picklable RunTask and returns one picklable RunOutcome, and never raises for a run that
failed: a failure is a result, recorded in the run folder, and the sweep goes on.
"""
import dataclasses
import errno
import importlib
import os
import traceback
from dataclasses import dataclass

from selectivity import claims
from selectivity.config import ExperimentConfig
from selectivity.errors import SelectivityError
from selectivity.store import MALFORMED_FAILURE, RunDirectory
from selectivity.sweep.layout import SweepFolder
from selectivity.sweep.run_state import corruption, finish_attempt, mark_alive, move_results_aside, start_attempt

DEFAULT_TRAINER = "selectivity.train:train_run"
# a write the disk refused: not the run's fault (no failed.json, which could not be written either),
# and every later run would meet it too, so the sweep stops and says so
OUTPUT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


def is_output_failure(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in OUTPUT_ERRNOS


def describe_output_failure(error: OSError) -> str:
    """"No space left on device: <path>" (the file being written when the disk refused)."""
    where = f": {error.filename}" if error.filename else ""
    return f"{error.strerror or os.strerror(error.errno)}{where}"


@dataclass(frozen=True)
class RunTask:
    config: ExperimentConfig
    path: str  # the run folder
    run_id: str
    alpha_label: str
    sweep_path: str  # the sweep folder (for events.jsonl)
    index: int = 1  # 1-based position in the sweep, for progress lines
    total: int = 1
    stale_after: float = claims.DEFAULT_STALE_AFTER
    retry_failed: bool = False
    threads: int | None = None  # torch intra-op threads for this run
    device: str | None = None  # overrides config.device (e.g. "cuda:1"); not part of the run hash
    trainer: str = DEFAULT_TRAINER  # "module:function" with train_run's signature


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    status: str  # done | already_done | failed | busy | lost | crashed | output_error (the disk refused a write)
    reason: str = ""
    seconds: float | None = None


def load_trainer(name: str):
    """The function named by "package.module:function"; a name that does not resolve is a one-line error."""
    module_name, colon, function_name = name.partition(":")
    if not colon or not module_name or not function_name:
        raise SelectivityError(f"trainer {name!r} is malformed; expected MODULE:FUNCTION such as {DEFAULT_TRAINER}")
    try:
        trainer = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as error:
        raise SelectivityError(f"trainer {name!r} cannot be loaded ({error}); expected MODULE:FUNCTION") from None
    if not callable(trainer):
        raise SelectivityError(f"trainer {name!r} is not a function; expected MODULE:FUNCTION")
    return trainer


def _prepare(task: RunTask, directory: RunDirectory) -> RunOutcome | None:
    """Under the claim: an outcome if there is nothing to train, else repair the folder for training."""
    try:
        directory.claim_settings(task.config)  # a damaged config.json is moved aside and rewritten first
    except SelectivityError as error:  # the folder holds another run: never write into it
        return RunOutcome(task.run_id, "failed", str(error))
    if directory.is_done():
        return RunOutcome(task.run_id, "already_done")
    failure = directory.failure()
    if failure is not None and not task.retry_failed:
        reason = f"{failure.get('reason')} (recorded earlier; --retry-failed reruns it)"
        return RunOutcome(task.run_id, "failed", reason)
    if failure is not None and failure.get("reason") == MALFORMED_FAILURE:
        directory.move_aside([directory.failed_path], MALFORMED_FAILURE)  # damage is kept, never deleted
    directory.failed_path.unlink(missing_ok=True)
    reason = corruption(directory)
    if reason:
        print(f"redo   {task.run_id}: {reason}; starting it again from scratch", flush=True)
        move_results_aside(directory, reason)
    return None


def _train(task: RunTask, directory: RunDirectory, heartbeat) -> RunOutcome:
    config = task.config
    if task.device is not None:
        config = dataclasses.replace(config, device=task.device)
    import torch  # here, not at the top: the sweep's driver process never needs torch

    if task.threads:
        torch.set_num_threads(task.threads)
    resumed = directory.checkpoint_path.exists()
    from selectivity.setup import machine_description

    start_attempt(directory.path, resumed, torch.get_num_threads(), machine_description(config.device))
    folder = SweepFolder(task.sweep_path)
    folder.log_event("start", task.run_id, resumed=resumed)
    print(f"start  [{task.index}/{task.total}] {task.run_id} alpha={task.alpha_label} seed={config.seed}"
          + (" (resuming from checkpoint)" if resumed else ""), flush=True)

    def heartbeat_after_checkpoint(epochs_done: int | None = None):  # the trainer calls it after each checkpoint
        heartbeat()
        mark_alive(directory.path, epochs_done)

    try:
        load_trainer(task.trainer)(config, directory.path, progress=False, heartbeat=heartbeat_after_checkpoint)
    except KeyboardInterrupt:  # the sweep is stopping: the checkpoint stays for the next one
        finish_attempt(directory.path, "interrupted")
        raise
    except claims.ClaimLost as error:
        finish_attempt(directory.path, "lost")
        return RunOutcome(task.run_id, "lost", str(error))
    except Exception as error:  # a failed run is a result: record it and let the sweep go on
        if is_output_failure(error):
            raise  # run_task reports it; writing failed.json would fail the same way
        reason = getattr(error, "reason", None) or f"{type(error).__name__}: {error}"
        if not directory.failed_path.exists():  # the trainer records its own failures (NaN loss)
            records = directory.read_metrics(strict=False)
            directory.mark_failed(reason, records[-1].get("epoch", -1) if records else -1)
            (directory.path / "failed_traceback.txt").write_text(traceback.format_exc())
        seconds = finish_attempt(directory.path, "failed")
        folder.log_event("finish", task.run_id, outcome="failed", reason=reason, seconds=seconds)
        return RunOutcome(task.run_id, "failed", reason, seconds)
    seconds = finish_attempt(directory.path, "done")
    folder.log_event("finish", task.run_id, outcome="done", seconds=seconds)
    return RunOutcome(task.run_id, "done", "", seconds)


def run_task(task: RunTask) -> RunOutcome:
    """Claim, check, train and record one run.

    Args:
        task: the run and how to run it.
    Returns:
        already_done (nothing to do), done, failed (with reason), busy (another live worker
        holds it) or lost (our claim was taken over mid-run; the new holder finishes it).
    """
    directory = RunDirectory(task.path)
    try:
        claim = claims.try_claim(directory.path, task.stale_after)
        if claim is None:
            holder = claims.read_claim(directory.path) or {}
            return RunOutcome(task.run_id, "busy", f"{holder.get('host', '?')}:{holder.get('pid', '?')}")
        interval = min(30.0, max(task.stale_after / 10, 0.05))
        with claim.kept_alive(interval) as heartbeat:
            outcome = _prepare(task, directory)
            if outcome is None:
                outcome = _train(task, directory, heartbeat)
        return outcome
    except OSError as error:
        if not is_output_failure(error):
            raise
        return RunOutcome(task.run_id, "output_error", describe_output_failure(error))
