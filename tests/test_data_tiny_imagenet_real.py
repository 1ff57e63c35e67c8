"""Tiny ImageNet end to end on real images: the sample in ../shared/data (all 200 classes,
10 train and 5 val images each, 49 grayscale JPEGs) written in the official layout by
make_tiny_imagenet.py, loaded by the project's loader, then one training step of resnet18.
"""

import numpy as np
import pytest
import torch
from PIL import Image

from selectivity.config import DataSettings, ExperimentConfig, ModelSettings, TrainSettings
from selectivity.data import load_dataset
from selectivity.regularizer import SelectivityRegularizer
from selectivity.train.augment import draw_epoch_randomness
from selectivity.train.loop import make_optimizer
from selectivity.setup import build_model
from selectivity.train.step import TrainStep, epoch_plan
from tests.shared_data import SHARED_DATA, write_standard_layout


pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not (SHARED_DATA / "make_tiny_imagenet.py").is_file(),
                                 reason=f"{SHARED_DATA} is absent")]


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """(root, folder) after make_tiny_imagenet.py wrote the sample."""
    root = write_standard_layout("make_tiny_imagenet.py", tmp_path_factory.mktemp("tiny"))
    return root, root / "tiny-imagenet-200"


@pytest.fixture(scope="module")
def splits(written, tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SELECTIVITY_CACHE", str(tmp_path_factory.mktemp("cache")))
        return load_dataset("tiny-imagenet", root=written[0])


def test_layout_is_the_official_one(written):
    _, folder = written
    wnids = (folder / "wnids.txt").read_text().split()
    assert len(wnids) == 200 and len(set(wnids)) == 200
    assert all(len(list((folder / "train" / w / "images").glob("*.JPEG"))) == 10 for w in wnids)
    assert len(list((folder / "val" / "images").glob("*.JPEG"))) == 1000
    assert len((folder / "val" / "val_annotations.txt").read_text().splitlines()) == 1000


def test_sizes_and_balanced_classes(splits):
    assert splits.num_classes == 200
    assert splits.train.images.shape == (2000, 3, 64, 64) and splits.test.images.shape == (1000, 3, 64, 64)
    assert splits.train.images.dtype == torch.uint8
    assert torch.bincount(splits.train.labels, minlength=200).tolist() == [10] * 200
    assert torch.bincount(splits.test.labels, minlength=200).tolist() == [5] * 200


def test_class_names_come_from_words_txt_in_wnids_order(written, splits):
    _, folder = written
    wnids = (folder / "wnids.txt").read_text().split()
    words = dict(line.split("\t", 1) for line in (folder / "words.txt").read_text().splitlines() if "\t" in line)
    assert splits.class_names == tuple(words[w].strip() for w in wnids)
    assert len(words) > 200  # words.txt covers all of WordNet's synsets, not just these classes


def test_grayscale_jpegs_become_three_equal_channels(written, splits):
    _, folder = written
    wnids = (folder / "wnids.txt").read_text().split()
    train_files = [f for w in wnids for f in sorted((folder / "train" / w / "images").glob("*.JPEG"))]
    gray = [i for i, f in enumerate(train_files) if Image.open(f).mode == "L"]
    assert gray, "the sample holds grayscale JPEGs"
    index = gray[0]
    pixels = np.asarray(Image.open(train_files[index]))  # [64, 64], decoded independently with PIL
    image = splits.train.images[index]  # [3, 64, 64]
    for channel in range(3):
        assert np.abs(image[channel].numpy().astype(int) - pixels.astype(int)).max() <= 1


@pytest.mark.slow  # ~5-15 s on the 2-core build CPU
def test_one_training_step_of_resnet18_at_64x64(splits):
    torch.manual_seed(0)
    config = ExperimentConfig(data=DataSettings(dataset="tiny-imagenet", crop_padding=4, flip=True),
                              model=ModelSettings(name="resnet18", stem="imagenet"),
                              train=TrainSettings(batch_size=64, lr=0.1, precision="fp32"), device="cpu")
    model = build_model(config, splits).to(memory_format=torch.channels_last)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    regularizer = SelectivityRegularizer(torch.tensor(-1.0), splits.num_classes)
    with regularizer.attach(model):
        step = TrainStep(model, make_optimizer(model, config, torch.device("cpu")), regularizer, splits,
                         splits.train.images, splits.train.labels, config, use_bf16=False)
        step.start_epoch()
        plan = epoch_plan(draw_epoch_randomness(torch.Generator().manual_seed(0), 2000, 4, True))
        step(plan[:, :64], lr=0.1)
    assert model.fc.out_features == 200
    assert torch.isfinite(step.last_objective) and not step.saw_nonfinite()
    assert 0 < float(step.totals.selectivity) < 1  # the regularizer measured units on this batch
    unchanged = [name for name, p in model.named_parameters() if torch.equal(p, before[name])]
    assert unchanged == []
