"""What do the label-shuffle nulls cost? `measure` with S shuffles against plain `measure`.

    python benchmarks/null_speed.py [--device auto|cpu|cuda] [--images N] [--shuffles 10] [--repeats 3]

Times `measure_model` on ResNet20 (every ReLU layer, CIFAR-sized random uint8 images,
random labels) twice per repeat, interleaved after a one-batch warm-up of each: plain (SI,
d', accuracy, loss) and with `ShuffleSettings(shuffles=S)` (also ROC-AUC, mutual
information, lifetime sparseness, and S label shuffles of every null metric, from the same
pass). Reports the median ratio. Target (issue 14): ratio < 2 on the CPU. Prints one JSON object.
"""
import argparse
import json
import statistics

import torch

from machine import describe_machine
from measure_speed import CIFAR_MEAN, CIFAR_STD, NUM_CLASSES, timed
from selectivity.data import LabelledImages
from selectivity.measure import measure_model
from selectivity.metrics.shuffles import ShuffleSettings
from selectivity.models import create_model
from selectivity.setup import resolve_device


def measurement(model, split, batch_size, device, shuffles) -> None:
    measure_model(model, split, NUM_CLASSES, CIFAR_MEAN, CIFAR_STD, layers="relu", batch_size=batch_size,
                  device=device, shuffles=shuffles)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--shuffles", type=int, default=10)
    parser.add_argument("--bins", type=int, default=ShuffleSettings.bins)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (args.images, 3, 32, 32), dtype=torch.uint8, generator=generator)  # [N, 3, 32, 32]
    labels = torch.randint(0, NUM_CLASSES, (args.images,), generator=generator)  # [N]
    split = LabelledImages(images.to(device), labels.to(device))
    torch.manual_seed(0)
    model = create_model("resnet20", NUM_CLASSES).to(device).eval()
    settings = ShuffleSettings(shuffles=args.shuffles, bins=args.bins)
    first_batch = LabelledImages(split.images[: args.batch_size], split.labels[: args.batch_size])
    for shuffles in (None, settings):  # warm-up
        timed(measurement, device, model, first_batch, args.batch_size, device, shuffles)
    plain_seconds, null_seconds = [], []
    for _ in range(args.repeats):  # interleaved, so load from other processes hits both alike
        plain_seconds.append(timed(measurement, device, model, split, args.batch_size, device, None))
        null_seconds.append(timed(measurement, device, model, split, args.batch_size, device, settings))
    plain, nulls = statistics.median(plain_seconds), statistics.median(null_seconds)
    print(json.dumps({
        "benchmark": "null_speed", **describe_machine(device), "model": "resnet20", "images": args.images,
        "batch_size": args.batch_size, "shuffles": args.shuffles, "bins": args.bins, "repeats": args.repeats,
        "measure_seconds": round(plain, 4), "measure_with_nulls_seconds": round(nulls, 4),
        "ratio": round(nulls / plain, 4), "target_ratio": 2.0, "meets_target": nulls / plain < 2.0,
        "measure_seconds_all": [round(s, 4) for s in plain_seconds],
        "measure_with_nulls_seconds_all": [round(s, 4) for s in null_seconds],
    }))


if __name__ == "__main__":
    main()
