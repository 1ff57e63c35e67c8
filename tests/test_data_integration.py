"""CIFAR-10 end to end: the real 60,000 images written in the pickled layout by ../shared/data.

Slow (~30-60 s: make_cifar10.py decodes 60,000 JPEGs), and the only test that is.
"""

import pytest
import torch

from selectivity.data import load_dataset
from tests.shared_data import SHARED_DATA, write_standard_layout

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

pytestmark = [pytest.mark.integration, pytest.mark.slow,
              pytest.mark.skipif(not (SHARED_DATA / "make_cifar10.py").is_file(),
                                 reason=f"{SHARED_DATA} is absent")]


@pytest.fixture(scope="module")
def cifar10_root(tmp_path_factory):
    return write_standard_layout("make_cifar10.py", tmp_path_factory.mktemp("cifar10"))


@pytest.fixture(scope="module")
def cifar10(cifar10_root, tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SELECTIVITY_CACHE", str(tmp_path_factory.mktemp("cache")))
        first = load_dataset("cifar10", root=cifar10_root)
        cached = load_dataset("cifar10", root=cifar10_root)
    return first, cached


def test_real_cifar10_sizes_and_classes(cifar10):
    splits, _ = cifar10
    assert splits.train.images.shape == (50_000, 3, 32, 32) and splits.test.images.shape == (10_000, 3, 32, 32)
    assert splits.train.images.dtype == torch.uint8 and splits.train.labels.dtype == torch.int64
    assert torch.bincount(splits.train.labels).tolist() == [5_000] * 10
    assert torch.bincount(splits.test.labels).tolist() == [1_000] * 10
    assert splits.class_names == CIFAR10_CLASSES


def test_real_cifar10_statistics_match_the_published_ones(cifar10):
    splits, _ = cifar10
    # widely quoted CIFAR-10 train statistics; the JPEG copy differs from the original by far less than this
    for value, published in zip(splits.mean + splits.std, (0.4914, 0.4822, 0.4465, 0.2470, 0.2435, 0.2616)):
        assert abs(value - published) < 0.01


def test_real_cifar10_cache_round_trip(cifar10):
    first, cached = cifar10
    assert torch.equal(first.train.images, cached.train.images) and torch.equal(first.test.labels, cached.test.labels)
    assert first.mean == cached.mean
