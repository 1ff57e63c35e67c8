"""Streaming measurement of a ViT vs its plain forward pass: what does per-unit SI of token layers cost?

    python benchmarks/measure_vit.py [--device auto|cpu|cuda] [--images N] [--repeats 3] [--layers mlp]

Times `measure_model` on timm's vit_tiny_patch16_224 built for 32x32 inputs with 4x4 patches
(random weights: 12 blocks, width 192, 64 patch tokens + the class token) with every MLP hidden
activation captured (12 x 768 GELU units), token reduction patch_mean (class token left out),
signed = positive (so the raw responses are kept too, for d'), class sums in float64, accuracy and
loss, against a no-grad forward pass of the same model over the same batches. The two are
interleaved after a one-batch warm-up of each; the median of the repeats is reported. Target:
ratio <= 1.2. Prints one JSON object.
"""
import argparse
import functools
import json

import timm
import torch

from selectivity.measure import measure_model
from selectivity.setup import resolve_device
from machine import describe_machine
from measure_speed import CIFAR_MEAN, CIFAR_STD, NUM_CLASSES, interleaved_timings, random_split, timing_fields


def streamed_measurement(model, split, batch_size, device, channels_last, layers="mlp") -> None:
    measure_model(model, split, NUM_CLASSES, CIFAR_MEAN, CIFAR_STD, layers=layers, batch_size=batch_size,
                  device=device, channels_last=channels_last, tokens="patch_mean", signed="positive")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--images", type=int, help="random images (default 5000 on CUDA, 500 on CPU)")
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--layers", default="mlp", help="mlp (default) | blocks | activations")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    args.images = args.images or (5_000 if device.type == "cuda" else 500)
    split = random_split(args.images, device)
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=NUM_CLASSES, img_size=32,
                              patch_size=4).to(device).eval()
    measurement = functools.partial(streamed_measurement, layers=args.layers)
    forward_seconds, measure_seconds = interleaved_timings(measurement, model, split, args.batch_size, device,
                                                           False, args.repeats)
    print(json.dumps({
        "benchmark": "measure_vit",
        **describe_machine(device),
        "model": "vit_tiny_patch16_224(img_size=32, patch_size=4)", "layers": args.layers, "tokens": "patch_mean",
        "signed": "positive", "images": args.images, "batch_size": args.batch_size, "repeats": args.repeats,
        **timing_fields(forward_seconds, measure_seconds),
    }))


if __name__ == "__main__":
    main()
