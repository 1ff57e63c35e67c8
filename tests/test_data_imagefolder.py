"""imagefolder loader: root/{train,test|val}/<class>/<image> trees."""
import numpy as np
import pytest
import torch
from PIL import Image

from selectivity.data import load_dataset
from selectivity.errors import SelectivityError


def write_tree(root, splits=("train", "test"), classes=("cat", "ant"), per_class=2, mode="RGB", size=(5, 4)):
    """Image j of class c in a split is a flat image of value 40*class_index + j (class index by sorted name)."""
    for split in splits:
        for class_index, class_name in enumerate(sorted(classes)):
            folder = root / split / class_name
            folder.mkdir(parents=True)
            for index in range(per_class):
                value = 40 * class_index + index
                Image.new(mode, size, value if mode == "L" else (value, value, value)).save(folder / f"{index}.png")
    return root


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SELECTIVITY_CACHE", str(tmp_path / "cache"))


def test_rgb_tree_labels_by_sorted_class_name(tmp_path):
    write_tree(tmp_path / "tree")
    (tmp_path / "tree" / "train" / "ant" / "notes.txt").write_text("not an image: ignored")
    splits = load_dataset("imagefolder", root=tmp_path / "tree")
    assert splits.class_names == ("ant", "cat")
    assert splits.image_shape == (3, 4, 5) and splits.train.images.dtype == torch.uint8
    assert splits.train.labels.tolist() == [0, 0, 1, 1] and splits.test.labels.tolist() == [0, 0, 1, 1]
    assert splits.train.images[:, 0, 0, 0].tolist() == [0, 1, 40, 41]
    expected = np.array([0, 1, 40, 41]) / 255.0  # flat images: the mean is the mean of the values
    np.testing.assert_allclose(splits.mean, [expected.mean()] * 3)
    np.testing.assert_allclose(splits.std, [expected.std()] * 3)


def test_grayscale_tree_keeps_one_channel(tmp_path):
    write_tree(tmp_path, mode="L")
    assert load_dataset("imagefolder", root=tmp_path).image_shape == (1, 4, 5)


def test_one_colour_image_makes_the_dataset_rgb(tmp_path):
    write_tree(tmp_path, mode="L")
    Image.new("RGB", (5, 4), (1, 2, 3)).save(tmp_path / "test" / "cat" / "colour.png")
    splits = load_dataset("imagefolder", root=tmp_path)
    assert splits.image_shape == (3, 4, 5)
    assert splits.train.images[2, :, 0, 0].tolist() == [40, 40, 40]  # grayscale expanded to equal planes


def test_val_stands_in_for_test(tmp_path):
    write_tree(tmp_path, splits=("train", "val"))
    assert len(load_dataset("imagefolder", root=tmp_path).test) == 4


def test_missing_test_split_error(tmp_path):
    write_tree(tmp_path, splits=("train",))
    with pytest.raises(SelectivityError, match=r"test \(or .*val\) is missing") as error:
        load_dataset("imagefolder", root=tmp_path)
    assert "\n" not in str(error.value)


def test_mismatched_sizes_name_the_first_offending_file(tmp_path):
    write_tree(tmp_path)
    Image.new("RGB", (7, 7)).save(tmp_path / "train" / "cat" / "1.png")
    Image.new("RGB", (9, 9)).save(tmp_path / "test" / "ant" / "0.png")
    with pytest.raises(SelectivityError, match=r"train/cat/1.png is 7x7 pixels; expected 5x4") as error:
        load_dataset("imagefolder", root=tmp_path)
    assert "\n" not in str(error.value)


def test_different_class_sets_error(tmp_path):
    write_tree(tmp_path)
    (tmp_path / "test" / "bee").mkdir()
    with pytest.raises(SelectivityError, match=r"differing: \['bee'\]"):
        load_dataset("imagefolder", root=tmp_path)
