"""Input normalisation by name or by numbers: which mean/std a model was trained with.

A checkpoint from another code base expects that code base's constants: ImageNet's on
CIFAR is common (akamaster/pytorch_resnet_cifar10), and so are kuangliu/pytorch-cifar's
(0.4914, 0.4822, 0.4465) / (0.2023, 0.1994, 0.2010), passed as numbers. Measuring with
other constants than training used shifts every activation and the SI with it.
"""
import math

from selectivity.data.base import DatasetSplits
from selectivity.errors import SelectivityError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# name -> (mean, std) per RGB channel, of images scaled to [0, 1]
PRESETS = {
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),  # CIFAR-10 train set, per-pixel std
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),  # CIFAR-100 train set
    "half": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),  # maps [0, 1] to [-1, 1]
    "none": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),  # [0, 1] inputs as they are
}
EXPECTED = ("expected dataset, a preset (" + ", ".join(PRESETS) + ") or numbers mean,std "
            "(2 for every channel alike, or 2 x channels: means then stds)")


def resolve_normalization(text: str, data: DatasetSplits) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The per-channel (mean, std) that `text` names for images of `data`.

    Args:
        text: "dataset" (the train split's own statistics), a PRESETS name, or comma-separated
            numbers: "m,s" for every channel, or "m1,m2,m3,s1,s2,s3" for 3 channels.
        data: the dataset to measure (its channels and statistics).
    Returns:
        (mean, std), one value per image channel.
    """
    channels = data.image_shape[0]
    if text == "dataset":
        return tuple(data.mean), tuple(data.std)
    if text in PRESETS:
        mean, std = PRESETS[text]
        if channels != 3:
            raise SelectivityError(f"--normalize {text} is for 3-channel images but {data.name} has {channels}; "
                                   "expected dataset or numbers mean,std")
        return mean, std
    try:
        numbers = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise SelectivityError(f"--normalize {text!r} is neither a preset nor numbers; {EXPECTED}") from None
    if len(numbers) == 2:
        numbers = (numbers[0],) * channels + (numbers[1],) * channels
    if len(numbers) != 2 * channels:
        raise SelectivityError(f"--normalize {text!r} gives {len(numbers)} numbers but {data.name} has {channels} "
                               f"channels; {EXPECTED}")
    if not all(math.isfinite(number) for number in numbers):  # nan/inf parse as floats but poison every input
        raise SelectivityError(f"--normalize {text!r} holds a non-finite number; {EXPECTED}")
    mean, std = numbers[:channels], numbers[channels:]
    if min(std) <= 0:
        raise SelectivityError(f"--normalize {text!r} has a std <= 0; expected positive standard deviations")
    return mean, std
