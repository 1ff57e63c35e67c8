"""`selectivity measure`: per-unit class selectivity of any model on a labelled dataset.

    selectivity measure --run runs/3f2a9c1b0d4e/seed_0
    selectivity measure --model small_cnn --weights w.pt --dataset digits
    selectivity measure --timm vit_tiny_patch16_224 --model-option img_size=32 --dataset digits \
        --layers mlp --signed positive
    selectivity measure --torchvision resnet18 --weights resnet18-f37072fd.pth \
        --dataset imagefolder --data-root ~/data/imagenette --limit 2000

Writes <out>/units.csv, units.parquet, layers.csv and summary.json (each atomically) and
prints a one-screen summary. See docs/measure.md.
"""
import argparse
import sys
import warnings
from pathlib import Path


from selectivity import atomic, model_hubs, model_loading, paths
from selectivity.capture import PRESETS as UNIT_PRESETS
from selectivity.capture import SIGNED_CHOICES, TOKEN_REDUCTIONS
from selectivity.data import DatasetSplits, LabelledImages, list_datasets, load_dataset
from selectivity.data.normalization import PRESETS, resolve_normalization
from selectivity.data.subsets import stratified_subset
from selectivity.errors import SelectivityError
from selectivity.measure import Measurement, measure_model
from selectivity.metrics.shuffles import ShuffleSettings
from selectivity.setup import resolve_device

LIMIT_SEED = 0  # --limit's sample; recorded in summary.json


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "measure", help="per-unit class selectivity of a model on a labelled dataset",
        description="Stream a labelled split through a model and write its per-unit selectivity table.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", dest="run_dir", metavar="DIR", help="a run folder (config.json + checkpoint.pt)")
    source.add_argument("--model", metavar="NAME", help="a model of selectivity.models (e.g. resnet20)")
    source.add_argument("--torchvision", metavar="NAME", help="a torchvision model name (needs --weights)")
    add_hub_sources(source, parser)
    parser.add_argument("--weights", metavar="FILE",
                        help="state_dict file, also from other code bases (module. prefixes, {'state_dict': ...}, fc/linear)")
    parser.add_argument("--trust-checkpoint", action="store_true",
                        help="load --weights with weights_only=False if it holds other objects (runs code from the file)")
    parser.add_argument("--dataset", metavar="NAME", help=f"one of {', '.join(list_datasets())} (default: the run's)")
    parser.add_argument("--data-root", metavar="DIR", help="folder holding the dataset's files")
    parser.add_argument("--download", action="store_true", help="fetch the dataset if it is missing")
    parser.add_argument("--split", choices=("test", "train"), default="test")
    parser.add_argument("--limit", type=int, metavar="N", help="measure a seeded class-stratified sample of N inputs (seed 0)")
    parser.add_argument("--layers", default="relu", help="relu | activations | mlp | blocks | comma-separated module "
                        "names or globs (name#k for one call)")
    add_unit_arguments(parser)
    parser.add_argument("--normalize", metavar="PRESET|MEAN,STD",
                        help=f"input statistics: dataset, {', '.join(PRESETS)} or numbers m1,m2,m3,s1,s2,s3 "
                             "(default: dataset for our models, imagenet for torchvision)")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--out", metavar="DIR", help="output folder (default: $SELECTIVITY_RUNS or ./runs, then "
                                                     "measure/<model>-<dataset>)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--shuffles", type=int, metavar="S",
                        help="also ROC-AUC, mutual information, lifetime sparseness and S label-shuffle nulls "
                             "(0: the metrics without nulls; see docs/unit_toolkit.md)")
    parser.add_argument("--bins", type=int, default=ShuffleSettings.bins, help="response bins per unit for AUC/MI")
    parser.add_argument("--shuffle-seed", type=int, default=0, help="seed of the label shuffles")
    parser.set_defaults(run=run)


def add_hub_sources(source, parser: argparse.ArgumentParser) -> None:
    """--timm NAME and --hf FOLDER (in the source group), --model-option KEY=VALUE, --pretrained."""
    source.add_argument("--timm", metavar="NAME", help="a timm model by name (random weights, or --weights FILE)")
    source.add_argument("--hf", metavar="FOLDER", help="a Hugging Face image classifier folder (config.json + weights)")
    parser.add_argument("--model-option", action="append", metavar="KEY=VALUE",
                        help="timm create_model keyword argument (e.g. img_size=32); repeatable")
    parser.add_argument("--pretrained", action="store_true", help="timm: download its pretrained weights")


def add_unit_arguments(parser: argparse.ArgumentParser) -> None:
    """--layouts, --tokens, --signed: how each layer's output becomes unit responses (docs/definitions.md)."""
    parser.add_argument("--layouts", metavar="PATTERN=LAYOUT,...",
                        help="declare layouts: conv | channels_last | tokens[:REDUCTION[:PREFIX]] | flat, per module "
                             "name or glob (default: what the model states, else by shape [B,C,H,W] / [B,U])")
    parser.add_argument("--tokens", choices=TOKEN_REDUCTIONS,
                        help="token reduction of token layers (default patch_mean: prefix tokens left out)")
    parser.add_argument("--signed", metavar="CHOICE|PATTERN=CHOICE,...",
                        help=f"SI on layers with negative responses: {', '.join(SIGNED_CHOICES)} (default: refuse them)")


def parse_assignments(text: str | None, flag: str):
    """"a=x,b=y" -> {"a": "x", "b": "y"}; a bare "x" (no "=") -> "x" for every layer; None -> None."""
    if text is None:
        return None
    if "=" not in text:
        return text
    pairs = [part.split("=", 1) for part in text.split(",") if part.strip()]
    if any(len(pair) != 2 or not pair[0].strip() for pair in pairs):
        raise SelectivityError(f"{flag} {text!r}; expected CHOICE or PATTERN=CHOICE,PATTERN=CHOICE")
    return {pattern.strip(): value.strip() for pattern, value in pairs}


def unit_options(args: argparse.Namespace) -> dict:
    """measure_model's layouts/tokens/signed from the parsed --layouts, --tokens, --signed."""
    return {"layouts": parse_assignments(getattr(args, "layouts", None), "--layouts"),
            "tokens": getattr(args, "tokens", None),
            "signed": parse_assignments(getattr(args, "signed", None), "--signed")}


def parse_layers(text: str) -> str | list[str]:
    """Presets stay presets; anything else is a comma-separated list of module names and globs."""
    if text in UNIT_PRESETS:
        return text
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise SelectivityError(f"--layers {text!r} names no layer; expected {', '.join(UNIT_PRESETS)} or module names")
    return names


def check_arguments(args: argparse.Namespace) -> None:
    for flag, value in (("--limit", args.limit), ("--batch-size", args.batch_size)):
        if value is not None and value < 1:
            raise SelectivityError(f"{flag} {value} is not positive; expected an integer >= 1")
    if args.trust_checkpoint and not args.weights:
        raise SelectivityError("--trust-checkpoint applies to --weights FILE; expected it only with --weights")
    if args.run_dir and args.weights:
        raise SelectivityError("--weights cannot be used with --run; a run's weights come from its checkpoint.pt")
    if args.dataset is None and not args.run_dir:
        raise SelectivityError(f"--dataset is required with --model/--torchvision; expected one of {', '.join(list_datasets())}")
    if getattr(args, "hf", None) and args.weights:
        raise SelectivityError("--weights cannot be used with --hf; a Hugging Face folder holds its own weights")


def load_model_and_data(args: argparse.Namespace) -> tuple[model_loading.LoadedModel, DatasetSplits]:
    """Read the data first: our models are sized by it (classes, input channels)."""
    config = model_loading.read_run_config(args.run_dir) if args.run_dir else None
    dataset = args.dataset or config.data.dataset
    root = args.data_root or (config.data.root if config and args.dataset is None else "") or None
    download = args.download or bool(config and config.data.download)
    data = load_dataset(dataset, root=root, download=download)
    if config is not None:
        return model_loading.load_run_model(args.run_dir, config, data), data
    if args.model:
        return model_loading.load_registry_model(args.model, data, args.weights, args.trust_checkpoint), data
    if getattr(args, "timm", None) or getattr(args, "hf", None):
        if args.timm:
            loaded, described = model_hubs.load_timm_model(
                args.timm, data.num_classes, args.weights, model_hubs.parse_model_options(args.model_option),
                args.trust_checkpoint, args.pretrained)
        else:
            loaded, described = model_hubs.load_hf_model(args.hf)
        print(f"preprocessing: {described}" + (" (overridden by --normalize)" if args.normalize else ""))
        return loaded, data
    return model_loading.load_torchvision_model(args.torchvision, args.weights, data, args.trust_checkpoint), data


def select_inputs(data: DatasetSplits, split_name: str, limit: int | None) -> LabelledImages:
    """The split to measure (`limit` inputs, class-stratified), refused when it holds fewer than 2 classes."""
    split = getattr(data, split_name)
    if limit is not None and limit < len(split):  # files are class-ordered: never the first `limit`
        split = stratified_subset(split, limit, seed=LIMIT_SEED).split
    present = int(split.labels.unique().numel())
    if present < 2:
        raise SelectivityError(
            f"the {len(split)} {split_name} inputs of {data.name} hold {present} class; SI needs at least 2 classes: "
            "expected a larger --limit or another split"
        )
    if present < data.num_classes:  # SI then compares only the classes present: say so before any number
        warnings.warn(f"the {len(split)} {split_name} inputs hold {present} of the {data.num_classes} classes "
                      f"of {data.name}; SI, mu_rest and the preferred class are over those present")
    return split


def check_layers_seen(requested: str | list[str], measurement: Measurement) -> None:
    """An explicit `name#k` past a module's calls, or a module never called, records nothing: say so."""
    if isinstance(requested, str):
        return
    measured = list(measurement.layers["layer"])
    for name in requested:
        if not any(layer == name or layer.startswith(name + "#") for layer in measured):
            raise SelectivityError(
                f"layer {name} recorded no activations in a forward pass (never called, or fewer calls than its #k); "
                f"expected layers that run, e.g. {', '.join(measured[:5])}"
            )


def summary_record(measurement: Measurement, loaded: model_loading.LoadedModel, data: DatasetSplits,
                   args: argparse.Namespace, split: LabelledImages, mean: tuple, std: tuple) -> dict:
    """Everything summary.json holds: what was measured, how, and the headline numbers."""
    return {
        "model": loaded.label,
        "dataset": data.name,
        "split": args.split,
        "num_inputs": len(split),
        "num_classes": data.num_classes,
        "classes_present": int(split.labels.unique().numel()),
        "subset": f"class-stratified, seed {LIMIT_SEED}" if len(split) < len(getattr(data, args.split))
        else "whole split",
        "inputs_per_class": {str(int(k)): int(n) for k, n in zip(*split.labels.unique(return_counts=True))},
        "layers_requested": args.layers,
        "unit_options": {"layouts": args.layouts, "tokens": args.tokens, "signed": args.signed},
        "layers": {row.layer: {"layout": row.layout, "reduction": row.reduction, "signed": row.signed}
                   for row in measurement.layers.itertuples(index=False)},
        "normalization": {"source": args.normalize or loaded.normalization, "mean": list(mean), "std": list(std)},
        "accuracy": measurement.accuracy,
        "loss": measurement.loss,
        "mean_si": measurement.mean_si,  # mean over units in a layer, then over layers
        "num_layers": len(measurement.layers),
        "num_units": len(measurement.units),
        "dead_units": int(measurement.units["dead"].sum()),
        "dead_fraction": measurement.dead_fraction,
    }


def write_outputs(out: Path, measurement: Measurement, summary: dict) -> None:
    """units.csv/.parquet, layers.csv and summary.json, each written atomically."""
    atomic.write_table(out / "units.parquet", measurement.units)
    atomic.write_table(out / "units.csv", measurement.units)
    atomic.write_table(out / "layers.csv", measurement.layers)
    atomic.write_json(out / "summary.json", summary)


def classes_text(summary: dict) -> str:
    if summary["classes_present"] == summary["num_classes"]:
        return f"{summary['num_classes']} classes"
    return f"{summary['classes_present']} of {summary['num_classes']} classes present"


def format_summary(summary: dict, measurement: Measurement, out: Path) -> str:
    """The one-screen report: headline numbers, then mean SI and dead units per layer."""
    width = max(len("layer"), *(len(name) for name in measurement.layers["layer"]))
    lines = [
        f"{summary['model']} on {summary['dataset']} {summary['split']} ({summary['num_inputs']} inputs, "
        f"{classes_text(summary)}, {summary['normalization']['source']} normalisation)",
        f"accuracy {summary['accuracy']:.4f}  loss {summary['loss']:.4f}  network mean SI {summary['mean_si']:.4f}  "
        f"dead units {summary['dead_units']}/{summary['num_units']}",
        "",
        f"{'layer':<{width}}  {'units':>6}  {'mean SI':>8}  {'dead':>5}" + ("  SI>chance" if "si_above_chance" in
                                                                             measurement.layers else ""),
    ]
    for row in measurement.layers.itertuples(index=False):
        above = f"  {row.si_above_chance:>9.1%}" if hasattr(row, "si_above_chance") else ""
        lines.append(f"{row.layer:<{width}}  {row.num_units:>6}  {row.mean_si:>8.4f}  {row.dead_units:>5}{above}")
    lines += ["", f"wrote {out}/units.csv, units.parquet, layers.csv, summary.json"]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    check_arguments(args)
    layers = parse_layers(args.layers)
    device = resolve_device(args.device)  # a device that is not here: one line
    loaded, data = load_model_and_data(args)
    # the default lies under the runs root (like `train`), never in the working directory itself
    out = atomic.check_writable(args.out or paths.runs_root() / "measure" / f"{loaded.label}-{data.name}")
    for note in loaded.notes:  # how a foreign checkpoint was read and renamed, before any number
        print(f"weights: {note}", file=sys.stdout)
    mean, std = resolve_normalization(args.normalize or loaded.normalization, data)
    model = loaded.model.to(device)
    outputs = model_loading.check_output_classes(model, data, loaded.label, device)
    if outputs > data.num_classes:  # e.g. a 1000-class head on a 10-class folder
        warnings.warn(f"model {loaded.label} has {outputs} outputs but {data.name} has {data.num_classes} classes; "
                      f"accuracy and loss are over its first {data.num_classes} outputs (dataset class i read as the "
                      "model's class i), not over the extra ones")
        model.register_forward_hook(lambda module, inputs, logits: logits[:, :data.num_classes])
    split = select_inputs(data, args.split, args.limit)
    measurement = measure_model(
        model, split, data.num_classes, mean, std, layers=layers, batch_size=args.batch_size,
        device=device, progress=not args.no_progress, description=f"measure {loaded.label}",
        shuffles=None if args.shuffles is None else ShuffleSettings(args.shuffles, args.bins, args.shuffle_seed),
        **unit_options(args),
    )
    check_layers_seen(layers, measurement)
    summary = summary_record(measurement, loaded, data, args, split, mean, std)
    write_outputs(out, measurement, summary)
    print(format_summary(summary, measurement, out), file=sys.stdout)
    return 0
