"""`selectivity status SWEEP`: per-run state, progress and expected time left of a sweep."""
from selectivity.claims import DEFAULT_STALE_AFTER
from selectivity.cli.options import add_set_option, check_seconds, set_assignments
from selectivity.sweep import format_status, open_sweep, parse_set_values, sweep_status


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "status", help="show a sweep's progress: done / running / failed / pending per run",
        description="Show each run of a sweep (done, running, failed with its reason, pending; corrupt runs "
                    "as pending-redo), the sweep's progress and its expected time left.")
    parser.add_argument("sweep", help="the sweep spec file, or the sweep folder")
    parser.add_argument("--store", default=None, help="the sweep folder, when SWEEP is a spec run with --store")
    add_set_option(parser, "the same --set values the sweep was run with (SWEEP a spec file)")
    parser.add_argument("--stale-after", type=float, default=DEFAULT_STALE_AFTER,
                        help="seconds without a heartbeat before a claimed run counts as not running")
    parser.set_defaults(run=run)


def run(args) -> int:
    check_seconds("--stale-after", args.stale_after)
    assignments = set_assignments(args)
    name, folder, runs, _ = open_sweep(args.sweep, args.store, parse_set_values(assignments))
    print(format_status(name, sweep_status(runs, args.stale_after)))
    return 0
