"""Command-line pieces several subcommands share."""
import argparse
import sys

from selectivity.errors import SelectivityError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def parse_assignments(assignments: list[str]) -> dict:
    """["train.lr=0.05", "regularizer.alpha=0x5,-20"] -> {"train.lr": 0.05, "regularizer.alpha": "0x5,-20"}.

    Values are read as TOML (numbers, booleans, lists); anything else stays a string.
    """
    overrides = {}
    for assignment in assignments:
        key, separator, text = assignment.partition("=")
        if not separator or not key.strip():
            raise SelectivityError(f"--set {assignment!r} is not KEY=VALUE; expected e.g. --set train.lr=0.05")
        try:
            value = tomllib.loads(f"value = {text}")["value"]
        except tomllib.TOMLDecodeError:
            value = text
        overrides[key.strip()] = value
    return overrides


def add_set_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
        help="override any setting, e.g. --set train.lr=0.05 (repeatable)",
    )
