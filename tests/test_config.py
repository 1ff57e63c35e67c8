import math
import dataclasses

import pytest

from selectivity.alpha_schedule import alpha_at_epoch, parse_alpha
from selectivity.config import (ExperimentConfig, RegularizerSettings, TrainSettings, apply_overrides, config_from_dict,
                                config_hash, load_config, non_default_settings, to_dict)
from selectivity.errors import SelectivityError
from selectivity.train.schedule import learning_rate


def test_pinned_hashes():
    """A changed hash orphans every stored run: change these only on purpose."""
    assert config_hash(ExperimentConfig()) == "44136fa355b3"
    assert config_hash(config_from_dict({"regularizer": {"alpha": -1.0}})) == config_hash(
        config_from_dict({"regularizer": {"alpha": -1}})
    )
    resnet20 = {"model": {"name": "resnet20"}, "data": {"dataset": "cifar10", "crop_padding": 4, "flip": True},
                "train": {"epochs": 200, "milestones": [100, 150]}, "regularizer": {"alpha": -1.0}}
    assert config_hash(config_from_dict(resnet20)) == PINNED_RESNET20


PINNED_RESNET20 = "acf38a71c820"


def test_seed_device_and_data_location_are_not_hashed():
    base = ExperimentConfig()
    moved = config_from_dict({"seed": 3, "device": "cpu", "data": {"root": "/elsewhere", "download": True},
                              "train": {"compile": True}})
    assert config_hash(moved) == config_hash(base)


def test_a_new_setting_with_a_default_leaves_hashes_unchanged():
    @dataclasses.dataclass(frozen=True)
    class TrainWithNewSetting(TrainSettings):
        new_knob: float = 0.5

    extended = dataclasses.replace(ExperimentConfig(), train=TrainWithNewSetting())
    assert non_default_settings(extended) == {}
    assert config_hash(extended) == config_hash(ExperimentConfig())


def test_toml_file_and_overrides(tmp_path):
    path = tmp_path / "x.toml"
    path.write_text('seed = 1\n[train]\nepochs = 5\nmilestones = [2, 4]\n[regularizer]\nalpha = "0x2,-20"\n')
    config = load_config(path, {"train.lr": 0.05, "regularizer.layers": "blocks"})
    assert config.train == TrainSettings(epochs=5, milestones=(2, 4), lr=0.05)
    assert config.regularizer == RegularizerSettings(alpha="0x2,-20", layers="blocks")
    assert apply_overrides({"a": {"b": 1}}, {"a.c": 2, "d": 3}) == {"a": {"b": 1, "c": 2}, "d": 3}


@pytest.mark.parametrize("values,message", [
    ({"train": {"epoch": 3}}, "unknown key 'train.epoch'; valid keys are: epochs"),
    ({"optimizer": {}}, "unknown key 'optimizer'"),
    ({"train": {"epochs": "ten"}}, "train.epochs = 'ten' has type str; expected int"),
    ({"train": {"epochs": 2.5}}, "expected int"),
    ({"data": {"flip": 1}}, "data.flip = 1 has type int; expected bool"),
    ({"train": {"schedule": "linear"}}, "train.schedule = 'linear' is invalid; expected one of 'step'"),
    ({"regularizer": {"alpha": "fast"}}, "alpha schedule 'fast' is malformed"),
    ({"regularizer": {"alpha": "-1,0x5"}}, "is malformed at '-1'"),
])
def test_bad_config_values_are_one_line_errors(values, message):
    with pytest.raises(SelectivityError, match=message.replace("(", r"\(").replace("[", r"\[")) as error:
        config_from_dict(values)
    assert "\n" not in str(error.value)


def test_missing_or_invalid_config_file(tmp_path):
    with pytest.raises(SelectivityError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
    (tmp_path / "bad.toml").write_text("[train\n")
    with pytest.raises(SelectivityError, match="is not valid TOML"):
        load_config(tmp_path / "bad.toml")


def test_alpha_schedules():
    assert parse_alpha(-1) == [(-1.0, None)]
    assert [alpha_at_epoch("0x5,-20", e) for e in (0, 4, 5, 99)] == [0.0, 0.0, -20.0, -20.0]
    assert [alpha_at_epoch("-20x2,0", e) for e in (0, 1, 2)] == [-20.0, -20.0, 0.0]
    assert [alpha_at_epoch("1x1,2x1", e) for e in (0, 1, 5)] == [1.0, 2.0, 2.0]  # last value holds


def test_learning_rate_schedules_by_hand():
    step = TrainSettings(epochs=200, lr=0.1, milestones=(100, 150), schedule="step")
    assert [learning_rate(step, s, 10) for s in (0, 999, 1000, 1500)] == pytest.approx([0.1, 0.1, 0.01, 0.001])
    onecycle = TrainSettings(epochs=10, lr=0.4, schedule="onecycle", warmup_epochs=2)
    assert [learning_rate(onecycle, s, 10) for s in (0, 10, 20, 60, 100)] == pytest.approx([0, 0.2, 0.4, 0.2, 0])
    cosine = TrainSettings(epochs=4, lr=1.0, schedule="cosine", warmup_epochs=1)
    assert [learning_rate(cosine, s, 2) for s in (0, 1, 4, 8)] == pytest.approx([0, 0.5 * (1 + math.cos(math.pi / 8)) * 0.5, 0.5, 0])


@pytest.mark.parametrize("make", [
    lambda: TrainSettings(epochs=0),
    lambda: TrainSettings(lr=float("inf")),
    lambda: dataclasses.replace(ExperimentConfig(), seed=-1),
    lambda: dataclasses.replace(ExperimentConfig(), seed=2**64),
    lambda: dataclasses.replace(ExperimentConfig(), device="tpu"),
    lambda: RegularizerSettings(alpha=float("nan")),
    lambda: RegularizerSettings(alpha="0x2,nan"),
    lambda: RegularizerSettings(layers=("relu1", "")),
], ids=["epochs", "lr-inf", "seed-negative", "seed-65-bits", "device", "alpha-nan", "alpha-schedule-nan", "empty-name"])
def test_settings_made_in_code_are_checked_too(make):
    with pytest.raises(SelectivityError, match="invalid|not finite|finite values"):
        make()


def test_the_edges_of_each_range_are_accepted():
    train = TrainSettings(lr=0.0, momentum=0.0, label_smoothing=1.0, weight_decay=0.0, milestones=(1,), epochs=1)
    config = ExperimentConfig(train=train, seed=2**64 - 1, device="cuda:3")
    assert config_from_dict(to_dict(config)) == config


def test_track_every_leaves_existing_hashes_unchanged_and_is_hashed_when_set():
    # computed on main (b4c1599) before regularizer.track_every existed: the default run and alpha = -1
    main_default, main_alpha_minus_1 = "44136fa355b3", "ccbb8f374c76"
    assert config_hash(ExperimentConfig()) == main_default
    assert config_hash(config_from_dict({"regularizer": {"track_every": 1}})) == main_default
    assert config_hash(config_from_dict({"regularizer": {"alpha": -1.0}})) == main_alpha_minus_1
    every_5 = config_from_dict({"regularizer": {"track_every": 5}})  # validates
    assert every_5.regularizer.track_every == 5 and RegularizerSettings(track_every=5).track_every == 5
    # a different logged train_batch_si is a different result: its own folder
    assert non_default_settings(every_5) == {"regularizer.track_every": 5}
    assert config_hash(every_5) != main_default


@pytest.mark.parametrize("value", [0, -1, 2.5, "a", True])
def test_bad_track_every_is_a_one_line_error_from_toml_and_from_code(value):
    with pytest.raises(SelectivityError, match=r"regularizer\.track_every = .* (is invalid; expected an integer >= 1|"
                                               r"has type \w+; expected int)") as from_toml:
        config_from_dict({"regularizer": {"track_every": value}})
    with pytest.raises(SelectivityError, match=r"regularizer\.track_every = .* is invalid; expected an integer >= 1") \
            as from_code:
        RegularizerSettings(track_every=value)
    assert "\n" not in str(from_toml.value) and "\n" not in str(from_code.value)


def test_track_every_above_1_with_cuda_graphs_is_a_one_line_error():
    with pytest.raises(SelectivityError, match="train.cuda_graphs = true with regularizer.track_every = 3; "
                                               "expected track_every = 1 with CUDA graphs") as error:
        config_from_dict({"train": {"cuda_graphs": True}, "regularizer": {"track_every": 3}})
    assert "\n" not in str(error.value)
    assert config_from_dict({"train": {"cuda_graphs": True}, "regularizer": {"track_every": 1}}).train.cuda_graphs
