"""CIFAR-10/100 loaders on small fake pickled trees written like the originals (Python 2 strings)."""
import pickle
import struct

import numpy as np
import pytest
import torch

from selectivity.data import cifar, load_dataset
from selectivity.errors import SelectivityError

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


class Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 strings, as the original CIFAR files do: str keys under latin1."""

    def save_bytes(self, obj):
        self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj if len(obj) < 256
                   else pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch = dict(pickle._Pickler.dispatch)
    dispatch[bytes] = save_bytes


def dump(path, content):
    with open(path, "wb") as file:
        Py2Pickler(file, protocol=2).dump(content)


def write_fake_cifar10(root, per_batch=6, seed=0):
    """A cifar-10-batches-py tree with `per_batch` images per batch; returns the arrays written."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    written = {}
    for name in [f"data_batch_{index}" for index in range(1, 6)] + ["test_batch"]:
        images = rng.integers(0, 256, size=(per_batch, 3, 32, 32), dtype=np.uint8)
        labels = rng.integers(0, 10, size=per_batch)
        dump(folder / name, {b"batch_label": name.encode(), b"labels": [int(v) for v in labels],
                             b"data": images.reshape(per_batch, 3072), b"filenames": [b"x.png"] * per_batch})
        written[name] = (images, labels)
    dump(folder / "batches.meta", {b"label_names": [c.encode() for c in CLASSES], b"num_vis": 3072})
    return written


def write_fake_cifar100(root, count=8, seed=0):
    """A cifar-100-python tree whose fine and coarse labels differ on every image; returns the fine labels."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    fine = {}
    for name in ("train", "test"):
        images = rng.integers(0, 256, size=(count, 3072), dtype=np.uint8)
        fine[name] = rng.integers(20, 100, count)
        coarse = fine[name] % 20  # a valid coarse label (0..19) that is never the fine one
        dump(folder / name, {b"data": images, b"fine_labels": [int(v) for v in fine[name]],
                             b"coarse_labels": [int(v) for v in coarse]})
    dump(folder / "meta", {b"fine_label_names": [f"class{i}".encode() for i in range(100)],
                           b"coarse_label_names": [f"superclass{i}".encode() for i in range(20)]})
    return fine


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SELECTIVITY_CACHE", str(tmp_path / "cache"))


def test_cifar10_shapes_labels_names_and_statistics(tmp_path):
    written = write_fake_cifar10(tmp_path / "data")
    splits = load_dataset("cifar10", root=tmp_path / "data")
    train_images = np.concatenate([written[f"data_batch_{i}"][0] for i in range(1, 6)])
    train_labels = np.concatenate([written[f"data_batch_{i}"][1] for i in range(1, 6)])
    assert splits.train.images.shape == (30, 3, 32, 32) and splits.train.images.dtype == torch.uint8
    assert splits.train.images.is_contiguous() and splits.test.images.is_contiguous()
    assert splits.train.labels.dtype == torch.int64
    np.testing.assert_array_equal(splits.train.images.numpy(), train_images)
    np.testing.assert_array_equal(splits.train.labels.numpy(), train_labels)
    np.testing.assert_array_equal(splits.test.images.numpy(), written["test_batch"][0])
    assert splits.class_names == tuple(CLASSES) and splits.num_classes == 10
    assert splits.image_shape == (3, 32, 32)
    scaled = train_images / 255.0
    np.testing.assert_allclose(splits.mean, scaled.mean(axis=(0, 2, 3)), rtol=1e-10)
    np.testing.assert_allclose(splits.std, scaled.std(axis=(0, 2, 3)), rtol=1e-8)


def test_cifar100_uses_fine_labels(tmp_path):
    fine = write_fake_cifar100(tmp_path)
    splits = load_dataset("cifar100", root=tmp_path)
    assert splits.num_classes == 100 and splits.class_names[3] == "class3"
    assert splits.train.images.shape == (8, 3, 32, 32)
    np.testing.assert_array_equal(splits.train.labels.numpy(), fine["train"])
    np.testing.assert_array_equal(splits.test.labels.numpy(), fine["test"])


def test_missing_batch_is_one_line_naming_the_file(tmp_path):
    write_fake_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(SelectivityError, match=r"data_batch_3 is missing.*download") as error:
        load_dataset("cifar10", root=tmp_path)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_pickle_names_the_file(tmp_path, damage):
    write_fake_cifar10(tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    content = batch.read_bytes()
    batch.write_bytes(content[: len(content) // 2] if damage == "truncate" else b"not a pickle at all")
    with pytest.raises(SelectivityError, match=r"data_batch_2 is corrupt") as error:
        load_dataset("cifar10", root=tmp_path)
    assert "\n" not in str(error.value)


def test_pickle_without_labels_names_the_file(tmp_path):
    write_fake_cifar10(tmp_path)
    dump(tmp_path / "cifar-10-batches-py" / "test_batch", {b"data": np.zeros((2, 3072), np.uint8)})
    with pytest.raises(SelectivityError, match=r"test_batch lacks the keys"):
        load_dataset("cifar10", root=tmp_path)


def test_download_fetches_the_official_archive_when_files_are_missing(tmp_path, monkeypatch):
    calls = []

    def fake_download(url, download_root, filename, md5):
        calls.append((url, filename, md5))
        write_fake_cifar10(tmp_path / "fresh")  # what extracting the archive leaves behind

    monkeypatch.setattr(cifar, "download_and_extract_archive", fake_download)
    splits = load_dataset("cifar10", root=tmp_path / "fresh", download=True)
    assert calls == [("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "cifar-10-python.tar.gz",
                      "c58f30108f718f92721af3b95e74349a")]
    assert len(splits.train) == 30
    load_dataset("cifar10", root=tmp_path / "fresh", download=True)
    assert len(calls) == 1  # files present: no second download


class RunsCode:
    """Unpickles by calling a function of the pickle's choosing (here: one that leaves a file behind)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("protocol", [2, 4])
def test_a_batch_that_would_run_code_is_refused_and_nothing_runs(tmp_path, protocol):
    write_fake_cifar10(tmp_path)
    marker = tmp_path / "code-ran"
    with open(tmp_path / "cifar-10-batches-py" / "data_batch_4", "wb") as file:
        pickle.dump({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 1], "x": RunsCode(marker)}, file,
                    protocol=protocol)
    with pytest.raises(SelectivityError, match=r"data_batch_4 is corrupt \(UnpicklingError: it names io.open, which "
                                               r"no CIFAR file holds\)") as error:
        load_dataset("cifar10", root=tmp_path)
    assert not marker.exists() and "\n" not in str(error.value)


def test_batches_pickled_by_python3_with_numpy_labels_still_load(tmp_path):
    # what numpy-era scripts write: str keys, protocol 4, labels as an int64 array and numpy scalars
    written = write_fake_cifar10(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    for name, (images, labels) in written.items():
        with open(folder / name, "wb") as file:
            pickle.dump({"data": images.reshape(len(labels), 3072), "labels": np.asarray(labels, np.int64),
                         "batch_label": name, "first": np.int64(labels[0])}, file, protocol=4)
    splits = load_dataset("cifar10", root=tmp_path)
    images, labels = written["test_batch"]
    np.testing.assert_array_equal(splits.test.images.numpy(), images)
    np.testing.assert_array_equal(splits.test.labels.numpy(), labels)
