"""`selectivity ablate`: unit ablation curves of one model (Morcos et al. 2018).

    selectivity ablate --run runs/3f2a9c1b0d4e/seed_0 --layer layer3.2.relu2 --orders si_high,si_low,random

Writes <out>/ablation.csv (one row per layer x order x draw x fraction: accuracy and
per-class recall) and ablation_summary.csv (mean curve with 95% CI over random draws, and
each curve's area), atomically. See docs/unit_toolkit.md.
"""
import argparse
import sys
from pathlib import Path

from selectivity import atomic
from selectivity.cli.model_source import add_model_source_arguments, load_source
from selectivity.errors import SelectivityError
from selectivity.units.ablation_run import AblationSettings, model_ablation_curves
from selectivity.units.ablation_summary import curve_areas, mean_curves


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("ablate", help="accuracy as a growing fraction of a layer's units is ablated",
                                   description="Ablation curves: clamp units in order (by SI, another metric, or at "
                                               "random) and measure test accuracy and per-class recall.")
    add_model_source_arguments(parser)
    defaults = AblationSettings()
    parser.add_argument("--layer", action="append", default=[], metavar="NAME",
                        help="layer to ablate (repeatable; default: every ReLU layer)")
    parser.add_argument("--orders", default=",".join(defaults.orders), help="comma-separated: random, <metric>_high/_low")
    parser.add_argument("--draws", type=int, default=defaults.draws, help="random orders (the CI is across them)")
    parser.add_argument("--fractions", default=",".join(f"{f:g}" for f in defaults.fractions))
    parser.add_argument("--clamp", choices=("zero", "mean"), default=defaults.clamp)
    parser.add_argument("--subset", type=int, default=defaults.subset, help="test inputs per evaluation")
    parser.add_argument("--train-images", type=int, default=defaults.train_images, help="inputs that rank the units")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--out", metavar="DIR", help="output folder (default: ablate-<model>-<dataset>)")
    parser.set_defaults(run=run)


def settings_from(args: argparse.Namespace) -> AblationSettings:
    try:
        fractions = tuple(float(f) for f in args.fractions.split(","))
    except ValueError:
        raise SelectivityError(f"--fractions {args.fractions!r}; expected comma-separated numbers in [0, 1]") from None
    return AblationSettings(layers=tuple(args.layer), orders=tuple(o.strip() for o in args.orders.split(",")),
                            draws=args.draws, fractions=fractions, clamp=args.clamp, subset=args.subset,
                            train_images=args.train_images, seed=args.seed, batch_size=args.batch_size)


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    loaded, data, mean, std, device = load_source(args)
    curves = model_ablation_curves(loaded.model, data, mean, std, "relu", settings, device)
    areas = curve_areas(curves)
    out = Path(args.out or f"ablate-{loaded.label}-{data.name}")
    atomic.write_table(out / "ablation.csv", curves)
    atomic.write_table(out / "ablation_summary.csv", mean_curves(curves).merge(areas, on=["layer", "order"]))
    for row in areas.itertuples(index=False):
        print(f"{row.layer}  {row.order:<24} area {row.area:.4f}", file=sys.stdout)
    print(f"wrote {out}/ablation.csv, ablation_summary.csv", file=sys.stdout)
    return 0
