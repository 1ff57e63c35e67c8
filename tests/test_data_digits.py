"""The embedded digits dataset: fixed sizes, stratified split, deterministic, no files needed."""
import numpy as np
import torch
from sklearn.datasets import load_digits

from selectivity.data import load_dataset


def test_sizes_shapes_and_scaling(tmp_path):
    splits = load_dataset("digits", root=tmp_path / "never-created")
    assert (len(splits.train), len(splits.test)) == (1347, 450)
    assert splits.image_shape == (1, 8, 8) and splits.num_classes == 10
    assert splits.train.images.dtype == torch.uint8 and splits.train.labels.dtype == torch.int64
    assert splits.train.images.max() == 255 and splits.train.images.min() == 0
    assert not (tmp_path / "never-created").exists()
    bundled = load_digits()
    all_images = torch.cat([splits.train.images, splits.test.images]).flatten(1).numpy()
    expected = np.rint(bundled.data * 255 / 16).astype(np.uint8)
    assert sorted(map(bytes, all_images)) == sorted(map(bytes, expected))  # same images, each once


def test_split_is_stratified():
    splits = load_dataset("digits")
    train_counts = np.bincount(splits.train.labels.numpy(), minlength=10)
    test_counts = np.bincount(splits.test.labels.numpy(), minlength=10)
    assert (test_counts > 0).all() and (train_counts > 0).all()
    fractions = test_counts / (train_counts + test_counts)
    np.testing.assert_allclose(fractions, 0.25, atol=0.01)


def test_deterministic():
    first, second = load_dataset("digits"), load_dataset("digits")
    assert torch.equal(first.train.images, second.train.images)
    assert torch.equal(first.test.labels, second.test.labels)
    np.testing.assert_allclose(first.mean, first.train.images.double().mean().item() / 255)
