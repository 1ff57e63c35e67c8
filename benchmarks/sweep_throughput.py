"""Sweep throughput: training images per second of k concurrent runs vs one run (k = 1, 2, 4, 8).

    python benchmarks/sweep_throughput.py                      # CPU: small_cnn on digits, 6 s per k
    python benchmarks/sweep_throughput.py --device cuda        # CUDA: ResNet20, CIFAR-sized random data
    python benchmarks/sweep_throughput.py --concurrency 1 2 4 --seconds 20

What the local executor does, without the bookkeeping: k spawned processes on one device,
each with cores/k torch threads, each training its own model with the trainer's epoch loop
(selectivity.train.epoch.train_epoch, alpha = -1, batch 128). After warm-up steps they
start together (a barrier) and train for --seconds; throughput = sum over processes of
images / seconds. Prints one JSON object: images/s per k and the ratio to k = 1 measured in
the same run. The ratio says how many runs per device the sweep should run at once.
"""
import argparse
import json
import multiprocessing
import os
import time

BATCH = 128


def _setup(device_name: str):
    """(data, config, stepper, device) for one benchmark process; the regularizer stays attached."""
    import torch

    from selectivity.config import DataSettings, ExperimentConfig, ModelSettings, TrainSettings
    from selectivity.data import DatasetSplits, LabelledImages, load_dataset
    from selectivity.models import create_model
    from trainer_setup import attached_train_step

    device = torch.device(device_name)
    if device.type == "cuda":  # ResNet20 on CIFAR-sized random images, augmented as for CIFAR
        generator = torch.Generator().manual_seed(0)
        split = LabelledImages(torch.randint(0, 256, (50 * BATCH, 3, 32, 32), dtype=torch.uint8, generator=generator),
                               torch.arange(50 * BATCH) % 10)
        data = DatasetSplits("random", split, split, tuple("0123456789"), (0.49, 0.48, 0.45), (0.25, 0.24, 0.26))
        config = ExperimentConfig(data=DataSettings(dataset="cifar10", crop_padding=4, flip=True),
                                  model=ModelSettings(name="resnet20"), train=TrainSettings(batch_size=BATCH))
    else:  # the smoke experiment: small_cnn on the embedded digits
        data = load_dataset("digits")
        config = ExperimentConfig(train=TrainSettings(batch_size=BATCH))
    torch.manual_seed(0)
    model = create_model(config.model.name, data.num_classes, in_channels=data.image_shape[0])
    return data, config, attached_train_step(model, data, config, device, -1.0), device


def _train_steps(state, steps: int) -> int:
    """Train `steps` steps with the trainer's epoch loop; returns the number of images."""
    import torch

    from selectivity.train.augment import draw_epoch_randomness
    from selectivity.train.epoch import train_epoch
    from selectivity.train.step import epoch_plan

    data, config, stepper, device = state
    count = min(steps * BATCH, len(data.train.labels))
    randomness = draw_epoch_randomness(torch.Generator().manual_seed(0), count, config.data.crop_padding,
                                       config.data.flip).to(device)
    train_epoch(stepper, epoch_plan(randomness), config, 0, False, "benchmark")
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return count


def _worker(device_name: str, threads: int, warmup: int, seconds: float, barrier, results) -> None:
    import torch

    torch.set_num_threads(threads)
    state = _setup(device_name)
    _train_steps(state, warmup)
    barrier.wait()
    images, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        images += _train_steps(state, 5)
    results.put(images / (time.perf_counter() - started))


def measure(concurrency: int, device_name: str, warmup: int, seconds: float) -> float:
    """Summed images/s of `concurrency` processes training at once on one device."""
    context = multiprocessing.get_context("spawn")  # as the sweep's local executor
    barrier, results = context.Barrier(concurrency), context.Queue()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = max(1, cores // concurrency)
    processes = [context.Process(target=_worker, args=(device_name, threads, warmup, seconds, barrier, results))
                 for _ in range(concurrency)]
    for process in processes:
        process.start()
    rates = [results.get(timeout=600 + seconds) for _ in processes]
    for process in processes:
        process.join()
    return sum(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda (auto = CUDA when present)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--seconds", type=float, default=None, help="timed seconds per k (default 6 CPU, 20 CUDA)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per process before the barrier")
    args = parser.parse_args()
    import torch

    from selectivity.setup import uses_bf16

    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device
    device = "cpu" if device == "auto" else device
    seconds = args.seconds or (20.0 if device.startswith("cuda") else 6.0)
    rates = {k: measure(k, device, args.warmup, seconds) for k in args.concurrency}
    base = rates[args.concurrency[0]]
    from machine import describe_machine  # imports torch, which the parent defers until the workers exist

    print(json.dumps({
        "benchmark": "sweep_throughput",
        **describe_machine(device),
        "workload": ("resnet20, 3x32x32 random" if device.startswith("cuda") else "small_cnn, digits 1x8x8")
        + (", bf16 autocast" if uses_bf16("auto", torch.device(device)) else ", fp32") + " (as the trainer)",
        "batch_size": BATCH, "alpha": -1.0, "seconds_per_k": seconds,
        "images_per_second": {str(k): round(rate, 1) for k, rate in rates.items()},
        f"ratio_vs_k{args.concurrency[0]}": {str(k): round(rate / base, 3) for k, rate in rates.items()},
    }, indent=2))


if __name__ == "__main__":
    main()
