"""`selectivity measure`: per-unit class selectivity of any model on a labelled dataset.

    selectivity measure --run runs/3f2a9c1b0d4e/seed_0
    selectivity measure --model small_cnn --weights w.pt --dataset digits
    selectivity measure --timm vit_tiny_patch16_224 --model-option img_size=32 --dataset digits \
        --layers mlp --signed positive
    selectivity measure --torchvision resnet18 --weights resnet18-f37072fd.pth \
        --dataset imagefolder --data-root ~/data/imagenette --limit 2000
    selectivity measure --torchvision resnet50 --weights resnet50-11ad3fa6.pth \
        --image-tree ~/data/imagenet/val --val-labels LOC_val_solution.csv --shuffles 10

Writes <out>/units.csv, units.parquet, layers.csv and summary.json (each atomically) and
prints a one-screen summary. See docs/measure.md.
"""
import argparse
import os
import re
import sys
import warnings
from pathlib import Path


from selectivity import atomic, model_hubs, model_loading, paths
from selectivity.capture import PRESETS as UNIT_PRESETS
from selectivity.capture import SIGNED_CHOICES, TOKEN_REDUCTIONS
from selectivity.data import DatasetSplits, LabelledImages, list_datasets, load_dataset
from selectivity.data.image_tree import ImageList, list_image_tree
from selectivity.data.normalization import PRESETS, resolve_normalization
from selectivity.data.streamed import INTERPOLATIONS, Preprocessing, StreamedImages
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
    add_tree_arguments(parser)
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
                             "(0: the metrics without nulls; at most 1000; see docs/unit_toolkit.md)")
    parser.add_argument("--bins", type=int, default=ShuffleSettings.bins, help="response bins per unit for MI (3 to 1000)")
    parser.add_argument("--shuffle-seed", type=int, default=0, help="seed of the label shuffles")
    parser.set_defaults(run=run)


def add_tree_arguments(parser: argparse.ArgumentParser) -> None:
    """--image-tree DIR (streamed from disk instead of --dataset), --val-labels, --workers, --resize, --crop."""
    parser.add_argument("--image-tree", metavar="DIR",
                        help="measure an image tree streamed from disk (DIR/<class>/<image>, or a flat folder with "
                             "--val-labels): images of any size, decoded per batch; instead of --dataset")
    parser.add_argument("--val-labels", metavar="FILE",
                        help="ground truth of a flat --image-tree: '<image> <class>' lines (ImageNet's "
                             "LOC_val_solution.csv reads as is)")
    parser.add_argument("--workers", type=int, metavar="N",
                        help=f"decoding processes for --image-tree (default {default_workers()} here: half the "
                             "CPUs, at most 8; 0 decodes in this process)")
    parser.add_argument("--resize", type=int, metavar="N",
                        help="--image-tree: shorter side in pixels before the centre crop (default: the model's)")
    parser.add_argument("--crop", type=int, metavar="N", help="--image-tree: centre crop N x N (default: the model's)")
    parser.add_argument("--interpolation", choices=INTERPOLATIONS, help="--image-tree: resize filter "
                                                                         "(default: the model's, else bilinear)")


def default_workers() -> int:
    return max(1, min(8, (os.cpu_count() or 2) // 2))


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
    if args.image_tree and (args.dataset or args.data_root or args.download or args.split != "test"):
        raise SelectivityError("--image-tree is the data to measure; expected it without --dataset, --data-root, "
                               "--download and --split")
    tree_only = [flag for flag, value in (("--val-labels", args.val_labels), ("--workers", args.workers),
                                          ("--resize", args.resize), ("--crop", args.crop),
                                          ("--interpolation", args.interpolation)) if value is not None]
    if tree_only and not args.image_tree:
        raise SelectivityError(f"{', '.join(tree_only)} apply to --image-tree DIR; expected them only with it")
    for flag, value in (("--resize", args.resize), ("--crop", args.crop)):
        if value is not None and value < 1:
            raise SelectivityError(f"{flag} {value} is not positive; expected a size in pixels >= 1")
    if args.workers is not None and args.workers < 0:
        raise SelectivityError(f"--workers {args.workers} is negative; expected 0 (decode here) or more processes")
    if args.dataset is None and not args.run_dir and not args.image_tree:
        raise SelectivityError(f"--dataset is required with --model/--torchvision (or --image-tree DIR); expected "
                               f"one of {', '.join(list_datasets())}")
    if getattr(args, "hf", None) and args.weights:
        raise SelectivityError("--weights cannot be used with --hf; a Hugging Face folder holds its own weights")


def load_model_and_data(args: argparse.Namespace, data: DatasetSplits | None = None,
                        ) -> tuple[model_loading.LoadedModel, DatasetSplits]:
    """Read the data first: our models are sized by it (classes, input channels). `data` given
    (an image tree's one-image probe): the model is sized by it instead of the run's dataset."""
    config = model_loading.read_run_config(args.run_dir) if args.run_dir else None
    if data is None:
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


def check_classes_present(labels, num_classes: int, inputs: str, dataset: str, remedy: str) -> None:
    """Refuse inputs of fewer than 2 classes; warn when only some of the dataset's classes are present.

    Args:
        inputs: what was selected, e.g. "2000 test inputs".
        remedy: what to change when there is one class, e.g. "a larger --limit or another split".
    """
    present = int(labels.unique().numel())
    if present < 2:
        raise SelectivityError(f"the {inputs} of {dataset} hold {present} class; SI needs at least 2 classes: "
                               f"expected {remedy}")
    if present < num_classes:  # SI then compares only the classes present: say so before any number
        warnings.warn(f"the {inputs} hold {present} of the {num_classes} classes of {dataset}; SI, mu_rest and "
                      "the preferred class are over those present")


def tree_record(args: argparse.Namespace, listing: ImageList, split: StreamedImages, workers: int) -> dict:
    """What summary.json says of an image tree: where, how decoded, which images (the unreadable named)."""
    pre = split.preprocessing
    classes, counts = split.measured_labels().unique(return_counts=True)
    return {
        "split": "image tree",
        "image_tree": {"root": str(listing.root), "ground_truth": args.val_labels, "images_listed": len(listing),
                       "unreadable": list(split.unreadable), "workers": workers},
        "num_inputs": len(split) - len(split.unreadable),
        "subset": f"class-stratified by path hash, seed {LIMIT_SEED}" if len(split) < len(listing) else "whole tree",
        "inputs_per_class": {str(int(k)): int(n) for k, n in zip(classes, counts)},
        "classes_present": len(classes),
        "preprocessing": {"resize": pre.resize, "crop": pre.crop, "interpolation": pre.interpolation,
                          "squash": pre.squash},
        "class_names": list(listing.class_names),
    }


def select_inputs(data: DatasetSplits, split_name: str, limit: int | None) -> LabelledImages:
    """The split to measure (`limit` inputs, class-stratified), refused when it holds fewer than 2 classes."""
    split = getattr(data, split_name)
    if limit is not None and limit < len(split):  # files are class-ordered: never the first `limit`
        split = stratified_subset(split, limit, seed=LIMIT_SEED).split
    check_classes_present(split.labels, data.num_classes, f"{len(split)} {split_name} inputs", data.name,
                          "a larger --limit or another split")
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


def spill_folder(out: Path, shuffles: int | None) -> str | None:
    """The shuffled metrics spill each input's responses (N x units x 4 bytes: 4.5 GB for ResNet50 on
    ImageNet val) beside the outputs, not into a small temp filesystem; the spill is removed at the end.
    Without shuffles nothing spills and nothing is created before the outputs."""
    if shuffles is None:
        return None
    out.mkdir(parents=True, exist_ok=True)
    return str(out)


def write_outputs(out: Path, measurement: Measurement, summary: dict) -> None:
    """units.csv/.parquet, layers.csv and summary.json, each written atomically, summary.json last:
    a folder holds a complete measurement exactly when it has summary.json, so an interrupted
    rewrite never pairs an old summary with new tables (a rerun starts the pass again)."""
    (out / "summary.json").unlink(missing_ok=True)
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


def tree_preprocessing(args: argparse.Namespace, stated: Preprocessing | None, label: str) -> Preprocessing:
    """The model's stated transform with --resize/--crop/--interpolation (and --normalize) over it."""
    if stated is None and args.crop is None:
        raise SelectivityError(f"model {label} states no input size; expected --crop N (and --resize N) for "
                               "--image-tree, e.g. --resize 36 --crop 32 for a CIFAR-sized model")
    base = stated or Preprocessing(resize=args.crop, crop=args.crop)
    crop = args.crop or base.crop
    resize = args.resize or (base.resize if args.crop is None else max(crop, round(crop * base.resize / base.crop)))
    return Preprocessing(resize, crop, base.mean, base.std, args.interpolation or base.interpolation,
                         squash=base.squash and args.resize is None)


def load_tree(args: argparse.Namespace) -> tuple[model_loading.LoadedModel, StreamedImages, ImageList]:
    """An image tree's listing, the model (sized by the tree's classes) and the streamed split,
    decoded with the model's transform. Nothing is decoded but one probe image until the pass."""
    listing = list_image_tree(args.image_tree, args.val_labels)
    measured = listing.stratified(args.limit, LIMIT_SEED) if args.limit else listing
    name = "imagetree-" + re.sub(r"[^A-Za-z0-9._-]", "_", listing.root.resolve().name or "root")
    crop = args.crop or 224  # a provisional size: the model is only sized (classes, channels) by this probe
    probe = StreamedImages(measured, Preprocessing(max(crop, args.resize or crop), crop), name).probe_splits()
    loaded, _ = load_model_and_data(args, probe)
    if loaded.normalization == "dataset" and not args.normalize:
        raise SelectivityError(f"model {loaded.label} was trained with its dataset's own mean/std, which an image "
                               "tree does not state; expected --normalize PRESET|MEAN,STD (e.g. cifar10)")
    preprocessing = tree_preprocessing(args, loaded.preprocessing, loaded.label)
    print(f"image tree: {len(listing)} images of {len(listing.class_names)} classes in {listing.root}"
          + (f", measuring a class-stratified {len(measured)} (seed {LIMIT_SEED})" if len(measured) < len(listing)
             else "") + f"; {preprocessing.describe()} ({loaded.preprocessing_source or 'the flags'})")
    return loaded, StreamedImages(measured, preprocessing, name), listing


def run(args: argparse.Namespace) -> int:
    check_arguments(args)
    layers = parse_layers(args.layers)
    device = resolve_device(args.device)  # a device that is not here: one line
    listing = None
    if args.image_tree:
        loaded, split, listing = load_tree(args)
        data = split.probe_splits()  # one decoded image: sizes and checks the model, gives the tree's classes
    else:
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
    if listing is None:
        split = select_inputs(data, args.split, args.limit)
    else:
        check_classes_present(split.labels, data.num_classes, f"{len(split)} inputs", data.name, "a larger --limit")
    workers = default_workers() if args.workers is None else args.workers
    shuffles = None if args.shuffles is None else ShuffleSettings(args.shuffles, args.bins, args.shuffle_seed)
    existed = out.exists()
    try:
        measurement = measure_model(
            model, split, data.num_classes, mean, std, layers=layers, batch_size=args.batch_size,
            device=device, progress=not args.no_progress, description=f"measure {loaded.label}", shuffles=shuffles,
            workers=workers if listing is not None else 0, spill_dir=spill_folder(out, args.shuffles),
            **unit_options(args),
        )
        check_layers_seen(layers, measurement)
    except BaseException:
        if not existed and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # the spill's folder, made for this run: a failed run leaves no empty output folder
        raise
    summary = summary_record(measurement, loaded, data, args, split, mean, std)
    if listing is not None:
        summary.update(tree_record(args, listing, split, workers))
    write_outputs(out, measurement, summary)
    print(format_summary(summary, measurement, out), file=sys.stdout)
    return 0
