"""The --normalize presets hold the published constants, and "dataset" the train split's own statistics.

A checkpoint trained with other constants than the ones measured with shifts every
activation and the SI with it (selectivity/data/normalization.py), so each preset is
pinned here to the numbers its source publishes, written out by hand.
"""
import numpy as np
import pytest
import torch

from selectivity.data import DatasetSplits, LabelledImages, load_dataset
from selectivity.data.normalization import resolve_normalization
from tests.test_data_cifar import write_fake_cifar10

PUBLISHED = {
    # torchvision's ImageNet statistics, used by every torchvision and timm ImageNet checkpoint
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    # CIFAR-10 train set, population std over all pixels (not kuangliu's 0.2023, 0.1994, 0.2010)
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),  # CIFAR-100 train set
    "half": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "none": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
}


def rgb_data() -> DatasetSplits:
    split = LabelledImages(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.tensor([0, 1]))
    return DatasetSplits("rgb", split, split, ("a", "b"), (0.1, 0.2, 0.3), (0.4, 0.5, 0.6))


@pytest.mark.parametrize("preset", sorted(PUBLISHED))
def test_each_preset_is_the_published_mean_and_std(preset):
    mean, std = resolve_normalization(preset, rgb_data())
    assert (tuple(mean), tuple(std)) == PUBLISHED[preset]


def test_dataset_normalization_is_the_train_splits_per_channel_mean_and_population_std(tmp_path, monkeypatch):
    monkeypatch.setenv("SELECTIVITY_CACHE", str(tmp_path / "cache"))
    written = write_fake_cifar10(tmp_path / "data")
    mean, std = resolve_normalization("dataset", load_dataset("cifar10", root=tmp_path / "data"))
    pixels = np.concatenate([written[f"data_batch_{i}"][0] for i in range(1, 6)]) / 255.0  # [N, 3, 32, 32]
    np.testing.assert_allclose(mean, pixels.mean(axis=(0, 2, 3)), rtol=1e-10)
    np.testing.assert_allclose(std, np.sqrt(((pixels - pixels.mean(axis=(0, 2, 3), keepdims=True)) ** 2)
                                            .mean(axis=(0, 2, 3))), rtol=1e-8)  # divisor N, not N - 1
