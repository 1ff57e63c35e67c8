"""scikit-learn's bundled 8x8 handwritten digits: the embedded default (no root, no download).

1,797 grayscale images of 10 classes. Pixel values 0..16 become uint8 by round(v * 255 / 16),
so 16 maps to 255 and the scale stays linear. The split is fixed and stratified:
`train_test_split(test_size=0.25, stratify=labels, random_state=0)` gives 1,347 train and
450 test images, each class in both splits in proportion.
"""
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from selectivity.data.base import DatasetSplits, LabelledImages, channel_mean_std
from selectivity.data.registry import DatasetLoader, register

NAME = "digits"
TEST_FRACTION = 0.25
SPLIT_SEED = 0


def decode(root: Path | None = None) -> DatasetSplits:
    """Build the digits splits from the copy bundled with scikit-learn (root is ignored)."""
    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]  # [1797, 1, 8, 8]
    labels = bunch.target.astype(np.int64)  # [1797]
    train_index, test_index = train_test_split(
        np.arange(len(labels)), test_size=TEST_FRACTION, stratify=labels, random_state=SPLIT_SEED)
    train_index, test_index = np.sort(train_index), np.sort(test_index)  # keep the bundled order

    def split(index: np.ndarray) -> LabelledImages:
        return LabelledImages(torch.from_numpy(np.ascontiguousarray(images[index])),
                              torch.from_numpy(labels[index]))

    train = split(train_index)
    mean, std = channel_mean_std(train.images)
    return DatasetSplits(name=NAME, train=train, test=split(test_index),
                         class_names=tuple(str(name) for name in bunch.target_names), mean=mean, std=std)


register(DatasetLoader(name=NAME, version=1, decode=decode))
