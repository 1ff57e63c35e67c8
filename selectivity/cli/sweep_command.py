"""`selectivity sweep SPEC`: run every run of an alpha x seed sweep that is not done yet."""
import shlex
import sys
from pathlib import Path

from selectivity.atomic import check_writable, write_table
from selectivity.claims import DEFAULT_STALE_AFTER
from selectivity.cli.options import add_set_option, check_seconds, set_assignments
from selectivity.cli.report_command import DEFAULT_MARGIN_POINTS
from selectivity.sweep import build_results, make_executor, open_sweep, parse_set_values, run_sweep
from selectivity.sweep.executors import RUNS_PER_GPU
from selectivity.sweep.provenance import PROVENANCE_FILE, provenance_table
from selectivity.errors import SelectivityError
from selectivity.sweep.stopping import stop_on_signals
from selectivity.sweep.take_runs import plan_text, take_runs
from selectivity.sweep.worker import DEFAULT_TRAINER, load_trainer


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "sweep", help="run an alpha x seed sweep (resumable; local processes or Ray)",
        description="Expand a sweep spec into runs, run those not done, and write results.parquet and "
                    "results.csv in the sweep folder. Exit code: the number of failed runs (0: all done).")
    parser.add_argument("spec", help="sweep spec file (TOML; see docs/sweeps.md), or a sweep folder to rerun "
                                     "the grid recorded in its sweep.json")
    parser.add_argument("--executor", choices=("local", "ray", "submitit"), default="local",
                        help="where runs execute (submitit: a SLURM job array, see docs/sweeps.md)")
    parser.add_argument("--workers", type=int, default=None,
                        help="local: concurrent runs (default: one per 2 CPU cores, or --runs-per-gpu per GPU; "
                             "0 runs them one by one in this process)")
    parser.add_argument("--address", default=None, help="ray: cluster address ('auto' joins a running one)")
    parser.add_argument("--runs-per-gpu", type=int, default=RUNS_PER_GPU, help="concurrent runs sharing a GPU")
    parser.add_argument("--cpus-per-run", type=int, default=None,
                        help="ray: CPUs per run (default 1 with GPUs, else 2)")
    parser.add_argument("--store", default=None, help="the sweep folder (default: $SELECTIVITY_RUNS or ./runs, "
                                                      "then the sweep's name); ignored when SPEC is a folder")
    add_set_option(parser, "override a spec key (seeds=2) or a config setting (train.epochs=3)")
    parser.add_argument("--retry-failed", action="store_true", help="rerun runs that failed before")
    parser.add_argument("--stale-after", type=float, default=DEFAULT_STALE_AFTER,
                        help="seconds without a heartbeat before another worker's claim is taken over")
    parser.add_argument("--trainer", default=DEFAULT_TRAINER, help="MODULE:FUNCTION that trains one run")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (lines per run stay)")
    parser.add_argument("--report", action="store_true",
                        help="then write the report (figures, tables, HTML) into the sweep folder's report/")
    parser.add_argument("--collect", default=None, metavar="DIR",
                        help="train nothing: write results.parquet / results.csv of the runs already done (and "
                             "the spec's analyses of them) into DIR, e.g. to publish part of a sweep that is still "
                             "running; the runs not done are listed, never guessed")
    parser.add_argument("--report-margin", type=float, default=DEFAULT_MARGIN_POINTS, metavar="POINTS",
                        help="with --report: the accuracy margin of the 'no loss' verdicts (see "
                             "`selectivity report --margin`; default %(default)s)")
    parser.add_argument("--max-runs", type=int, default=None, metavar="K",
                        help="worker mode: train at most K runs nobody holds, skip runs other processes hold "
                             "(never wait for them) and exit; the table is written once the grid is complete")
    parser.add_argument("--dry-run", action="store_true",
                        help="list what would run (and what is skipped, and why); trains and claims nothing")
    add_submitit_arguments(parser)
    parser.set_defaults(run=run)


def add_submitit_arguments(parser) -> None:
    group = parser.add_argument_group("submitit executor (SLURM job arrays)")
    group.add_argument("--cluster", choices=("slurm", "local", "debug"), default=None,
                       help="submitit: where the array runs (default: SLURM when sbatch is here, else local processes)")
    group.add_argument("--submitit-folder", default=None, metavar="DIR",
                       help="submitit: pickles and task logs (default: SWEEP_FOLDER/submitit; on shared storage)")
    group.add_argument("--timeout-min", type=int, default=60, help="submitit: each task's time limit in minutes")
    group.add_argument("--partition", default=None, help="submitit: the SLURM partition")
    group.add_argument("--gpus-per-run", type=int, default=0, help="submitit: GPUs per array task")
    group.add_argument("--array-parallelism", type=int, default=256,
                       help="submitit: at most this many array tasks at once")


def _resume_command(args) -> str:
    words = ["selectivity", "sweep", args.spec, "--executor", args.executor]
    words += ["--store", args.store] if args.store else []
    words += [word for group in args.assignments for assignment in group for word in ("--set", assignment)]
    return " ".join(shlex.quote(word) for word in words)


def run(args) -> int:
    with stop_on_signals():  # Ctrl-C (130) and a scheduler's SIGTERM (143) stop the sweep within seconds
        return _sweep(args)


def check_arguments(args) -> None:
    """Numeric flags in range: a one-line error before any run starts."""
    # --workers is checked by make_executor (0 runs inline, negative is refused there)
    for flag, value, low in (("--runs-per-gpu", args.runs_per_gpu, 1), ("--cpus-per-run", args.cpus_per_run, 1)):
        if value is not None and value < low:
            raise SelectivityError(f"{flag} {value} is out of range; expected an integer >= {low}")
    check_seconds("--stale-after", args.stale_after)
    from selectivity.report.comparison import check_margin  # numpy/scipy: not for --help

    try:
        check_margin(args.report_margin)  # before the grid trains, not when the report is written
    except SelectivityError as error:
        raise SelectivityError(f"--report-margin: {error}") from None


def check_runs_can_start(runs, trainer: str) -> None:
    """Refuse, before any run, a trainer that does not load or a device that is not here."""
    if trainer != DEFAULT_TRAINER:  # the default is ours; importing it would load torch into the driver
        load_trainer(trainer)
    for device in sorted({run.config.device for run in runs} - {"auto", "cpu"}):
        from selectivity.setup import resolve_device  # torch: only when a run names a GPU

        resolve_device(device)


def _sweep(args) -> int:
    check_arguments(args)
    assignments = set_assignments(args)
    name, folder, runs, analyses = open_sweep(args.spec, args.store, parse_set_values(assignments))
    if args.collect:
        return _collect(name, folder, runs, analyses, Path(args.collect), args.report, args.report_margin)
    if args.max_runs is not None and args.max_runs < 1:
        raise SelectivityError(f"--max-runs {args.max_runs} is out of range; expected an integer >= 1")
    if args.dry_run:
        print(f"sweep {name}: {len(runs)} runs in {folder.path}")
        print(plan_text(runs, args.stale_after, args.retry_failed, args.max_runs))
        return 0
    check_runs_can_start(runs, args.trainer)
    check_writable(folder.path)  # before any run starts
    submitit_options = {"folder": Path(args.submitit_folder or folder.path / "submitit"), "cluster": args.cluster,
                        "timeout_min": args.timeout_min, "partition": args.partition,
                        "gpus_per_run": args.gpus_per_run, "array_parallelism": args.array_parallelism}
    executor = make_executor(args.executor, workers=args.workers, address=args.address,
                             runs_per_gpu=args.runs_per_gpu, cpus_per_run=args.cpus_per_run,
                             submitit_options=submitit_options)
    if args.max_runs is not None:
        try:
            return _work(name, folder, runs, analyses, executor, args)
        finally:
            executor.close()
    alphas, seeds = len({run.alpha_label for run in runs}), len({run.config.seed for run in runs})
    print(f"sweep {name}: {alphas} alphas x {seeds} seeds = {len(runs)} runs in {folder.path}", flush=True)
    try:
        result = run_sweep(name, folder, runs, executor, analyses, retry_failed=args.retry_failed,
                           stale_after=args.stale_after, progress=not args.no_progress, trainer=args.trainer)
    except KeyboardInterrupt as interrupt:
        print(f"sweep {name}: interrupted; finished runs and checkpoints are kept. "
              f"Resume with: {_resume_command(args)}", file=sys.stderr)
        return getattr(interrupt, "exit_code", 130)
    finally:
        executor.close()
    print(f"sweep {name}: {result.done} of {result.total} done, {len(result.failed)} failed; "
          f"results: {result.results_path}")
    for run_id, reason in result.failed.items():
        print(f"  failed {run_id}: {reason}")
    if result.done:
        _summarize(folder.path, args.report, args.report_margin)
    return result.exit_code


def _work(name, folder, runs, analyses, executor, args) -> int:
    """`--max-runs K`: this process trains at most K free runs and exits (see selectivity.sweep.take_runs)."""
    result = take_runs(name, folder, runs, executor, args.max_runs, analyses, retry_failed=args.retry_failed,
                       stale_after=args.stale_after, trainer=args.trainer)
    print(f"sweep {name}: this worker ran {len(result.taken)} of {result.total} runs "
          f"({result.skipped} skipped: held by other workers)")
    if result.results_path is not None:
        print(f"sweep {name}: every run is done or failed; results: {result.results_path}")
    else:
        print(f"sweep {name}: runs are left for other workers; once they finish, build the table with: "
              f"selectivity sweep {shlex.quote(args.spec)} --collect DIR")
    return result.exit_code


def _collect(name, folder, runs, analyses, out_dir: Path, report: bool, margin: float) -> int:
    """`--collect DIR`: the results of the done runs only, written to DIR; no run is started or claimed.

    Reads only finished run folders (done.json is written last, atomically), so it is safe
    beside a sweep that is still training in the same folder, whose own table it never touches.
    """
    out_dir = check_writable(out_dir)
    table = build_results(runs, folder, analyses)  # reads only the runs that are done
    collected = set(table["run_id"])
    left_out = [run for run in runs if run.run_id not in collected]
    if len(left_out) == len(runs):
        raise SelectivityError(f"sweep {name}: no run in {folder.path} is done yet; expected at least one to collect")
    out_dir.mkdir(parents=True, exist_ok=True)
    for file_name in ("results.parquet", "results.csv"):
        write_table(out_dir / file_name, table)
    write_table(out_dir / PROVENANCE_FILE, provenance_table(runs))  # what each run was made with
    print(f"sweep {name}: collected {len(runs) - len(left_out)} of {len(runs)} runs into {out_dir} (nothing trained)")
    for run in left_out:
        print(f"  not collected (not done): {run.run_id} alpha={run.alpha_label} seed={run.config.seed}")
    _summarize(out_dir, report, margin)
    return 0


def _summarize(sweep_folder, write_report: bool, margin: float) -> None:
    """Print the per-alpha table (mean ± std over seeds) and, if asked, write the report."""
    from selectivity.report import load_results, report_sweep
    from selectivity.report.console import alpha_summary_text

    print(alpha_summary_text(load_results(sweep_folder)))
    if write_report:
        print(f"report: {report_sweep(sweep_folder, margin=margin)}")
