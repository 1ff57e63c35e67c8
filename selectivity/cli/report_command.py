"""`selectivity report SWEEP`: the paper's figures and tables from a sweep's results table."""
from pathlib import Path

DEFAULT_MARGIN_POINTS = 0.5  # selectivity.report.comparison's; repeated so `--help` needs no scipy import


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "report", help="write the figures, tables and HTML/Markdown page of a (partly) finished sweep",
        description="Reads SWEEP/results.parquet (or a results .parquet/.csv file); never trains.",
    )
    parser.add_argument("sweep", type=Path, help="a sweep folder, or its results.parquet / results.csv")
    parser.add_argument("--out", type=Path, help="output folder (default: SWEEP/report)")
    parser.add_argument("--margin", type=float, default=DEFAULT_MARGIN_POINTS, metavar="POINTS",
                        help="test-accuracy loss (percentage points) that still counts as 'no loss': a condition "
                             "shows no loss when the Welch 95%% CI of its difference from alpha=0 lies above "
                             "-POINTS (default %(default)s)")
    parser.set_defaults(run=run)


def run(args) -> int:
    from selectivity.report import report_sweep

    page = report_sweep(args.sweep, args.out, margin=args.margin)
    print(f"report: {page}")
    return 0
