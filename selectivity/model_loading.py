"""Resolve "which model?" for measurement: a run folder of ours, a registry name, or a torchvision name.

Every source ends as an nn.Module in eval-ready form plus the facts the measurement needs
(a label for file names, the run's settings if any, which normalisation fits it). Every
failure is a one-line SelectivityError naming the file or name that was wrong.
"""
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from selectivity import checkpoint_import
from selectivity.config import ExperimentConfig, config_from_dict, config_hash
from selectivity.data import DatasetSplits
from selectivity.data.streamed import Preprocessing, torchvision_preprocessing
from selectivity.errors import SelectivityError
from selectivity.models import create_model
from selectivity.setup import build_model



@dataclass(frozen=True)
class LoadedModel:
    """A model ready to measure.

    Attributes:
        model: the network (weights loaded).
        label: short name for output folders, e.g. "resnet20-3f2a9c1b0d4e-seed_0".
        normalization: "dataset" (our models) or "imagenet" (torchvision models' default).
        notes: how the weights were read and matched (renamed keys, stripped prefixes), for the user.
        preprocessing: the evaluation transform the model's source states (resize, crop, mean/std),
            used to decode an image tree; None where the source states none (our models).
        preprocessing_source: where `preprocessing` came from, for the summary.
    """

    model: nn.Module
    label: str
    normalization: str
    notes: tuple[str, ...] = ()
    preprocessing: Preprocessing | None = None
    preprocessing_source: str = ""


def read_run_config(run_dir: str | Path) -> ExperimentConfig:
    """The settings of a run folder (DIR/config.json), after checking DIR/checkpoint.pt exists.

    Args:
        run_dir: a run folder written by the trainer (see selectivity.store).

    Returns:
        The run's ExperimentConfig.
    """
    run_dir = Path(run_dir)
    config_path, checkpoint_path = run_dir / "config.json", run_dir / "checkpoint.pt"
    if not run_dir.is_dir():
        raise SelectivityError(f"run folder {run_dir} does not exist; expected a folder holding config.json and checkpoint.pt")
    if not config_path.is_file():
        raise SelectivityError(f"run folder {run_dir} has no config.json; expected a run folder written by `selectivity train`")
    if not checkpoint_path.is_file():
        raise SelectivityError(
            f"run folder {run_dir} has no checkpoint.pt; expected a run that finished at least one epoch"
        )
    try:
        stored = json.loads(config_path.read_text())
        return config_from_dict(stored["config"])
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise SelectivityError(f"{config_path} is not a run config ({error!r}); expected {{'hash', 'non_default', 'config'}}") from None


def read_state_dict(path: str | Path, trust: bool = False) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Weights from a torch.save file: a state dict, a training dict holding one, or (trusted) a module.

    Args:
        path: the .pt/.pth/.th file.
        trust: allow weights_only=False when the file holds other objects (unpickling runs code).

    Returns:
        ({parameter name: tensor} with torch.compile / DataParallel prefixes removed, notes saying how).
    """
    loaded, notes = checkpoint_import.read_checkpoint(path, trust)
    state_dict, unwrap_notes = checkpoint_import.unwrap_state_dict(loaded, str(path))
    return state_dict, notes + unwrap_notes


def weights_input_channels(state_dict: dict[str, torch.Tensor]) -> int | None:
    """Input channels of the first convolution ([out, in, kh, kw] weight), or None if none."""
    for key, value in state_dict.items():
        if key.endswith("weight") and value.dim() == 4:
            return int(value.shape[1])
    return None


def weights_num_classes(state_dict: dict[str, torch.Tensor]) -> int:
    """Outputs of the final layer: rows of the last linear (2-d) weight, else of the last conv weight.

    Linear weights come first: a file may list a projection shortcut's conv after the classifier.
    """
    weights = [value for key, value in state_dict.items() if key.endswith("weight") and value.dim() >= 2]
    final = [value for value in weights if value.dim() == 2] or weights
    if not final:
        raise SelectivityError("the weights hold no layer weight matrix; expected a classifier's state_dict")
    return int(final[-1].shape[0])


def load_weights_into(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str, label: str) -> list[str]:
    """Load weights matched one-to-one onto the model's keys (see checkpoint_import.match_state_dict).

    Returns:
        Notes listing every key that was renamed or filled in.
    """
    matched, notes = checkpoint_import.match_state_dict(state_dict, model.state_dict(), source, label)
    model.load_state_dict(matched, strict=True)
    return notes


def check_input_channels(channels: int | None, data: DatasetSplits, label: str) -> None:
    """Refuse e.g. 1-channel digits fed to a 3-channel model before any forward pass."""
    if channels is not None and channels != data.image_shape[0]:
        raise SelectivityError(
            f"model {label} takes {channels}-channel input but dataset {data.name} has {data.image_shape[0]}-channel "
            f"images; expected a dataset with {channels} channels (or a model built for {data.image_shape[0]})"
        )


def load_run_model(run_dir: str | Path, config: ExperimentConfig, data: DatasetSplits) -> LoadedModel:
    """The model of a run folder: build_model(config, data) with DIR/checkpoint.pt loaded.

    Args:
        run_dir: the run folder (checked by read_run_config).
        config: its settings.
        data: the dataset it will be measured on (gives classes and input channels).
    """
    checkpoint = Path(run_dir) / "checkpoint.pt"
    state_dict, _ = read_state_dict(checkpoint)  # our own format: nothing to report
    label = f"{config.model.name}-{config_hash(config)}-seed_{config.seed}"
    check_input_channels(weights_input_channels(state_dict), data, label)
    model = build_model(config, data)
    load_weights_into(model, state_dict, str(checkpoint), label)
    return LoadedModel(model, label, "dataset")


def load_registry_model(name: str, data: DatasetSplits, weights: str | Path | None = None,
                        trust: bool = False) -> LoadedModel:
    """A model from selectivity.models, sized like its weights (or like `data` when untrained).

    Args:
        name: one of selectivity.models.list_models().
        data: the dataset to measure on.
        weights: a state_dict file (also from other code bases, see checkpoint_import), or None
            for the freshly initialised model.
        trust: allow weights_only=False for a file holding other objects.
    """
    if weights is None:
        model = create_model(name, num_classes=data.num_classes, in_channels=data.image_shape[0])
        return LoadedModel(model, name, "dataset")
    state_dict, notes = read_state_dict(weights, trust)
    channels = weights_input_channels(state_dict) or data.image_shape[0]
    check_input_channels(channels, data, name)
    model = create_model(name, num_classes=weights_num_classes(state_dict), in_channels=channels)
    notes += load_weights_into(model, state_dict, str(weights), name)
    return LoadedModel(model, name, "dataset", tuple(notes))


def import_torchvision():
    """torchvision, imported only here: it is an optional extra, and a torchvision built for another
    torch (PyPI's CUDA wheel beside a CPU-only torch) fails at import with a RuntimeError."""
    try:
        import torchvision
    except (ImportError, RuntimeError) as error:
        reason = " ".join(str(error).split())
        raise SelectivityError(
            f"--torchvision needs torchvision built for the installed torch {torch.__version__} ({reason}); "
            "expected `pip install torchvision` from the index your torch came from, "
            "e.g. --index-url https://download.pytorch.org/whl/cpu for a CPU-only torch") from None
    return torchvision


def load_torchvision_model(name: str, weights: str | Path | None, data: DatasetSplits,
                           trust: bool = False) -> LoadedModel:
    """torchvision.models.get_model(name, weights=None, num_classes=<from the weights>) + local weights.

    Args:
        name: a torchvision classification model, e.g. "resnet18".
        weights: local state_dict file (e.g. resnet18-f37072fd.pth); required, since the
            number of classes is read from its final layer.
        data: the dataset to measure on.
        trust: allow weights_only=False for a file holding other objects.
    """
    torchvision = import_torchvision()
    if weights is None:
        raise SelectivityError(f"--torchvision {name} needs --weights FILE; expected a local state_dict such as resnet18-f37072fd.pth")
    known = torchvision.models.list_models(module=torchvision.models)
    if name not in known:
        raise SelectivityError(f"unknown torchvision model {name!r}; expected one of: {', '.join(known)}")
    state_dict, notes = read_state_dict(weights, trust)
    check_input_channels(weights_input_channels(state_dict), data, name)
    model = torchvision.models.get_model(name, weights=None, num_classes=weights_num_classes(state_dict))
    notes += load_weights_into(model, state_dict, str(weights), name)
    preprocessing, source = torchvision_preprocessing(name, str(weights))
    return LoadedModel(model, name, "imagenet", tuple(notes), preprocessing, source)


def check_output_classes(model: nn.Module, data: DatasetSplits, label: str, device: torch.device) -> int:
    """Run one input through the model; refuse it when it has fewer logits than the dataset has classes.

    More logits than classes is allowed (e.g. a 1000-class network on a labelled subset):
    SI uses the dataset's classes, accuracy the argmax over every logit.

    Returns:
        The number of logits.
    """
    was_training = model.training
    model.eval()
    probe = data.test.images[:1].to(device).float()  # [1, C, H, W]; scale is irrelevant for a shape probe
    try:
        with torch.no_grad():
            logits = model(probe)
    except RuntimeError as error:
        detail = " ".join(str(error).split())[:200]
        raise SelectivityError(
            f"model {label} failed on a {list(probe.shape)} input from {data.name} ({detail}); expected inputs it accepts"
        ) from None
    finally:
        model.train(was_training)
    if logits.dim() != 2 or logits.shape[1] < data.num_classes:
        raise SelectivityError(
            f"model {label} gives logits of shape {list(logits.shape)} but {data.name} has {data.num_classes} classes; "
            f"expected [B, K] with K >= {data.num_classes}"
        )
    return int(logits.shape[1])
