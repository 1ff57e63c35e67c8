"""Datasets as whole in-memory uint8 tensors: `load_dataset(name, root)` for every dataset of the paper.

Importing this package registers cifar10, cifar100, tiny-imagenet, imagefolder and digits.
"""
from selectivity.data.base import DatasetSplits, LabelledImages
from selectivity.data.registry import DatasetLoader, get_loader, list_datasets, load_dataset, register
from selectivity.data import cifar, digits, imagefolder, tiny_imagenet  # noqa: F401  (registers loaders)

__all__ = ["DatasetLoader", "DatasetSplits", "LabelledImages", "get_loader", "list_datasets",
           "load_dataset", "register"]
