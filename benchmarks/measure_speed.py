"""Streaming measurement vs a plain forward pass: what does per-unit SI cost at test time?

    python benchmarks/measure_speed.py [--device auto|cpu|cuda] [--images N] [--repeats 5]

Times `measure_model` (ResNet20, every ReLU layer captured, class sums accumulated in
float64, accuracy and loss) over uint8 CIFAR-sized random images against a no-grad
forward pass of the same model over the same batches (same normalisation, batch size,
eval mode). The two are interleaved, after a one-batch warm-up of each, and the median of
the repeats is reported. Target: ratio <= 1.2. Prints one JSON object.

--images defaults to 10,000 on CUDA but 2,000 on the CPU, where a ResNet20 pass over
10,000 images took ~40 s on the shared 2-core build machine (the ratio, not the time, is
the result; pass --images 10000 for the full set).
"""
import argparse
import json
import statistics
import time

import torch

from selectivity.data import LabelledImages
from selectivity.data.batches import normalize_images
from selectivity.measure import measure_model
from selectivity.models import create_model
from selectivity.setup import resolve_device
from machine import describe_machine

CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
NUM_CLASSES = 10


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def plain_forward(model, split: LabelledImages, batch_size: int, device: torch.device, channels_last: bool) -> None:
    """The baseline: the forward passes measure_model makes, with nothing captured or reduced."""
    for start in range(0, len(split), batch_size):
        images = split.images[start : start + batch_size].to(device, non_blocking=True)
        model(normalize_images(images, CIFAR_MEAN, CIFAR_STD, channels_last))


def streamed_measurement(model, split, batch_size, device, channels_last) -> None:
    measure_model(model, split, NUM_CLASSES, CIFAR_MEAN, CIFAR_STD, layers="relu", batch_size=batch_size,
                  device=device, channels_last=channels_last)


def timed(function, device: torch.device, *args) -> float:
    synchronize(device)
    start = time.perf_counter()
    function(*args)
    synchronize(device)
    return time.perf_counter() - start


def random_split(count: int, device: torch.device) -> LabelledImages:
    """`count` seeded random 32x32 RGB images and labels, device-resident as in training."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8, generator=generator)  # [N, 3, 32, 32]
    labels = torch.randint(0, NUM_CLASSES, (count,), generator=generator)  # [N]
    return LabelledImages(images.to(device), labels.to(device))


def interleaved_timings(measurement, model, split: LabelledImages, batch_size: int, device: torch.device,
                        channels_last: bool, repeats: int) -> tuple[list[float], list[float]]:
    """(forward seconds, measurement seconds) per repeat: one warm-up of each on the first batch
    (allocator, oneDNN/cuDNN algorithm choice), then the two interleaved, so load from other
    processes hits both alike. `measurement` takes plain_forward's arguments."""
    common = (model, split, batch_size, device, channels_last)
    first_batch = LabelledImages(split.images[:batch_size], split.labels[:batch_size])
    for function in (plain_forward, measurement):
        timed(function, device, model, first_batch, *common[2:])
    forward_seconds, measure_seconds = [], []
    for _ in range(repeats):
        forward_seconds.append(timed(plain_forward, device, *common))
        measure_seconds.append(timed(measurement, device, *common))
    return forward_seconds, measure_seconds


def timing_fields(forward_seconds: list[float], measure_seconds: list[float], target: float = 1.2) -> dict:
    """The JSON fields of a measurement timed against the forward pass: medians, ratio, target, every repeat."""
    forward, measure = statistics.median(forward_seconds), statistics.median(measure_seconds)
    return {"forward_seconds": round(forward, 4), "measure_seconds": round(measure, 4),
            "ratio": round(measure / forward, 4), "target_ratio": target, "meets_target": measure / forward <= target,
            "forward_seconds_all": [round(s, 4) for s in forward_seconds],
            "measure_seconds_all": [round(s, 4) for s in measure_seconds]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--images", type=int, help="random images (default 10000 on CUDA, 2000 on CPU)")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--channels-last", action="store_true", help="NHWC inputs and model (the trainer's GPU default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    args.images = args.images or (10_000 if device.type == "cuda" else 2_000)
    split = random_split(args.images, device)
    torch.manual_seed(0)
    model = create_model("resnet20", NUM_CLASSES).to(device).eval()
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    forward_seconds, measure_seconds = interleaved_timings(streamed_measurement, model, split, args.batch_size,
                                                           device, args.channels_last, args.repeats)
    print(json.dumps({
        "benchmark": "measure_speed",
        **describe_machine(device),
        "model": "resnet20", "images": args.images, "batch_size": args.batch_size, "repeats": args.repeats,
        "channels_last": args.channels_last,
        **timing_fields(forward_seconds, measure_seconds),
    }))


if __name__ == "__main__":
    main()
