"""Command-line pieces several subcommands share."""
import argparse


def add_set_option(parser: argparse.ArgumentParser) -> None:
    """--set KEY=VALUE (repeatable), parsed with selectivity.config.parse_assignments."""
    parser.add_argument(
        "--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
        help="override any setting, e.g. --set train.lr=0.05 (repeatable)",
    )
