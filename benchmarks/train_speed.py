"""Seconds per training epoch (default: 50,000-image ResNet20/CIFAR-10 at batch 128), three ways, one device, one run.

    python benchmarks/train_speed.py [--device auto|cpu|cuda] [--steps 30] [--repeats 3] [--data-root DIR]
    python benchmarks/train_speed.py --model resnet18 --stem cifar --image-size 64 --classes 200 \
        --batch-size 512 --epoch-images 100000 --steps 2 --warmup 1 --repeats 1   # a Tiny ImageNet epoch

(a) this trainer with alpha = -1, (b) this trainer with alpha = 0, (c) a standard loop:
torchvision transforms in DataLoader workers, eager fp32, the baseline. Each is timed over
--steps optimisation steps after warm-up steps and scaled to a 50,000-image epoch; (a) and
(b) take turns for --repeats rounds and their medians are reported, so load from other
processes cannot fake or hide the regularizer's cost in (a)/(b). On CUDA,
(a) and (b) are timed again with train.cuda_graphs = true (warm-up then covers the eager
steps and the capture, so the timed steps are graph replays). Prints one JSON object with
the times and the ratios (c)/(a) and (a)/(b).
Uses real CIFAR-10 when --data-root holds it, else random uint8 images of the workload's
shape (the time of a step does not depend on pixel values).
"""
import argparse
import json
import os
import statistics
import time
from dataclasses import dataclass

import torch
import torchvision.transforms as T
from PIL import Image

from selectivity.config import DataSettings, ExperimentConfig, ModelSettings, TrainSettings
from selectivity.data import DatasetSplits, LabelledImages, load_dataset
from selectivity.models import create_model
from selectivity.train.augment import draw_epoch_randomness
from selectivity.train.epoch import train_epoch
from selectivity.train.step import WARMUP_STEPS, epoch_plan
from selectivity.setup import resolve_device, uses_bf16
from trainer_setup import attached_train_step
from machine import describe_machine

@dataclass(frozen=True)
class Workload:
    """What one epoch trains: the default is the issue's ResNet20/CIFAR-10 epoch."""

    model: str = "resnet20"
    stem: str | None = None
    classes: int = 10
    image_size: int = 32
    batch: int = 128
    epoch_images: int = 50_000

    def create_model(self) -> torch.nn.Module:
        options = {"in_channels": 3, **({"stem": self.stem} if self.stem else {})}  # the images are RGB
        return create_model(self.model, self.classes, **options)


def benchmark_data(data_root: str | None, num_images: int, workload: Workload = Workload()) -> DatasetSplits:
    if data_root:
        data = load_dataset("cifar10", root=data_root)
        split = LabelledImages(data.train.images[:num_images].contiguous(), data.train.labels[:num_images].contiguous())
        return DatasetSplits("cifar10", split, split, data.class_names, data.mean, data.std)
    generator = torch.Generator().manual_seed(0)
    size = workload.image_size
    split = LabelledImages(torch.randint(0, 256, (num_images, 3, size, size), dtype=torch.uint8, generator=generator),
                           torch.arange(num_images) % workload.classes)
    return DatasetSplits("random", split, split, tuple(str(c) for c in range(workload.classes)),
                         (0.49, 0.48, 0.45), (0.25, 0.24, 0.26))


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


class TimedTrainer:
    """selectivity's own step loop (device-resident data, batch augmentation), set up as
    train_run sets it up (alpha a device tensor unless it is 0); `seconds_per_step(n)` trains
    n more steps and times them."""

    def __init__(self, data: DatasetSplits, alpha: float, device: torch.device, cuda_graphs: bool = False,
                 workload: Workload = Workload()):
        self.device, self.batch = device, workload.batch
        self.config = ExperimentConfig(
            data=DataSettings(dataset="cifar10", crop_padding=4, flip=True), model=ModelSettings(name=workload.model),
            train=TrainSettings(epochs=1, batch_size=workload.batch, lr=0.1, cuda_graphs=cuda_graphs),
            device=str(device),
        )
        torch.manual_seed(0)
        self.stepper = attached_train_step(workload.create_model(), data, self.config, device, alpha)
        self.generator = torch.Generator().manual_seed(0)

    def seconds_per_step(self, steps: int) -> float:
        randomness = draw_epoch_randomness(self.generator, steps * self.batch, 4, True).to(self.device)
        synchronize(self.device)
        started = time.perf_counter()
        train_epoch(self.stepper, epoch_plan(randomness), self.config, 0, False, "bench")
        synchronize(self.device)
        return (time.perf_counter() - started) / steps


def time_trainers(data: DatasetSplits, device: torch.device, warmup: int, steps: int, repeats: int,
                  cuda_graphs: bool = False, workload: Workload = Workload()) -> tuple[float, float, list[float]]:
    """Median seconds per step of (a) alpha = -1 and (b) alpha = 0, and the per-repeat ratios (a)/(b).

    The two take turns, `steps` steps each per repeat, so load from other processes falls on
    both alike. Warm-up covers a CUDA graph's eager steps and its capture, so timed steps are replays.
    """
    regularized, plain = (TimedTrainer(data, alpha, device, cuda_graphs, workload) for alpha in (-1.0, 0.0))
    for trainer in (regularized, plain):
        trainer.seconds_per_step(max(warmup, WARMUP_STEPS + 2) if cuda_graphs else warmup)
    times = [(regularized.seconds_per_step(steps), plain.seconds_per_step(steps)) for _ in range(repeats)]
    return (statistics.median(a for a, _ in times), statistics.median(b for _, b in times),
            [round(a / b, 3) for a, b in times])


class UintImages(torch.utils.data.Dataset):
    """The torchvision CIFAR10 pipeline: PIL image -> transforms, one sample at a time."""

    def __init__(self, split: LabelledImages, transform):
        self.images = split.images.permute(0, 2, 3, 1).numpy()  # [N, H, W, C]
        self.labels = split.labels.numpy()
        self.transform = transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return self.transform(Image.fromarray(self.images[index])), int(self.labels[index])


def time_standard_loop(data: DatasetSplits, device: torch.device, warmup: int, steps: int, workers: int,
                       workload: Workload = Workload()) -> float:
    """Seconds per step of the common reference loop (DataLoader workers, eager fp32)."""
    transform = T.Compose([T.RandomCrop(workload.image_size, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                           T.Normalize(data.mean, data.std)])
    loader = torch.utils.data.DataLoader(UintImages(data.train, transform), batch_size=workload.batch, shuffle=True,
                                         num_workers=workers, pin_memory=device.type == "cuda",
                                         persistent_workers=workers > 0, drop_last=True)
    torch.manual_seed(0)
    model = workload.create_model().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    batches = iter(loader)
    synchronize(device)
    for step in range(warmup + steps):
        if step == warmup:
            synchronize(device)
            started = time.perf_counter()
        inputs, labels = next(batches)
        inputs, labels = inputs.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        loss = torch.nn.functional.cross_entropy(model(inputs), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    synchronize(device)
    return (time.perf_counter() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--data-root")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds of (a) and (b), taken in turns")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--model", default=Workload.model, help="a registered model")
    parser.add_argument("--stem", help="the model's stem option (e.g. cifar for ResNet18/50 on 64x64)")
    parser.add_argument("--classes", type=int, default=Workload.classes)
    parser.add_argument("--image-size", type=int, default=Workload.image_size, help="random images' side")
    parser.add_argument("--batch-size", type=int, default=Workload.batch)
    parser.add_argument("--epoch-images", type=int, default=Workload.epoch_images, help="images per epoch")
    args = parser.parse_args()
    workload = Workload(args.model, args.stem, args.classes, args.image_size, args.batch_size, args.epoch_images)
    if args.data_root and (workload.classes, workload.image_size) != (10, 32):
        parser.error("--data-root is CIFAR-10 (10 classes, 32x32); leave it out for other workloads")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if device.type == "cpu":
        torch.set_flush_denormal(True)
    data = benchmark_data(args.data_root, max(args.warmup + args.steps, WARMUP_STEPS + 2) * workload.batch, workload)
    per_epoch = workload.epoch_images / workload.batch
    baseline = time_standard_loop(data, device, args.warmup, args.steps, args.workers, workload) * per_epoch
    regularized, plain, per_repeat = time_trainers(data, device, args.warmup, args.steps, args.repeats,
                                                   workload=workload)
    regularized, plain = regularized * per_epoch, plain * per_epoch
    seconds = {"a_trainer_alpha_-1": round(regularized, 2), "b_trainer_alpha_0": round(plain, 2),
               "c_standard_loop": round(baseline, 2)}
    ratios = {"speedup_c_over_a": round(baseline / regularized, 3), "ratio_a_over_b": round(regularized / plain, 3),
              "ratio_a_over_b_per_repeat": per_repeat}
    if device.type == "cuda":  # the same two with train.cuda_graphs = true
        try:
            graphed, graphed_plain, graphed_per_repeat = time_trainers(data, device, args.warmup, args.steps,
                                                                       args.repeats, True, workload)
        except Exception as error:  # keep the eager numbers: report why the graphed step failed
            ratios["cuda_graphs_error"] = f"{type(error).__name__}: {error}"
        else:
            graphed, graphed_plain = graphed * per_epoch, graphed_plain * per_epoch
            seconds.update({"a_trainer_alpha_-1_cuda_graphs": round(graphed, 2),
                            "b_trainer_alpha_0_cuda_graphs": round(graphed_plain, 2)})
            ratios.update({"speedup_c_over_a_cuda_graphs": round(baseline / graphed, 3),
                           "ratio_a_over_b_cuda_graphs": round(graphed / graphed_plain, 3),
                           "ratio_a_over_b_cuda_graphs_per_repeat": graphed_per_repeat})
    print(json.dumps({
        "benchmark": "train_speed", **describe_machine(device),
        "trainer_precision": "bf16 autocast" if uses_bf16("auto", device) else "fp32", "baseline_precision": "fp32",
        "model": workload.model, "stem": workload.stem, "image_size": workload.image_size, "classes": workload.classes,
        "data": data.name, "batch_size": workload.batch, "epoch_images": workload.epoch_images, "steps_timed": args.steps,
        "repeats": args.repeats, "loader_workers": args.workers,
        "seconds_per_epoch": seconds, **ratios,
    }, indent=2))


if __name__ == "__main__":
    main()
