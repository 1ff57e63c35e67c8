"""Cost of the selectivity regularizer per training step, against the same step without it.

    python benchmarks/regularizer_overhead.py [--device auto|cpu|cuda] [--steps N] [--repeats 3] [--track-every 10]
    python benchmarks/regularizer_overhead.py --model vit_cifar   # the small ViT (its units: MLP GELU patch-token means)

One step = the trainer's step (selectivity/train/epoch.py): normalise a uint8 batch,
forward (the trainer's precision: bf16 autocast on CUDA and on CPUs with native bf16, else fp32), cross-entropy, + regularizer.penalty(labels),
backward, SGD with momentum. ResNet20 (or --model, e.g. vit_cifar), batch 128, CIFAR-sized random data on the device.
Four variants, each on its own copy of one initial model:

    none            no regularizer at all (the baseline)
    alpha=0         SelectivityRegularizer(0.0) with track_selectivity=True (the default: detached mu_SI is logged)
    alpha=0,every=K the same, measuring mu_SI on every K-th step only (regularizer.track_every = K)
    alpha=-1        SelectivityRegularizer(-1.0): activations keep their graph, the penalty is backpropagated

The median step of `alpha=0,every=K` is an unmeasured one (K-1 of every K); its cost per step
averaged over K steps is estimated from the medians as ((K-1) x every=K + 1 x alpha=0) / K
(`ratio_alpha_0_every_k_vs_none_amortized`).

Each variant warms up, then the variants take turns one step at a time (order rotated)
so load from other processes hits all alike; the median seconds per step of each repeat
(`--steps` steps), then the median over `--repeats`, is reported with the ratios to `none`, and
alpha=-1 / alpha=0 (the penalty's cost over the logged-SI training a sweep's alpha = 0 runs do).
Targets: alpha=-1 / none <= 1.10. Prints one JSON object.
"""
import argparse
import copy
import json
import statistics
import time
from contextlib import nullcontext

import torch
from torch import nn

from selectivity.data.batches import normalize_images
from selectivity.models import create_model
from selectivity.regularizer import SelectivityRegularizer
from selectivity.setup import resolve_device, uses_bf16
from machine import describe_machine

CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
NUM_CLASSES = 10


def variants(track_every: int) -> dict[str, tuple[float | None, int]]:
    """{name: (alpha or None for no regularizer, track_every)}."""
    return {"none": (None, 1), "alpha=0": (0.0, 1), f"alpha=0,every={track_every}": (0.0, track_every),
            "alpha=-1": (-1.0, 1)}


class Trainee:
    """One variant: a model, its optimizer and (maybe) a regularizer attached for the whole run."""

    def __init__(self, model: nn.Module, alpha: float | None, channels_last: bool, track_every: int = 1):
        self.model = model.train()
        self.optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
        self.regularizer = None if alpha is None else SelectivityRegularizer(alpha, NUM_CLASSES, track_every=track_every)
        self.steps = 0  # announced to the regularizer as the trainer does (steps 0, K, 2K, ... measure)
        self.attached = nullcontext() if alpha is None else self.regularizer.attach(model)
        self.attached.__enter__()
        self.channels_last = channels_last

    def step(self, images: torch.Tensor, labels: torch.Tensor, use_bf16: bool) -> None:
        if self.regularizer is not None:
            self.regularizer.start_step(self.steps)
        self.steps += 1
        inputs = normalize_images(images, CIFAR_MEAN, CIFAR_STD, self.channels_last)  # [B, 3, 32, 32]
        with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=use_bf16):
            logits = self.model(inputs)  # [B, K]
        objective = nn.functional.cross_entropy(logits.float(), labels)
        if self.regularizer is not None:
            objective = objective + self.regularizer.penalty(labels)
        self.optimizer.zero_grad(set_to_none=True)
        objective.backward()
        self.optimizer.step()

    def close(self) -> None:
        self.attached.__exit__(None, None, None)


def timed_steps(trainee: Trainee, batches, steps: int, device: torch.device, use_bf16: bool) -> list[float]:
    """Seconds of each of `steps` steps (synchronised on CUDA so each step is its own time)."""
    seconds = []
    for index in range(steps):
        images, labels = batches[index % len(batches)]
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        trainee.step(images, labels, use_bf16)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds.append(time.perf_counter() - start)
    return seconds


def make_batches(batch_size: int, device: torch.device, count: int = 4) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """A few distinct device-resident batches: uint8 [B, 3, 32, 32] images and [B] labels."""
    generator = torch.Generator().manual_seed(0)
    return [
        (torch.randint(0, 256, (batch_size, 3, 32, 32), dtype=torch.uint8, generator=generator).to(device),
         torch.randint(0, NUM_CLASSES, (batch_size,), generator=generator).to(device))
        for _ in range(count)
    ]


def interleaved_medians(trainees: dict, batches, steps: int, repeats: int, device, use_bf16: bool) -> dict:
    """{variant: [median seconds per step of each repeat]}; variants take turns one step at a time."""
    names = list(trainees)
    medians = {name: [] for name in names}
    for _ in range(repeats):
        seconds = {name: [] for name in names}
        for index in range(steps):  # order rotated each turn, so load from other processes hits all alike
            for name in names[index % len(names):] + names[: index % len(names)]:
                seconds[name] += timed_steps(trainees[name], batches[index % len(batches):], 1, device, use_bf16)
        for name in names:
            medians[name].append(statistics.median(seconds[name]))
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, help="timed steps per variant per repeat (default 100 on CUDA, 6 on CPU)")
    parser.add_argument("--repeats", type=int, default=3, help="the reported time is the median of the repeats' medians")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per variant first")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--track-every", type=int, default=10, help="K of the alpha=0,every=K variant")
    parser.add_argument("--model", default="resnet20", help="a registered CIFAR-sized model (default resnet20)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    use_bf16 = uses_bf16("auto", device)  # as the trainer does on this device
    channels_last = True  # the trainer's default layout
    steps = args.steps or (100 if device.type == "cuda" else 6)
    batches = make_batches(args.batch_size, device)
    torch.manual_seed(0)
    initial = create_model(args.model, NUM_CLASSES).to(device)
    if channels_last:
        initial = initial.to(memory_format=torch.channels_last)
    trainees = {name: Trainee(copy.deepcopy(initial), alpha, channels_last, track_every)
                for name, (alpha, track_every) in variants(args.track_every).items()}
    for trainee in trainees.values():
        timed_steps(trainee, batches, args.warmup, device, use_bf16)
    repeat_medians = interleaved_medians(trainees, batches, steps, args.repeats, device, use_bf16)
    for trainee in trainees.values():
        trainee.close()
    median = {name: statistics.median(values) for name, values in repeat_medians.items()}
    ratios = [minus / none for minus, none in zip(repeat_medians["alpha=-1"], repeat_medians["none"])]
    every = f"alpha=0,every={args.track_every}"
    amortized = ((args.track_every - 1) * median[every] + median["alpha=0"]) / args.track_every
    print(json.dumps({
        "benchmark": "regularizer_overhead",
        **describe_machine(device), "model": args.model, "batch_size": args.batch_size,
        "precision": "bf16 autocast" if use_bf16 else "fp32", "channels_last": channels_last,
        "steps_per_repeat": steps, "repeats": args.repeats,
        "seconds_per_step": {name: round(value, 5) for name, value in median.items()},
        "ratio_alpha_minus_1_vs_none": round(median["alpha=-1"] / median["none"], 4),
        "ratio_alpha_0_vs_none": round(median["alpha=0"] / median["none"], 4),
        "ratio_alpha_minus_1_vs_alpha_0": round(median["alpha=-1"] / median["alpha=0"], 4),
        "track_every": args.track_every,
        "ratio_alpha_0_every_k_vs_none": round(median[every] / median["none"], 4),
        "ratio_alpha_0_every_k_vs_none_amortized": round(amortized / median["none"], 4),
        "ratio_alpha_minus_1_vs_none_per_repeat": [round(r, 4) for r in ratios],
        "target_ratio": 1.10, "meets_target": median["alpha=-1"] / median["none"] <= 1.10,
    }))


if __name__ == "__main__":
    main()
