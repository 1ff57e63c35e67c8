"""ImageNet-scale measurement on one machine: time and peak memory of `measure` on a streamed image tree.

    python benchmarks/measure_imagenet.py [--model resnet50 | --timm vit_base_patch16_224] [--images 2000]
        [--classes 1000] [--shuffles 10] [--workers N] [--batch-size 50] [--tree DIR] [--device auto]

Writes (once, then reuses) a synthetic tree of `--images` JPEGs of `--classes` classes in class
folders, each a different size (150-500 px a side, smooth random content), then runs, each in a
fresh process so each peak is its own:
- decode: the DataLoader alone (decode, resize 256 / 232, centre crop 224, uint8), images/s;
- forward: a plain no-grad forward pass of the model over the same DataLoader;
- measure: `measure_model` (SI, d', accuracy) over it, the model's ReLU (or MLP GELU) units;
- measure_shuffles: the same with `--shuffles` label shuffles (AUC, MI, sparseness and nulls).
Reports seconds, images/s, ratios to the forward pass, peak RSS of the main process (VmHWM)
and its peak anonymous memory (RssAnon, sampled: the spill file's pages are page cache that
the kernel can drop, not the process's own), the worker processes' peak, and the spill size.
Random weights (nothing is downloaded). Prints one JSON object.
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
MODES = ("decode", "forward", "measure", "measure_shuffles")


def write_tree(root: Path, images: int, classes: int, seed: int = 0) -> Path:
    """`images` JPEGs spread evenly over `classes` folders, sizes varying; skipped when complete."""
    from PIL import Image

    marker = root / f".complete-{images}-{classes}"
    if marker.exists():
        return root
    rng = np.random.default_rng(seed)
    for index in range(images):
        label = index % classes
        width, height = (int(v) for v in rng.integers(150, 501, 2))
        coarse = rng.integers(0, 256, (height // 16 + 1, width // 16 + 1, 3), dtype=np.uint8)
        image = Image.fromarray(coarse).resize((width, height), Image.Resampling.BILINEAR)  # smooth, JPEG-like
        folder = root / f"n{label:08d}"
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"img_{index:06d}.JPEG", quality=90)
    marker.touch()
    return root


def status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class AnonPeak:
    """Samples RssAnon every 50 ms in a thread: the peak of the process's own memory."""

    def __init__(self):
        self.peak, self._stop = status_kb("RssAnon"), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, status_kb("RssAnon"))

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return max(self.peak, status_kb("RssAnon"))


def build_model(args, num_classes: int):
    import torch

    torch.manual_seed(0)
    if args.timm:
        from selectivity.model_hubs import load_timm_model

        loaded, _ = load_timm_model(args.timm, num_classes)
        return loaded.model.eval(), loaded.preprocessing, "mlp", {"tokens": "patch_mean", "signed": "positive"}
    import torchvision

    from selectivity.data.streamed import torchvision_preprocessing

    model = torchvision.models.get_model(args.model, weights=None, num_classes=num_classes).eval()
    preprocessing, _ = torchvision_preprocessing(args.model)
    return model, preprocessing, "relu", {}


def run_mode(args) -> dict:
    """One mode in this process: the timing and memory figures."""
    import resource

    import torch

    from selectivity.data.batches import normalize_images
    from selectivity.data.image_tree import list_image_tree
    from selectivity.data.streamed import StreamedImages
    from selectivity.measure import measure_model
    from selectivity.metrics.shuffles import ShuffleSettings
    from selectivity.setup import resolve_device

    device = resolve_device(args.device)
    listing = list_image_tree(args.tree)
    model, preprocessing, layers, options = build_model(args, len(listing.class_names))
    model = model.to(device)
    split = StreamedImages(listing, preprocessing)
    mean, std = preprocessing.mean, preprocessing.std
    spill = Path(args.spill)
    spill.mkdir(parents=True, exist_ok=True)
    peak = AnonPeak()
    started = time.perf_counter()
    spill_bytes = 0
    if args.mode == "decode":
        for _ in split.batches(args.batch_size, args.workers):
            pass
    elif args.mode == "forward":
        with torch.no_grad():
            for images, _, _ in split.batches(args.batch_size, args.workers):
                model(normalize_images(images.to(device), mean, std))
    else:
        shuffles = ShuffleSettings(args.shuffles) if args.mode == "measure_shuffles" else None
        sizes = []

        def observe(_):  # the spill file's size, once the pass has started writing it
            if shuffles and not sizes:
                sizes.extend(f.stat().st_size for f in spill.glob("selectivity-spill-*/responses.npy"))

        measure_model(model, split, len(listing.class_names), mean, std, layers=layers, batch_size=args.batch_size,
                      device=device, shuffles=shuffles, workers=args.workers, spill_dir=str(spill),
                      observe=observe, **options)
        spill_bytes = sum(sizes)
    seconds = time.perf_counter() - started
    anon_kb = peak.stop()
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux: the largest worker
    return {"mode": args.mode, "seconds": round(seconds, 2), "images_per_second": round(len(listing) / seconds, 2),
            "peak_rss_mb": round(status_kb("VmHWM") / 1024, 1), "peak_anon_mb": round(anon_kb / 1024, 1),
            "peak_worker_rss_mb": round(children / 1024, 1), "spill_mb": round(spill_bytes / 2**20, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet50", help="a torchvision model name (random weights)")
    parser.add_argument("--timm", help="a timm model name instead (random weights), e.g. vit_base_patch16_224")
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--shuffles", type=int, default=10)
    parser.add_argument("--workers", type=int, default=max(1, min(8, (os.cpu_count() or 2) // 2)))
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--tree", help="where the synthetic tree is written (default: under ~/.cache)")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated subset of " + ", ".join(MODES))
    parser.add_argument("--mode", help=argparse.SUPPRESS)  # internal: run one mode in this process
    parser.add_argument("--spill", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        print(json.dumps(run_mode(args)))
        return
    tree = Path(args.tree or Path.home() / ".cache" / "selectivity-benchmarks" / f"tree-{args.images}-{args.classes}")
    write_tree(tree, args.images, args.classes)
    sys.path.insert(0, str(HERE))
    from machine import describe_machine
    from selectivity.setup import resolve_device

    results = {}
    for mode in args.modes.split(","):
        command = [sys.executable, __file__, "--mode", mode, "--tree", str(tree), "--spill", str(tree.parent / "spill"),
                   "--images", str(args.images), "--shuffles", str(args.shuffles), "--workers", str(args.workers),
                   "--batch-size", str(args.batch_size), "--device", args.device, "--model", args.model]
        command += ["--timm", args.timm] if args.timm else []
        finished = subprocess.run(command, capture_output=True, text=True, check=False)
        if finished.returncode != 0:
            raise SystemExit(f"mode {mode} failed: {finished.stderr.strip().splitlines()[-1:]}")
        results[mode] = json.loads(finished.stdout.strip().splitlines()[-1])
    forward = results.get("forward", {}).get("seconds")
    ratios = {f"{mode}_over_forward": round(r["seconds"] / forward, 3) for mode, r in results.items()
              if forward and mode.startswith("measure")}
    print(json.dumps({
        "benchmark": "measure_imagenet", **describe_machine(resolve_device(args.device)),
        "model": args.timm or args.model, "images": args.images, "classes": args.classes,
        "shuffles": args.shuffles, "workers": args.workers, "batch_size": args.batch_size,
        "modes": results, **ratios,
        "target_shuffles_over_forward": 1.5,
        "meets_target": ratios.get("measure_shuffles_over_forward", float("inf")) <= 1.5,
    }))


if __name__ == "__main__":
    main()
