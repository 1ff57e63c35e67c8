"""Tiny ImageNet loader on a small fake tiny-imagenet-200 tree."""
import numpy as np
import pytest
import torch
from PIL import Image

from selectivity.data import load_dataset
from selectivity.errors import SelectivityError

# deliberately not sorted: wnids.txt, not the alphabet, defines class order
WNIDS = ["n03000000", "n01000000", "n02000000"]
WORDS = {"n01000000": "goldfish, Carassius auratus", "n02000000": "tabby, tabby cat", "n03000000": "school bus"}


def solid(colour, mode="RGB"):
    return Image.new(mode, (64, 64), colour)


def write_fake_tiny_imagenet(root, train_per_class=2):
    """Train image j of class i is the solid colour (10*i, j, 7); val images have known labels."""
    folder = root / "tiny-imagenet-200"
    folder.mkdir(parents=True)
    (folder / "wnids.txt").write_text("\n".join(WNIDS) + "\n")
    (folder / "words.txt").write_text("".join(f"{w}\t{n}\n" for w, n in WORDS.items()) + "n09999999\tunused\n")
    for label, wnid in enumerate(WNIDS):
        images = folder / "train" / wnid / "images"
        images.mkdir(parents=True)
        (folder / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
        for index in range(train_per_class):
            solid((10 * label, index, 7)).save(images / f"{wnid}_{index}.JPEG", quality=100)
    val = folder / "val" / "images"
    val.mkdir(parents=True)
    val_wnids = ["n02000000", "n03000000", "n01000000", "n02000000"]
    for index, wnid in enumerate(val_wnids):
        solid((50 + index, 0, 0)).save(val / f"val_{index}.JPEG", quality=100)
    solid(200, mode="L").save(val / "val_3.JPEG", quality=100)  # a grayscale JPEG, as the real set has
    (folder / "val" / "val_annotations.txt").write_text(
        "".join(f"val_{i}.JPEG\t{w}\t0\t0\t63\t63\n" for i, w in enumerate(val_wnids)))
    return folder


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SELECTIVITY_CACHE", str(tmp_path / "cache"))


def test_class_order_labels_and_shapes(tmp_path):
    write_fake_tiny_imagenet(tmp_path)
    splits = load_dataset("tiny-imagenet", root=tmp_path)
    assert splits.class_names == ("school bus", "goldfish, Carassius auratus", "tabby, tabby cat")
    assert splits.image_shape == (3, 64, 64) and splits.train.images.dtype == torch.uint8
    assert splits.train.labels.tolist() == [0, 0, 1, 1, 2, 2]
    # red channel encodes the class of each train image (JPEG at quality 100 is near-lossless on flat colour)
    red = splits.train.images[:, 0].float().mean(dim=(1, 2))
    np.testing.assert_allclose(red.numpy(), [0, 0, 10, 10, 20, 20], atol=2)
    # val labels come from val_annotations.txt, indexed by wnids.txt order
    assert splits.test.labels.tolist() == [2, 0, 1, 2]


def test_lists_saved_with_a_byte_order_mark_and_windows_line_ends_read_as_plain(tmp_path):
    folder = write_fake_tiny_imagenet(tmp_path)
    for name in ("wnids.txt", "words.txt", "val/val_annotations.txt"):
        text = (folder / name).read_text()
        (folder / name).write_bytes(("\ufeff" + text.replace("\n", "\r\n")).encode("utf-8"))
    splits = load_dataset("tiny-imagenet", root=tmp_path)
    assert splits.class_names == ("school bus", "goldfish, Carassius auratus", "tabby, tabby cat")
    assert splits.train.labels.tolist() == [0, 0, 1, 1, 2, 2] and splits.test.labels.tolist() == [2, 0, 1, 2]


def test_grayscale_jpeg_becomes_three_equal_channels(tmp_path):
    write_fake_tiny_imagenet(tmp_path)
    gray = load_dataset("tiny-imagenet", root=tmp_path).test.images[3]  # [3, 64, 64]
    assert gray.shape == (3, 64, 64)
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])
    assert abs(gray.float().mean().item() - 200) < 2


def test_missing_val_image_names_it(tmp_path):
    folder = write_fake_tiny_imagenet(tmp_path)
    (folder / "val" / "images" / "val_2.JPEG").unlink()
    with pytest.raises(SelectivityError, match=r"val_2.JPEG is missing.*tiny-imagenet-200"):
        load_dataset("tiny-imagenet", root=tmp_path)


def test_bad_jpeg_names_the_file(tmp_path):
    folder = write_fake_tiny_imagenet(tmp_path)
    bad = folder / "train" / WNIDS[1] / "images" / f"{WNIDS[1]}_1.JPEG"
    bad.write_bytes(bad.read_bytes()[:100])
    with pytest.raises(SelectivityError, match=rf"{WNIDS[1]}_1.JPEG is not a readable image") as error:
        load_dataset("tiny-imagenet", root=tmp_path)
    assert "\n" not in str(error.value)


def test_wrong_image_size_names_the_file(tmp_path):
    folder = write_fake_tiny_imagenet(tmp_path)
    Image.new("RGB", (32, 32)).save(folder / "val" / "images" / "val_1.JPEG")
    with pytest.raises(SelectivityError, match=r"val_1.JPEG is 32x32 pixels; expected 64x64"):
        load_dataset("tiny-imagenet", root=tmp_path)


def test_unknown_wnid_in_annotations(tmp_path):
    folder = write_fake_tiny_imagenet(tmp_path)
    annotations = folder / "val" / "val_annotations.txt"
    annotations.write_text(annotations.read_text().replace("n01000000", "n05555555"))
    with pytest.raises(SelectivityError, match=r"val_annotations.txt has the line"):
        load_dataset("tiny-imagenet", root=tmp_path)


def test_an_image_annotated_twice_is_refused(tmp_path):
    folder = write_fake_tiny_imagenet(tmp_path)
    annotations = folder / "val" / "val_annotations.txt"
    annotations.write_text(annotations.read_text() + "val_1.JPEG\tn03000000\t0\t0\t63\t63\n")
    with pytest.raises(SelectivityError, match=r"lists val_1.JPEG more than once") as error:
        load_dataset("tiny-imagenet", root=tmp_path)
    assert "\n" not in str(error.value)


def test_an_unannotated_val_image_is_left_out_with_a_warning(tmp_path):
    folder = write_fake_tiny_imagenet(tmp_path)
    solid((1, 2, 3)).save(folder / "val" / "images" / "val_9.JPEG", quality=100)
    with pytest.warns(UserWarning, match=r"1 image\(s\) in .*have no line in val_annotations.txt"):
        splits = load_dataset("tiny-imagenet", root=tmp_path)
    assert splits.test.labels.tolist() == [2, 0, 1, 2]  # the four annotated ones, in annotation order
