"""The trainer's step as train_run sets it up, for the benchmarks that time it (train_speed, sweep_throughput)."""
import torch

from selectivity.config import ExperimentConfig
from selectivity.data import DatasetSplits
from selectivity.regularizer import SelectivityRegularizer
from selectivity.train.loop import make_optimizer, regularizer_alpha
from selectivity.setup import uses_bf16
from selectivity.train.step import TrainStep


def attached_train_step(model: torch.nn.Module, data: DatasetSplits, config: ExperimentConfig,
                        device: torch.device, alpha: float) -> TrainStep:
    """channels_last model, the trainer's optimizer and precision, alpha as train_run passes it (a
    device tensor unless 0), the training split on the device, train.cuda_graphs from `config`.

    The regularizer stays attached for the life of the process, as train_run attaches once per run.
    """
    model = model.to(device, memory_format=torch.channels_last)
    optimizer = make_optimizer(model, config, device)
    regularizer = SelectivityRegularizer(regularizer_alpha(alpha, device), data.num_classes)
    regularizer.attach(model).__enter__()
    images, labels = data.train.images.to(device), data.train.labels.to(device)
    return TrainStep(model, optimizer, regularizer, data, images, labels, config,
                     uses_bf16(config.train.precision, device), cuda_graphs=config.train.cuda_graphs)
