"""Command-line pieces several subcommands share."""
import argparse
import math

from selectivity.errors import SelectivityError


def add_set_option(parser: argparse.ArgumentParser) -> None:
    """--set KEY=VALUE (repeatable), parsed with selectivity.config.parse_assignments."""
    parser.add_argument(
        "--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
        help="override any setting, e.g. --set train.lr=0.05 (repeatable)",
    )


def check_seconds(flag: str, value: float) -> None:
    """A duration flag (e.g. --stale-after) must be a finite number of seconds > 0."""
    if not (math.isfinite(value) and value > 0):
        raise SelectivityError(f"{flag} {value} is out of range; expected seconds > 0")
