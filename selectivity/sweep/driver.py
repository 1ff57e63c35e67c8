"""run_sweep: hand every run that is not done to an executor, then write the results table.

Resumable by construction: a done run is skipped, an interrupted one resumes from its
checkpoint, a corrupt one is redone, a failed one is kept as failed unless retry_failed.
Runs claimed by another sweep process are waited for, so the table written at the end
covers the whole grid; a run whose worker died is retried once, then recorded as failed.
"""
import time
from collections import Counter
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from selectivity import claims
from selectivity.errors import SelectivityError
from selectivity.sweep import stopping
from selectivity.sweep.layout import SweepFolder, SweepRun
from selectivity.sweep.provenance import provenance_table
from selectivity.sweep.results import build_results, write_results
from selectivity.sweep.run_state import move_results_aside, run_state
from selectivity.sweep.worker import DEFAULT_TRAINER, RunOutcome, RunTask

CRASHES_BEFORE_FAILED = 2


@dataclass
class SweepResult:
    total: int
    done: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # run_id -> reason
    results_path: Path | None = None

    @property
    def exit_code(self) -> int:
        """The number of failed runs, capped at 100 (0: every run done)."""
        return min(len(self.failed), 100)


@dataclass
class _Options:
    stale_after: float
    retry_failed: bool
    trainer: str
    poll_seconds: float


def _record_crash(run: SweepRun, reason: str, stale_after: float) -> None:
    """Mark a run whose worker keeps dying as failed (under its claim, as any writer must)."""
    claim = claims.try_claim(run.path, stale_after)
    if claim is not None:
        records = run.directory.read_metrics(strict=False)
        run.directory.mark_failed(reason, records[-1].get("epoch", -1) if records else -1)
        claim.release()


def _known_outcome(run: SweepRun, options: _Options) -> RunOutcome | None:
    """What the run folder already says, when it leaves nothing to dispatch: done, or failed
    (kept as failed unless retry_failed); None for a run to hand to the executor."""
    state = run_state(run.directory, options.stale_after)
    if state.state == "done":
        return RunOutcome(run.run_id, "already_done")
    if state.state == "failed" and not options.retry_failed:
        return RunOutcome(run.run_id, "failed", state.detail)
    return None


def _settled(run: SweepRun, options: _Options, result: SweepResult, bar: tqdm) -> bool:
    """Count a run that came back from the executor unfinished but whose folder now says how it
    ended (another worker finished it while we waited); True when counted, so not dispatched again."""
    known = _known_outcome(run, options)
    if known is not None:
        _count(known, run, result, [], [], bar)
    return known is not None


def _wait_for_others(waiting: list[SweepRun], options: _Options, bar: tqdm) -> list[SweepRun]:
    """Block until some run claimed by another worker is no longer running.

    Returns:
        Every run of `waiting`, to look at again: a free one is counted (if its holder
        finished it) or dispatched, one still held comes back "busy" and is waited for in
        the next round. Returning only the free ones dropped the rest from the sweep, which
        then wrote a table without them.
    """
    holders = {run_state(run.directory, options.stale_after).detail for run in waiting}
    bar.write(f"waiting for {len(waiting)} run(s) claimed by other workers ({', '.join(sorted(holders))})")
    while all(run_state(run.directory, options.stale_after).state == "running" for run in waiting):
        stopping.check()
        time.sleep(options.poll_seconds)
    return waiting


def _dispatch(runs: list[SweepRun], folder: SweepFolder, executor, options: _Options,
              result: SweepResult, bar: tqdm) -> tuple[list[SweepRun], list[SweepRun]]:
    """One round: run `runs` on the executor.

    Returns:
        (runs whose worker died, runs another worker held that are free now): to try again.
    """
    by_id = {run.run_id: run for run in runs}
    first = result.done + len(result.failed)
    tasks = [RunTask(config=run.config, path=str(run.path), run_id=run.run_id, alpha_label=run.alpha_label,
                     sweep_path=str(folder.path), index=first + i + 1, total=result.total,
                     stale_after=options.stale_after, retry_failed=options.retry_failed,
                     threads=executor.threads_per_run, device=executor.device_for(i), trainer=options.trainer)
             for i, run in enumerate(runs)]
    crashed, waiting = [], []
    with closing(executor.run(tasks)) as outcomes:  # leaving early (a stop) stops the executor's workers
        for outcome in outcomes:
            _count(outcome, by_id[outcome.run_id], result, crashed, waiting, bar)
    return crashed, (_wait_for_others(waiting, options, bar) if waiting else [])


def _count(outcome: RunOutcome, run: SweepRun, result: SweepResult, crashed: list, waiting: list,
           bar: tqdm) -> None:
    """Add one outcome to the result, or to the runs to try again (crashed, or held by others)."""
    if outcome.status in ("busy", "lost"):
        waiting.append(run)
        return
    if outcome.status == "output_error":  # every later run would meet the same disk: stop (exit 2)
        raise SelectivityError(f"run {outcome.run_id} could not write its output ({outcome.reason}); expected room "
                               "to write there: free some space and rerun the sweep (finished runs and checkpoints "
                               "are kept; the run resumes from its last checkpoint)")
    if outcome.status == "crashed":
        crashed.append(run)
        _line(bar, outcome, run, result)
        return
    if outcome.status == "failed":
        result.failed[outcome.run_id] = outcome.reason
    else:  # done, already_done
        result.done += 1
    bar.update(1)
    _line(bar, outcome, run, result)


def _line(bar: tqdm, outcome: RunOutcome, run: SweepRun, result: SweepResult) -> None:
    seconds = f" in {outcome.seconds:.0f} s" if outcome.seconds is not None else ""
    reason = f": {outcome.reason}" if outcome.reason else ""
    bar.write(f"finish [{result.done + len(result.failed)}/{result.total}] {run.run_id} alpha={run.alpha_label} "
              f"seed={run.config.seed}: {outcome.status}{seconds}{reason}"
              f" ({result.done} done, {len(result.failed)} failed)")


def run_sweep(name: str, folder: SweepFolder, runs: list[SweepRun], executor, analyses=(),
              retry_failed: bool = False, stale_after: float = claims.DEFAULT_STALE_AFTER,
              poll_seconds: float = 5.0, progress: bool = True, trainer: str = DEFAULT_TRAINER) -> SweepResult:
    """Run every run of a sweep that is not done, then write results.parquet / results.csv.

    Args:
        name: the sweep's name (recorded in sweep.json).
        folder: the sweep folder; runs: its expanded grid (SweepFolder.runs_for).
        executor: from selectivity.sweep.executors.make_executor; closed by the caller.
        analyses: post-sweep analyses (names or an AnalysisPlan with settings) whose rows are appended.
        retry_failed: rerun runs that failed before (default: keep them as failed).
        stale_after: heartbeat age (s) after which another worker's claim is taken over.
        poll_seconds: how often to look at runs claimed by other workers.
        progress: show the overall tqdm bar.
        trainer: "module:function" that trains one run (train_run's signature).
    Returns:
        Counts and failure reasons; exit_code is the number of failed runs.
    Raises:
        KeyboardInterrupt: after the executor stopped its workers (checkpoints stay).
    """
    folder = SweepFolder(folder.path.resolve())  # Ray workers do not share our working directory
    runs = [SweepRun(run.config, run.alpha_label, run.path.resolve()) for run in runs]
    folder.write_manifest(name, runs, analyses)
    options = _Options(stale_after, retry_failed, trainer, poll_seconds)
    result = SweepResult(total=len(runs))
    todo, crash_counts = [], Counter()
    for run in runs:
        _move_aside_a_damaged_done_checkpoint(run, stale_after)
        known = _known_outcome(run, options)
        if known is None:
            todo.append(run)
        elif known.status == "failed":
            result.failed[run.run_id] = known.reason
        else:
            result.done += 1
    with tqdm(total=len(runs), initial=result.done + len(result.failed), desc=f"sweep {name}", unit="run",
              disable=not progress) as bar:
        while todo:
            crashed, freed = _dispatch(todo, folder, executor, options, result, bar)
            todo = [run for run in freed if not _settled(run, options, result, bar)]
            for run in crashed:
                if _settled(run, options, result, bar):  # its worker died after the run had ended
                    continue
                crash_counts[run.run_id] += 1
                if crash_counts[run.run_id] < CRASHES_BEFORE_FAILED:
                    todo.append(run)  # resumes from its checkpoint
                    continue
                reason = f"its worker process died {CRASHES_BEFORE_FAILED} times (killed, or out of memory)"
                _record_crash(run, reason, stale_after)
                result.failed[run.run_id] = reason
                bar.update(1)
    table = build_results(runs, folder, analyses)
    _check_complete(result, table)
    write_results(folder, table, provenance_table(runs))
    result.results_path = folder.results_parquet
    return result


def _move_aside_a_damaged_done_checkpoint(run: SweepRun, stale_after: float) -> None:
    """A done run whose checkpoint no longer matches done.json's sha256 is redone: the analyses and
    robustness read the final model from it. (is_done compares only its size, cheaply.)"""
    directory = run.directory
    if directory.is_done():
        problem = directory.checkpoint_problem(full=True)
        if problem:
            claim = claims.try_claim(run.path, stale_after)
            if claim is not None:  # another worker holding it will see the same damage
                try:
                    move_results_aside(directory, problem)
                finally:
                    claim.release()


def _check_complete(result: SweepResult, table) -> None:
    """Refuse to write a table that lacks a run this sweep counted as done (never overwrite a
    complete table with a partial one): every run must be accounted for, and every done run in it."""
    tabled = table["run_id"].nunique()
    if result.done + len(result.failed) != result.total or tabled < result.done:
        raise SelectivityError(
            f"the results table would hold {tabled} runs but {result.done} of {result.total} runs were counted done "
            f"and {len(result.failed)} failed (another process changed run folders meanwhile?); the table was not "
            "written: expected every run done or failed, rerun the sweep")
