"""Image trees read lazily: listings in both layouts, the evaluation transform, bad files and bad ground truth."""
import hashlib
import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from selectivity.data.image_tree import list_image_tree
from selectivity.data.streamed import (Preprocessing, StreamedImages, hf_preprocessing, load_rgb,
                                       timm_preprocessing, torchvision_preprocessing)
from selectivity.errors import SelectivityError


def write_image(path, size, seed, mode="RGB"):
    rng = np.random.default_rng(seed)
    width, height = size
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).convert(mode).save(path)


def class_tree(root, per_class=(3, 2, 4)):
    for label, count in enumerate(per_class):
        for i in range(count):
            write_image(root / f"class_{label}" / f"img_{i}.png", (20 + 7 * i, 30 + 3 * label), 10 * label + i)
    return root


def test_class_folders_list_sorted_classes_and_their_files(tmp_path):
    listing = list_image_tree(class_tree(tmp_path / "tree"))
    assert listing.class_names == ("class_0", "class_1", "class_2")
    assert listing.labels.tolist() == [0, 0, 0, 1, 1, 2, 2, 2, 2]
    assert [p.name for p in listing.files[:3]] == ["img_0.png", "img_1.png", "img_2.png"]


def test_an_empty_class_folder_and_a_one_class_tree_are_refused(tmp_path):
    root = class_tree(tmp_path / "tree")
    (root / "class_3").mkdir()
    with pytest.raises(SelectivityError, match="class_3 holds no image files"):
        list_image_tree(root)
    write_image(tmp_path / "one" / "only" / "a.png", (8, 8), 0)
    with pytest.raises(SelectivityError, match="holds 1 class; SI needs at least 2"):
        list_image_tree(tmp_path / "one")


def test_loose_images_without_ground_truth_point_to_val_labels(tmp_path):
    write_image(tmp_path / "flat" / "a.png", (8, 8), 0)
    with pytest.raises(SelectivityError, match="1 images lie directly in it: pass --val-labels"):
        list_image_tree(tmp_path / "flat")


def flat_tree(root, names_and_classes):
    for seed, (name, _) in enumerate(names_and_classes):
        write_image(root / name, (16 + seed, 12), seed)
    return root


def test_ground_truth_file_by_name_or_stem_with_a_header_and_commas(tmp_path):
    root = flat_tree(tmp_path / "val", [("ILSVRC_1.JPEG", "n02"), ("ILSVRC_2.JPEG", "n01"), ("ILSVRC_3.JPEG", "n02")])
    truth = tmp_path / "LOC_val_solution.csv"  # Kaggle's layout: stem, then a prediction string
    truth.write_text("ImageId,PredictionString\nILSVRC_1,n02 1 2 3 4\nILSVRC_2,n01 5 6 7 8\nILSVRC_3,n02 0 0 1 1\n")
    listing = list_image_tree(root, truth)
    assert listing.class_names == ("n01", "n02")  # sorted wnids, as torchvision and timm index them
    assert listing.labels.tolist() == [1, 0, 1]
    numeric = tmp_path / "numeric.txt"
    numeric.write_text("ILSVRC_1.JPEG 3\nILSVRC_2.JPEG 0\nILSVRC_3.JPEG 3\n")
    listing = list_image_tree(root, numeric)
    assert listing.labels.tolist() == [3, 0, 3] and len(listing.class_names) == 4


def test_a_ground_truth_file_with_a_byte_order_mark_and_windows_line_ends_reads_as_plain(tmp_path):
    root = flat_tree(tmp_path / "val", [("a.png", "x"), ("b.png", "y"), ("c.png", "x")])
    truth = tmp_path / "truth.csv"  # as a spreadsheet saves it: BOM first, CRLF line ends
    truth.write_bytes("\ufeffimage,label\r\na.png,n02\r\nb.png,n01\r\nc.png,n02\r\n".encode("utf-8"))
    listing = list_image_tree(root, truth)
    assert listing.class_names == ("n01", "n02") and listing.labels.tolist() == [1, 0, 1]


@pytest.mark.parametrize("text, message", [
    ("ILSVRC_1.JPEG n01\nILSVRC_2.JPEG n02\n", r"does not match .*: 1 image\(s\) without a line, 0 line"),
    ("ILSVRC_1.JPEG n01\nILSVRC_2.JPEG n02\nILSVRC_3.JPEG n01\nILSVRC_9.JPEG n01\n",
     r"0 image\(s\) without a line, 1 line\(s\) without an image \(e.g. ILSVRC_9.JPEG"),
    ("ILSVRC_1.JPEG n01\nILSVRC_1.JPEG n02\n", "lists ILSVRC_1.JPEG twice"),
    ("ILSVRC_1.JPEG\n", r"line 1 is 'ILSVRC_1.JPEG'; expected '<image> <class>'"),
    ("", "has no lines"),
])
def test_a_ground_truth_file_that_does_not_fit_is_refused_in_one_line(tmp_path, text, message):
    root = flat_tree(tmp_path / "val", [("ILSVRC_1.JPEG", ""), ("ILSVRC_2.JPEG", ""), ("ILSVRC_3.JPEG", "")])
    (tmp_path / "truth.txt").write_text(text)
    with pytest.raises(SelectivityError, match=message) as raised:
        list_image_tree(root, tmp_path / "truth.txt")
    assert "\n" not in str(raised.value)


def test_a_stratified_sample_takes_each_class_share_by_a_seeded_hash_of_the_path(tmp_path):
    root = tmp_path / "tree"
    for label, count in enumerate((10, 10, 20)):
        for i in range(count):
            (root / f"c{label}").mkdir(parents=True, exist_ok=True)
            (root / f"c{label}" / f"{i:03d}.png").write_bytes(b"")  # listing reads names only
    listing = list_image_tree(root)
    sample = listing.stratified(8, seed=3)
    assert np.bincount(sample.labels.numpy()).tolist() == [2, 2, 4]
    salt = (3).to_bytes(8, "little")
    for label, quota in ((0, 2), (1, 2), (2, 4)):  # the smallest blake2b(relative path) of each class
        names = [f"c{label}/{i:03d}.png" for i in range((10, 10, 20)[label])]
        expected = sorted(names, key=lambda n: hashlib.blake2b(n.encode(), digest_size=8, salt=salt).digest())[:quota]
        chosen = [p.relative_to(root).as_posix() for p, y in zip(sample.files, sample.labels) if y == label]
        assert sorted(chosen) == sorted(expected)
    assert listing.stratified(40) is listing


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "CMYK", "P", "LA", "I;16"])
@pytest.mark.parametrize("size", [(500, 375), (333, 500), (257, 256), (1000, 201), (256, 263)])  # 263: odd margin 39
def test_decoding_equals_torchvision_resize_then_centre_crop(tmp_path, mode, size):
    """The PIL arithmetic matches torchvision's eval transform bit for bit (what published weights assume)."""
    import torchvision.transforms as T

    path = tmp_path / ("x.tif" if mode in ("CMYK", "I;16") else "x.png")
    write_image(path, size, 1, mode)
    for interpolation in ("bilinear", "bicubic"):
        mine = load_rgb(path, Preprocessing(256, 224, interpolation=interpolation))
        transform = T.Compose([T.Resize(256, interpolation=T.InterpolationMode(interpolation)), T.CenterCrop(224)])
        with Image.open(path) as image:
            expected = np.asarray(transform(image.convert("RGB")))
        assert mine.shape == (224, 224, 3) and mine.dtype == np.uint8
        np.testing.assert_array_equal(mine, expected)


def test_squash_resizes_to_the_crop_without_keeping_the_aspect(tmp_path):
    import torchvision.transforms as T

    write_image(tmp_path / "x.png", (300, 120), 2)
    with Image.open(tmp_path / "x.png") as image:
        expected = np.asarray(T.Resize((224, 224))(image.convert("RGB")))
    np.testing.assert_array_equal(load_rgb(tmp_path / "x.png", Preprocessing(224, 224, squash=True)), expected)


def test_unreadable_and_truncated_files_are_left_out_and_named(tmp_path):
    root = class_tree(tmp_path / "tree", (3, 3))
    good = (root / "class_0" / "img_0.png").read_bytes()
    (root / "class_0" / "img_9.png").write_bytes(good[: len(good) // 2])  # truncated
    (root / "class_1" / "img_9.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    streamed = StreamedImages(list_image_tree(root), Preprocessing(16, 16))
    batches = list(streamed.batches(batch_size=3, workers=0))
    assert sum(len(labels) for _, labels, _ in batches) == 6
    kept = torch.cat([index for _, _, index in batches]).tolist()
    assert sorted(streamed.unreadable_indices) == [3, 7] and sorted(kept + [3, 7]) == list(range(8))
    assert streamed.measured_labels().tolist() == [0, 0, 0, 1, 1, 1]
    with pytest.warns(UserWarning, match=r"2 of 8 image\(s\) .* left out: class_0/img_9.png .*class_1/img_9.jpg"):
        assert streamed.report_unreadable() == 6


def test_a_tree_of_only_unreadable_files_is_refused(tmp_path):
    for label in range(2):
        (tmp_path / "tree" / f"c{label}").mkdir(parents=True)
        (tmp_path / "tree" / f"c{label}" / "x.jpg").write_bytes(b"junk")
    streamed = StreamedImages(list_image_tree(tmp_path / "tree"), Preprocessing(8, 8))
    with pytest.raises(SelectivityError, match="all 2 images .* are unreadable"):
        streamed.probe_splits()


def test_worker_processes_give_the_same_batches_as_the_main_process(tmp_path):
    streamed = StreamedImages(list_image_tree(class_tree(tmp_path / "tree")), Preprocessing(24, 20))
    here = list(streamed.batches(batch_size=4, workers=0))
    there = list(streamed.batches(batch_size=4, workers=2))
    assert len(here) == len(there) == 3
    for (a, la, ia), (b, lb, ib) in zip(here, there):
        assert torch.equal(a, b) and torch.equal(la, lb) and torch.equal(ia, ib)
    first = load_rgb(streamed.listing.files[0], streamed.preprocessing)  # [H, W, 3] -> [3, H, W]
    assert torch.equal(here[0][0][0], torch.from_numpy(first.copy()).permute(2, 0, 1))


def test_torchvision_weights_files_select_their_own_transform():
    v1, source = torchvision_preprocessing("resnet50", "/w/resnet50-0676ba61.pth")
    assert (v1.resize, v1.crop, v1.interpolation) == (256, 224, "bilinear") and "IMAGENET1K_V1" in source
    v2, source = torchvision_preprocessing("resnet50", "resnet50-11ad3fa6.pth")
    assert (v2.resize, v2.crop) == (232, 224) and "IMAGENET1K_V2" in source
    default, source = torchvision_preprocessing("resnet50", "mine.pth")
    assert "DEFAULT" in source and default.crop == 224
    assert v1.mean == (0.485, 0.456, 0.406) and v1.std == (0.229, 0.224, 0.225)


def test_timm_and_hf_configs_give_their_stated_transforms():
    vit = timm_preprocessing({"input_size": (3, 224, 224), "crop_pct": 0.9, "interpolation": "bicubic",
                              "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)})
    assert (vit.resize, vit.crop, vit.interpolation, vit.mean) == (248, 224, "bicubic", (0.5, 0.5, 0.5))  # floor(224/0.9)
    convnext = hf_preprocessing(json.loads('{"size": {"shortest_edge": 224}, "crop_pct": 0.875, "resample": 3}'))
    assert (convnext.resize, convnext.crop, convnext.interpolation) == (256, 224, "bicubic")
    resnet = hf_preprocessing({"size": {"shortest_edge": 256}, "crop_size": {"height": 224, "width": 224},
                               "image_mean": [0.1, 0.2, 0.3], "image_std": [1, 1, 1], "resample": 2})
    assert (resnet.resize, resnet.crop, resnet.mean) == (256, 224, (0.1, 0.2, 0.3))
    hf_vit = hf_preprocessing({"size": {"height": 224, "width": 224}, "resample": 2})
    assert hf_vit.squash and hf_vit.crop == 224


def test_preprocessing_settings_out_of_range_are_refused():
    with pytest.raises(SelectivityError, match="expected 1 <= crop <= resize"):
        Preprocessing(200, 224)
    with pytest.raises(SelectivityError, match="std > 0"):
        Preprocessing(std=(0.2, 0.0, 0.2))
    with pytest.raises(SelectivityError, match="interpolation 'area'"):
        Preprocessing(interpolation="area")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Preprocessing(32, 32)
