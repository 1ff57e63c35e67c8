"""Command-line pieces several subcommands share."""
import argparse
import math

from selectivity.errors import SelectivityError


SET_HELP = ("one or more KEY=VALUE per flag, the flag repeatable (--set a=1 b=2 and --set a=1 --set b=2 are "
            "the same; put positional arguments before it)")


def add_set_option(parser: argparse.ArgumentParser, what: str = "override any setting, e.g. train.lr=0.05") -> None:
    """--set KEY=VALUE [KEY=VALUE ...], repeatable: the same syntax in every command that has it.

    Read the values with set_assignments(args) (then selectivity.config.parse_assignments).
    """
    parser.add_argument("--set", dest="assignments", action="append", nargs="+", default=[], metavar="KEY=VALUE",
                        help=f"{what}; {SET_HELP}")


def set_assignments(args) -> list[str]:
    """Every KEY=VALUE given to --set, in order, however the flags grouped them."""
    return [assignment for group in args.assignments for assignment in group]


def check_seconds(flag: str, value: float) -> None:
    """A duration flag (e.g. --stale-after) must be a finite number of seconds > 0."""
    if not (math.isfinite(value) and value > 0):
        raise SelectivityError(f"{flag} {value} is out of range; expected seconds > 0")
