"""What do the corruptions / attacks / dimensionality analyses cost per run, against a clean measurement?

    python benchmarks/robustness_cost.py [--data-root DIR] [--images 500] [--threads N] [--device cpu]

ResNet20 (untrained: the cost does not depend on the weights, only PGD's early exits would,
and it has none) on the first --images CIFAR-10 test images (random images without
--data-root). Times, on the CPU, one clean `measure_model` pass (the baseline), one
corruption pass per corruption at severity 3 (generation + evaluation), one FGSM and one
PGD-10 pass at eps 1/255, and one dimensionality pass (clean covariance and the change
under gaussian_noise:3). Prints one JSON object: seconds per 1,000 images for each, their
ratios to the baseline, and each analysis's projected seconds per run at its default
settings (robustness_analyses.DEFAULTS) from those per-image costs.
"""
import argparse
import json
import time

import torch

from selectivity.analysis.corruptions import CORRUPTIONS, corrupt_images
from selectivity.data import LabelledImages, load_dataset
from selectivity.models import create_model
from selectivity.sweep.robustness import ModelUnderTest, attack, layer_dimensionalities, test_subset
from selectivity.sweep.robustness_analyses import DEFAULTS
from machine import describe_machine

CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def test_images(data_root: str | None, count: int) -> LabelledImages:
    if data_root:
        return test_subset(load_dataset("cifar10", root=data_root).test, count).split
    generator = torch.Generator().manual_seed(0)
    return LabelledImages(torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8, generator=generator),
                          torch.randint(0, 10, (count,), generator=generator))


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=None, help="folder holding cifar-10-batches-py/")
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu", choices=["cpu"], help="the analyses run on the CPU")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    target = ModelUnderTest(create_model("resnet20", num_classes=10).eval(), 10, CIFAR_MEAN, CIFAR_STD)
    split = test_images(args.data_root, args.images)
    per_1000 = 1000 / len(split)
    target.measure(test_subset(split, min(len(split), 100)).split)  # warm-up
    clean = timed(lambda: target.measure(split)) * per_1000
    corruption = {name: timed(lambda name=name: target.measure(LabelledImages(
        corrupt_images(split.images, "cifar10", name, 3), split.labels))) * per_1000 for name in CORRUPTIONS}
    fgsm = timed(lambda: target.measure(split, perturb=attack(target, "fgsm", 1 / 255))) * per_1000
    pgd = timed(lambda: target.measure(split, perturb=attack(target, "pgd", 1 / 255, steps=10))) * per_1000
    dimensionality = timed(lambda: layer_dimensionalities(target, split, 0.95, "gaussian_noise:3", "cifar10")) * per_1000
    corruption_defaults, attack_defaults = DEFAULTS["corruptions"], DEFAULTS["attacks"]
    nonzero_eps = sum(1 for eps in attack_defaults["eps_255"] if eps > 0)
    projected = {
        "corruptions": corruption_defaults["images"] / 1000 * (
            5 * sum(corruption.values()) + clean),  # 5 severities of each, and the clean subset
        "attacks": attack_defaults["images"] / 1000 * (2 * clean + nonzero_eps * (fgsm + pgd)),  # eps 0: clean x 2
        "dimensionality": DEFAULTS["dimensionality"]["images"] / 1000 * dimensionality,
    }
    print(json.dumps({
        "benchmark": "robustness_cost", **describe_machine("cpu"), "images": len(split),
        "data": "cifar10 test" if args.data_root else "random",
        "seconds_per_1000_images": {"clean_measure": clean, "fgsm": fgsm, "pgd10": pgd,
                                    "dimensionality_with_gaussian_noise": dimensionality,
                                    "corruption_severity_3": corruption},
        "ratio_vs_clean_measure": {"fgsm": fgsm / clean, "pgd10": pgd / clean,
                                   "dimensionality": dimensionality / clean,
                                   "corruption_mean": sum(corruption.values()) / len(corruption) / clean},
        "projected_seconds_per_run_at_defaults": projected,
    }, indent=1))


if __name__ == "__main__":
    main()
