"""Which model and data a unit command (ablate, topk) works on: the same sources `measure` accepts."""
import argparse
import sys

from selectivity import model_loading
from selectivity.cli.measure_command import add_hub_sources, load_model_and_data
from selectivity.data import list_datasets
from selectivity.data.normalization import PRESETS, resolve_normalization
from selectivity.errors import SelectivityError
from selectivity.setup import resolve_device


def add_model_source_arguments(parser: argparse.ArgumentParser) -> None:
    """--run | --model | --torchvision | --timm | --hf, --model-option, --pretrained, --weights, --dataset, --data-root, --download, --normalize, --device."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", dest="run_dir", metavar="DIR", help="a run folder (config.json + checkpoint.pt)")
    source.add_argument("--model", metavar="NAME", help="a model of selectivity.models (e.g. resnet20)")
    source.add_argument("--torchvision", metavar="NAME", help="a torchvision model name (needs --weights)")
    add_hub_sources(source, parser)
    parser.add_argument("--weights", metavar="FILE", help="state_dict file, also from other code bases (as for measure)")
    parser.add_argument("--trust-checkpoint", action="store_true",
                        help="load --weights with weights_only=False if it holds other objects (runs code from the file)")
    parser.add_argument("--dataset", metavar="NAME", help=f"one of {', '.join(list_datasets())} (default: the run's)")
    parser.add_argument("--data-root", metavar="DIR", help="folder holding the dataset's files")
    parser.add_argument("--download", action="store_true", help="fetch the dataset if it is missing")
    parser.add_argument("--normalize", metavar="PRESET|MEAN,STD",
                        help=f"input statistics: dataset, {', '.join(PRESETS)} or numbers m1,m2,m3,s1,s2,s3 "
                             "(default: dataset for our models, imagenet for torchvision)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")


def load_source(args: argparse.Namespace):
    """(LoadedModel on the device, DatasetSplits, mean, std, device) for the parsed source arguments."""
    if args.run_dir and args.weights:
        raise SelectivityError("--weights cannot be used with --run; a run's weights come from its checkpoint.pt")
    if getattr(args, "hf", None) and args.weights:
        raise SelectivityError("--weights cannot be used with --hf; a Hugging Face folder holds its own weights")
    if args.dataset is None and not args.run_dir:
        raise SelectivityError(f"--dataset is required with --model/--torchvision; expected one of {', '.join(list_datasets())}")
    device = resolve_device(args.device)  # a device that is not here: one line
    loaded, data = load_model_and_data(args)
    for note in loaded.notes:  # how a foreign checkpoint was read and renamed, before any number
        print(f"weights: {note}", file=sys.stdout)
    mean, std = resolve_normalization(args.normalize or loaded.normalization, data)
    loaded.model.to(device)
    model_loading.check_output_classes(loaded.model, data, loaded.label, device)
    return loaded, data, mean, std, device
