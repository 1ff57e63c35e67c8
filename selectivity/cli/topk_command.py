"""`selectivity topk`: the inputs that drive one unit most and least, as a labelled image grid.

    selectivity topk --run runs/3f2a9c1b0d4e/seed_0 --layer layer3.2.relu2 --unit 17 --k 16

Writes a PNG (default topk-<model>-<layer>-<unit>.png) and prints the classes of the top k.
"""
import argparse
import sys
from collections import Counter

from selectivity.cli.measure_command import select_inputs
from selectivity.cli.model_source import add_model_source_arguments, load_source
from selectivity.errors import SelectivityError
from selectivity.units.topk import unit_responses, write_topk_grid


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("topk", help="the k inputs that drive a unit most and least, as an image grid",
                                   description="Write a PNG of a unit's top-k and bottom-k inputs with class labels.")
    add_model_source_arguments(parser)
    parser.add_argument("--layer", required=True, metavar="NAME", help="module name (name#k for one call)")
    parser.add_argument("--unit", required=True, type=int, metavar="N", help="unit (channel) index in the layer")
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--split", choices=("test", "train"), default="test")
    parser.add_argument("--limit", type=int, metavar="N", help="search a seeded class-stratified sample of N inputs (seed 0)")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--out", metavar="FILE", help="PNG path")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    for flag, value in (("--k", args.k), ("--limit", args.limit), ("--batch-size", args.batch_size)):
        if value is not None and value < 1:
            raise SelectivityError(f"{flag} {value} is not positive; expected an integer >= 1")
    loaded, data, mean, std, device = load_source(args)
    split = select_inputs(data, args.split, args.limit)
    responses = unit_responses(loaded.model, split, mean, std, args.layer, [args.unit], args.batch_size, device)
    responses = responses[:, 0].numpy()
    out = args.out or f"topk-{loaded.label}-{args.layer}-{args.unit}.png"
    title = f"{loaded.label} {args.layer} unit {args.unit} on {data.name} {args.split}"
    top, _ = write_topk_grid(out, split, responses, min(args.k, len(split)), data.class_names, title)
    counts = Counter(data.class_names[int(split.labels[i])] for i in top)
    print(f"top {len(top)} classes: " + ", ".join(f"{name} x{n}" for name, n in counts.most_common()), file=sys.stdout)
    print(f"wrote {out}", file=sys.stdout)
    return 0
