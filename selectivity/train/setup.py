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


def cpu_bf16_support() -> str:
    """This CPU's bf16 matrix support, from /proc/cpuinfo: "amx", "avx512_bf16" or "none".

    Benchmarks report it, because the regularizer's share of a step depends on how fast the
    convolutions are (issue: AMX Xeons run them much faster than AVX512-BF16 EPYCs).
    """
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            flags = next((line for line in cpuinfo if line.startswith("flags")), "").split()
    except OSError:
        return "none"
    if "amx_bf16" in flags:
        return "amx"
    return "avx512_bf16" if "avx512_bf16" in flags else "none"


def cpu_has_native_bf16() -> bool:
    """True on CPUs with bf16 instructions (AVX512-BF16 or AMX), where bf16 convolutions beat fp32."""
    return cpu_bf16_support() != "none"


def uses_bf16(precision: str, device: torch.device) -> bool:
    """bf16 autocast (fp32 weights) for "bf16", and for "auto" on CUDA or a CPU with native bf16.

    Measured on this project's 2-core AMD EPYC (AVX512-BF16) build machine, ResNet20 batch 128:
    0.148 s/step with bf16 autocast vs 0.225 s fp32 (channels_last both).
    """
    if precision == "auto":
        return device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16())
    return precision == "bf16"


def load_data(config: ExperimentConfig) -> DatasetSplits:
    return load_dataset(config.data.dataset, root=config.data.root or None, download=config.data.download)


def build_model(config: ExperimentConfig, data: DatasetSplits) -> nn.Module:
    """The registered model for `config`, sized for `data` (classes and input channels)."""
    options = {"in_channels": data.image_shape[0]}
    if config.model.stem:
        options["stem"] = config.model.stem
    return create_model(config.model.name, num_classes=data.num_classes, **options)
