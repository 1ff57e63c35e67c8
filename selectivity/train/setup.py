"""Turn settings into the objects a run needs: device, dataset, model."""
import torch
from torch import nn

from selectivity.config import ExperimentConfig
from selectivity.data import DatasetSplits, load_dataset
from selectivity.models import create_model


def resolve_device(name: str = "auto") -> torch.device:
    """"auto" -> the first CUDA device if there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def load_data(config: ExperimentConfig) -> DatasetSplits:
    return load_dataset(config.data.dataset, root=config.data.root or None, download=config.data.download)


def build_model(config: ExperimentConfig, data: DatasetSplits) -> nn.Module:
    """The registered model for `config`, sized for `data` (classes and input channels)."""
    options = {"in_channels": data.image_shape[0]}
    if config.model.stem:
        options["stem"] = config.model.stem
    return create_model(config.model.name, num_classes=data.num_classes, **options)
