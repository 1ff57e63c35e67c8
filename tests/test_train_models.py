"""Every registered model takes a regularized training step on the CPU (smoke size)."""
import pytest
import torch

from selectivity.config import DataSettings, ExperimentConfig, ModelSettings, TrainSettings
from selectivity.data import DatasetSplits, LabelledImages
from selectivity.models import list_models
from selectivity.regularizer import SelectivityRegularizer
from selectivity.train.augment import draw_epoch_randomness
from selectivity.train.epoch import train_epoch
from selectivity.train.loop import make_optimizer
from selectivity.setup import build_model
from selectivity.train.step import TrainStep, epoch_plan

NATIVE_SIZE = {"resnet18": 64, "resnet50": 64, "small_cnn": 8}


def fake_data(size: int, channels: int) -> DatasetSplits:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (8, channels, size, size), dtype=torch.uint8, generator=generator)
    labels = torch.arange(8) % 4
    split = LabelledImages(images, labels)
    return DatasetSplits("fake", split, split, ("a", "b", "c", "d"), (0.5,) * channels, (0.25,) * channels)


@pytest.mark.parametrize("name", list_models())
def test_one_regularized_step_changes_every_parameter(name):
    torch.manual_seed(0)
    size = NATIVE_SIZE.get(name, 32)
    data = fake_data(size, 1 if name == "small_cnn" else 3)
    config = ExperimentConfig(
        data=DataSettings(crop_padding=2, flip=True), model=ModelSettings(name=name),
        train=TrainSettings(epochs=1, batch_size=8, lr=0.01, weight_decay=0.0), device="cpu",
    )
    model = build_model(config, data).to(memory_format=torch.channels_last)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    optimizer = make_optimizer(model, config, torch.device("cpu"))
    regularizer = SelectivityRegularizer(-1.0, data.num_classes)
    randomness = draw_epoch_randomness(torch.Generator().manual_seed(0), 8, 2, True)
    with regularizer.attach(model):
        stepper = TrainStep(model, optimizer, regularizer, data, data.train.images, data.train.labels, config,
                            use_bf16=False)
        totals, steps = train_epoch(stepper, epoch_plan(randomness), config, first_step=0, progress=False,
                                    description=name)
    assert steps == 1 and torch.isfinite(totals.loss) and 0 <= float(totals.selectivity) <= 1
    unchanged = [k for k, v in model.named_parameters() if torch.equal(v, before[k])]
    assert not unchanged
