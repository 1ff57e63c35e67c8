"""`selectivity report SWEEP`: the paper's figures and tables from a sweep's results table."""
from pathlib import Path


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "report", help="write the figures, tables and HTML/Markdown page of a (partly) finished sweep",
        description="Reads SWEEP/results.parquet (or a results .parquet/.csv file); never trains.",
    )
    parser.add_argument("sweep", type=Path, help="a sweep folder, or its results.parquet / results.csv")
    parser.add_argument("--out", type=Path, help="output folder (default: SWEEP/report)")
    parser.set_defaults(run=run)


def run(args) -> int:
    from selectivity.report import report_sweep

    page = report_sweep(args.sweep, args.out)
    print(f"report: {page}")
    return 0
