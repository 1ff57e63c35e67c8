"""The decode cache (hit, invalidation, corrupt files) and the registry, on a tiny imagefolder tree."""
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from selectivity.data import LabelledImages, imagefolder, list_datasets, load_dataset
from selectivity.data.base import channel_mean_std
from selectivity.data.cache import cache_file, source_fingerprint
from selectivity.errors import SelectivityError


@pytest.fixture
def tree(tmp_path, monkeypatch):
    monkeypatch.setenv("SELECTIVITY_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "tree"
    for split in ("train", "test"):
        for label, class_name in enumerate(("a", "b")):
            (root / split / class_name).mkdir(parents=True)
            Image.new("L", (3, 3), 10 * label).save(root / split / class_name / "0.png")
    return root


@pytest.fixture
def decode_calls(monkeypatch):
    """Counts calls of the imagefolder decoder; calls[0] = "fail" makes the next call raise."""
    calls = []
    real_decode = imagefolder.decode_image_files

    def counting_decode(*args, **kwargs):
        if calls and calls[0] == "fail":
            raise AssertionError("decoded although the cache should have been used")
        calls.append(args[0])
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(imagefolder, "decode_image_files", counting_decode)
    return calls


def test_second_load_hits_the_cache(tree, decode_calls, tmp_path):
    first = load_dataset("imagefolder", root=tree)
    assert len(decode_calls) == 2  # train and test
    cached = cache_file("imagefolder", tree.absolute())
    assert cached.parent == tmp_path / "cache" / "datasets" and cached.is_file()
    assert [path.name for path in cached.parent.iterdir()] == [cached.name]  # no temporary left behind
    decode_calls[:] = ["fail"]
    second = load_dataset("imagefolder", root=tree)
    assert torch.equal(first.train.images, second.train.images) and torch.equal(first.test.labels, second.test.labels)
    assert (second.class_names, second.mean, second.std) == (first.class_names, first.mean, first.std)


def test_touching_a_source_file_rebuilds(tree, decode_calls):
    load_dataset("imagefolder", root=tree)
    source = tree / "test" / "b" / "0.png"
    stat = source.stat()
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    load_dataset("imagefolder", root=tree)
    assert len(decode_calls) == 4


def test_altered_source_file_gives_new_pixels(tree, decode_calls):
    assert load_dataset("imagefolder", root=tree).train.images[1].max() == 10
    Image.new("L", (3, 3), 99).save(tree / "train" / "b" / "0.png")
    assert load_dataset("imagefolder", root=tree).train.images[1].max() == 99


def test_added_file_rebuilds(tree, decode_calls):
    load_dataset("imagefolder", root=tree)
    Image.new("L", (3, 3), 7).save(tree / "train" / "a" / "1.png")
    assert len(load_dataset("imagefolder", root=tree).train) == 3


@pytest.mark.parametrize("damage", ["cut in half", b"PK\x03\x04 half a zip", b"plain text"])
def test_truncated_cache_file_is_rebuilt_not_used(tree, decode_calls, damage):
    first = load_dataset("imagefolder", root=tree)
    cached = cache_file("imagefolder", tree.absolute())
    cached.write_bytes(cached.read_bytes()[: cached.stat().st_size // 2] if damage == "cut in half" else damage)
    again = load_dataset("imagefolder", root=tree)
    assert len(decode_calls) == 4 and torch.equal(again.train.images, first.train.images)
    decode_calls[:] = ["fail"]
    load_dataset("imagefolder", root=tree)  # the rebuilt cache is whole and used


@pytest.mark.parametrize("field, value", [
    ("std", [0.0]), ("std", [float("nan")]), ("mean", [float("inf")]),
    ("train_labels", torch.tensor([0, 7])),  # beyond the 2 classes
    ("test_images", torch.zeros(2, 1, 3, 3)),  # float, not uint8
], ids=["std-zero", "std-nan", "mean-inf", "label-out-of-range", "float-images"])
def test_a_cache_with_a_valid_fingerprint_but_impossible_contents_is_rebuilt(tree, decode_calls, field, value):
    first = load_dataset("imagefolder", root=tree)
    cached = cache_file("imagefolder", tree.absolute())
    payload = torch.load(cached, weights_only=True)
    payload[field] = value
    torch.save(payload, cached)
    again = load_dataset("imagefolder", root=tree)
    assert len(decode_calls) == 4  # decoded again, not trusted
    assert (again.mean, again.std) == (first.mean, first.std) and again.std[0] > 0
    assert torch.equal(again.train.labels, first.train.labels) and torch.equal(again.test.images, first.test.images)


def test_a_dataset_whose_channel_never_varies_cannot_be_normalised(tmp_path, monkeypatch):
    monkeypatch.setenv("SELECTIVITY_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "flat"
    for split in ("train", "test"):
        for class_name in ("a", "b"):
            (root / split / class_name).mkdir(parents=True)
            Image.new("L", (3, 3), 50).save(root / split / class_name / "0.png")  # every pixel 50
    with pytest.raises(SelectivityError, match=r"imagefolder: normalisation mean \(0\.196.*\) / std \(0\.0,\); "
                                               r"expected finite means and stds > 0"):
        load_dataset("imagefolder", root=root)


def test_fingerprint_depends_on_loader_version_and_root(tree):
    sources = sorted(tree.rglob("*.png"))
    base = source_fingerprint("imagefolder", 1, tree, sources)
    assert base == source_fingerprint("imagefolder", 1, tree, list(reversed(sources)))
    assert base != source_fingerprint("imagefolder", 2, tree, sources)
    assert base != source_fingerprint("imagefolder", 1, tree / "elsewhere", sources)
    assert base != source_fingerprint("imagefolder", 1, tree, sources[1:])


def test_unknown_dataset_lists_valid_names():
    assert {"cifar10", "cifar100", "tiny-imagenet", "imagefolder", "digits"} <= set(list_datasets())
    with pytest.raises(SelectivityError, match=r"unknown dataset 'imagenet'; expected one of: cifar10, "):
        load_dataset("imagenet")


def test_default_root_is_the_data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("SELECTIVITY_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SELECTIVITY_DATA", str(tmp_path / "data"))
    with pytest.raises(SelectivityError, match=str(Path(tmp_path / "data" / "cifar-10-batches-py"))):
        load_dataset("cifar10")


def test_channel_mean_std_matches_numpy_across_chunks():
    images = torch.randint(0, 256, (37, 3, 5, 4), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    mean, std = channel_mean_std(images, chunk_size=8)
    scaled = images.numpy() / 255.0
    np.testing.assert_allclose(mean, scaled.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(std, scaled.std(axis=(0, 2, 3)), rtol=1e-9)


def test_labelled_images_rejects_wrong_dtypes_and_lengths():
    with pytest.raises(SelectivityError, match="uint8"):
        LabelledImages(torch.zeros(2, 1, 3, 3), torch.zeros(2, dtype=torch.int64))
    with pytest.raises(SelectivityError, match=r"shape \[2\]"):
        LabelledImages(torch.zeros(2, 1, 3, 3, dtype=torch.uint8), torch.zeros(3, dtype=torch.int64))
