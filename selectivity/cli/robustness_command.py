"""`selectivity robustness`: the corruptions / attacks / dimensionality analyses of one run folder.

    selectivity robustness runs/3f2a9c1b0d4e/seed_0 --analysis attacks --set images=200 'attacks.eps_255=[0,1]'

The post-sweep analyses of docs/robustness.md on one trained run, without a sweep. Settings as
in a sweep spec's [analysis_settings.<name>]: `--set KEY=VALUE` sets KEY for every chosen
analysis that has it, `--set ANALYSIS.KEY=VALUE` for that one. Writes the tidy rows (analysis,
run_dir, seed, layer, metric, value) to --out, atomically, and prints the network rows.
"""
import argparse
import sys
import time
from pathlib import Path

import pandas as pd

from selectivity import atomic
from selectivity.cli.options import add_set_option, set_assignments
from selectivity.config import parse_assignments
from selectivity.errors import SelectivityError
from selectivity.sweep.robustness_analyses import DEFAULTS, analyse_run, resolve_settings

ANALYSES = tuple(DEFAULTS)  # corruptions, attacks, dimensionality


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("robustness", help="corruption, attack and dimensionality analyses of one run",
                                   description="Accuracy under common corruptions and white-box attacks, and "
                                               "per-layer dimensionality, of one trained run (docs/robustness.md).")
    parser.add_argument("run_dir", metavar="RUN", help="a run folder written by `selectivity train` or a sweep")
    parser.add_argument("--analysis", action="append", choices=ANALYSES, metavar="NAME",
                        help=f"one of {', '.join(ANALYSES)} (repeatable; default: all three)")
    add_set_option(parser, "a setting (images=200) for every chosen analysis that has it, or for one "
                           "(attacks.eps_255=[0,1])")
    parser.add_argument("--out", metavar="CSV", help="output table (default: robustness-<hash>-<seed folder>.csv)")
    parser.set_defaults(run=run)


def settings_by_analysis(analyses: tuple[str, ...], assignments: list[str]) -> dict[str, dict]:
    """{analysis: settings} from --set assignments; a key no chosen analysis has is a one-line error."""
    settings = {name: {} for name in analyses}
    for key, value in parse_assignments(assignments).items():
        prefix, dot, name = key.partition(".")
        if dot:
            if prefix not in settings:
                raise SelectivityError(f"--set {key}: {prefix!r} is not a chosen analysis; expected one of "
                                       f"{', '.join(analyses)}")
            targets = [prefix]
        else:
            name, targets = key, [analysis for analysis in analyses if key in DEFAULTS[analysis]]
            if not targets:
                valid = sorted({k for analysis in analyses for k in DEFAULTS[analysis]})
                raise SelectivityError(f"--set {key}: no chosen analysis has this setting; expected one of "
                                       f"{', '.join(valid)}")
        for target in targets:
            settings[target][name] = value
    for analysis, values in settings.items():  # unknown keys and wrong types, before any work
        resolve_settings(analysis, values)
    return settings


def run(args: argparse.Namespace) -> int:
    analyses = tuple(dict.fromkeys(args.analysis or ANALYSES))
    settings = settings_by_analysis(analyses, set_assignments(args))
    run_dir = Path(args.run_dir)
    out = Path(args.out or f"robustness-{run_dir.resolve().parent.name}-{run_dir.resolve().name}.csv")
    frames = []
    for analysis in analyses:
        start = time.perf_counter()
        rows = analyse_run(run_dir, analysis, settings[analysis])
        print(f"analysis {analysis}: {len(rows)} rows in {time.perf_counter() - start:.0f} s", file=sys.stderr)
        frames.append(rows.assign(analysis=analysis))
        table = pd.concat(frames, ignore_index=True)[["analysis", "run_dir", "seed", "layer", "metric", "value"]]
        atomic.write_table(out, table)  # after each analysis, so an interrupted run keeps what is finished
    for row in table[table["layer"] == "network"].itertuples(index=False):
        print(f"{row.analysis:<15} {row.metric:<40} {row.value:.4f}")
    print(f"wrote {out}")
    return 0
