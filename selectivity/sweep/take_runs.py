"""Worker mode (`selectivity sweep SPEC --max-runs K`) and the plan of `--dry-run`.

A worker takes at most K runs that nobody holds, trains them (through any executor), and
exits: a run claimed by another live process is skipped, never waited for, so many workers
(e.g. the tasks of an `sbatch --array`) can share one sweep folder. The claims keep two
workers off one run; a run whose worker was killed resumes from its checkpoint in the next
worker that takes it. The worker that finds the whole grid done or failed writes the
table; otherwise `selectivity sweep SPEC --collect DIR` builds it from the runs done.
"""
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from selectivity.errors import SelectivityError
from selectivity.sweep.layout import SweepFolder, SweepRun
from selectivity.sweep.provenance import provenance_table
from selectivity.sweep.results import build_results, write_results
from selectivity.sweep.run_state import run_state
from selectivity.sweep.worker import RunOutcome, RunTask

NOT_OURS = ("busy", "lost", "already_done")  # another process holds, took over, or finished the run


@dataclass
class TakeResult:
    total: int
    taken: dict[str, RunOutcome] = field(default_factory=dict)  # run_id -> outcome of the runs this worker ran
    skipped: int = 0  # runs held by other processes when this worker reached them
    results_path: Path | None = None  # written only when every run of the grid is done or failed

    @property
    def exit_code(self) -> int:
        """Runs this worker ran that failed or died, capped at 100 (0: all it took are done)."""
        return min(sum(outcome.status in ("failed", "crashed") for outcome in self.taken.values()), 100)


def plan(runs: list[SweepRun], stale_after: float, retry_failed: bool) -> list[tuple[SweepRun, str, str]]:
    """(run, action, why) for every run: action is "run" or "skip"; reads folders, claims nothing."""
    rows = []
    for run in runs:
        state = run_state(run.directory, stale_after)
        if state.state == "done":
            rows.append((run, "skip", "done"))
        elif state.state == "running":
            rows.append((run, "skip", f"held by {state.detail}"))
        elif state.state == "failed" and not retry_failed:
            rows.append((run, "skip", f"failed: {state.detail} (--retry-failed reruns it)"))
        else:
            why = {"interrupted": "resume from its checkpoint", "corrupt": f"redo ({state.detail})",
                   "failed": "retry the failed run"}.get(state.state, "start")
            rows.append((run, "run", why))
    return rows


def plan_text(runs: list[SweepRun], stale_after: float, retry_failed: bool, max_runs: int | None) -> str:
    """What `--dry-run` prints: one line per run, the first max_runs runnable ones marked 'would run'."""
    lines, chosen = [], 0
    for run, action, why in plan(runs, stale_after, retry_failed):
        if action == "run" and (max_runs is None or chosen < max_runs):
            chosen += 1
            lines.append(f"would run  {run.run_id} alpha={run.alpha_label} seed={run.config.seed}: {why}")
        elif action == "run":
            lines.append(f"left       {run.run_id} alpha={run.alpha_label} seed={run.config.seed}: "
                         f"{why} (beyond --max-runs {max_runs})")
        else:
            lines.append(f"skip       {run.run_id} alpha={run.alpha_label} seed={run.config.seed}: {why}")
    lines.append(f"{chosen} of {len(runs)} runs would run (dry run: nothing trained or claimed)")
    return "\n".join(lines)


def take_runs(name: str, folder: SweepFolder, runs: list[SweepRun], executor, max_runs: int, analyses=(),
              retry_failed: bool = False, stale_after: float = 600.0, trainer: str = "selectivity.train:train_run",
              log=print) -> TakeResult:
    """Train at most `max_runs` runs nobody holds, skipping held ones; write the table if the grid is complete."""
    if isinstance(max_runs, bool) or not isinstance(max_runs, int) or max_runs < 1:
        raise SelectivityError(f"--max-runs {max_runs!r} is out of range; expected an integer >= 1")
    folder = SweepFolder(folder.path.resolve())
    runs = [SweepRun(run.config, run.alpha_label, run.path.resolve()) for run in runs]
    folder.write_manifest(name, runs, analyses)
    result = TakeResult(total=len(runs))
    planned = plan(runs, stale_after, retry_failed)
    candidates = [run for run, action, _ in planned if action == "run"]
    result.skipped = sum(why.startswith("held by") for _, _, why in planned)
    while candidates and len(result.taken) < max_runs:
        batch = candidates[:max_runs - len(result.taken)]
        candidates = candidates[len(batch):]
        tasks = [RunTask(config=run.config, path=str(run.path), run_id=run.run_id, alpha_label=run.alpha_label,
                         sweep_path=str(folder.path), index=len(result.taken) + i + 1, total=max_runs,
                         stale_after=stale_after, retry_failed=retry_failed, threads=executor.threads_per_run,
                         device=executor.device_for(i), trainer=trainer) for i, run in enumerate(batch)]
        with closing(executor.run(tasks)) as outcomes:
            for outcome in outcomes:
                if outcome.status in NOT_OURS:
                    result.skipped += 1
                    continue
                result.taken[outcome.run_id] = outcome
                reason = f": {outcome.reason}" if outcome.reason else ""
                log(f"finish {outcome.run_id}: {outcome.status}{reason}")
    states = [run_state(run.directory, stale_after).state for run in runs]
    if all(state in ("done", "failed") for state in states):
        write_results(folder, build_results(runs, folder, analyses), provenance_table(runs))
        result.results_path = folder.results_parquet
    return result
