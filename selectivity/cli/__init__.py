"""The `selectivity` command: one subcommand per job (measure, train, sweep, status, report, compare, robustness, ablate,
topk)."""
import argparse
import importlib
import os
import sys
import warnings

from selectivity import __version__
from selectivity.errors import SelectivityError

# Each module defines add_parser(subparsers), which registers its subcommand and sets `run`.
SUBCOMMANDS = ("measure", "train", "sweep", "status", "report", "compare", "robustness", "ablate", "topk")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="selectivity",
        description="Measure and causally control the class selectivity of units in deep networks.",
    )
    parser.add_argument("--version", action="version", version=f"selectivity {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"selectivity.cli.{name}_command").add_parser(subparsers)
    return parser


def one_line_warnings(command: str):
    """A warnings.showwarning that prints `selectivity <command>: warning: <message>` on one line.

    Python's default adds the file, line number and source line of the call, which name our
    code rather than what the user should do.
    """
    def show(message, category, filename, lineno, file=None, line=None):
        print(f"selectivity {command}: warning: {message}", file=sys.stderr)

    return show


def end_progress_bars() -> None:
    """Close every open tqdm bar, so an error line starts on a line of its own (not after a bar)."""
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 0
    try:
        with warnings.catch_warnings():
            warnings.showwarning = one_line_warnings(args.command)
            code = int(args.run(args) or 0)
        sys.stdout.flush()  # here, so a closed pipe is reported below and not at exit
        return code
    except BrokenPipeError:  # `selectivity status | head`: the reader left; that is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 141  # 128 + SIGPIPE, as for any program whose pipe was closed
    except SelectivityError as error:
        end_progress_bars()
        print(f"selectivity {args.command}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a full disk, a folder that cannot be written: one line, not a traceback
        end_progress_bars()
        print(f"selectivity {args.command}: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:
        print(f"selectivity {args.command}: interrupted; finished work is saved and a rerun resumes", file=sys.stderr)
        return getattr(interrupt, "exit_code", 130)  # 143 for a sweep stopped by SIGTERM


if __name__ == "__main__":
    sys.exit(main())
