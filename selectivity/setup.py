"""Settings -> the objects a run or a measurement needs: device, precision, dataset, model.

Shared by the trainer, `selectivity measure` (through model_loading) and the sweep's
analyses, so each job has one path and none of them imports the trainer. Every check here
runs before any training and ends in a one-line SelectivityError.
"""
import platform

import torch
from torch import nn

from selectivity.capture import UnitCapture
from selectivity.config import ExperimentConfig
from selectivity.data import DatasetSplits, list_datasets, load_dataset
from selectivity.data.batches import normalize_images
from selectivity.errors import SelectivityError
from selectivity.models import create_model, list_models

PROBE_IMAGES = 16  # test images in the dry forward pass that checks a model before training


def resolve_device(name: str = "auto") -> torch.device:
    """"auto" -> the first CUDA device if there is one, else the CPU; a device that is not here is refused.

    Args:
        name: auto | cpu | cuda | cuda:N.
    Returns:
        The torch.device.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise SelectivityError(f"device {name!r} is not known; expected auto, cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise SelectivityError(f"device {name!r} is not supported; expected auto, cpu, cuda or cuda:N")
    if device.type == "cuda":
        available = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if available == 0:
            raise SelectivityError(f"device {name!r} but CUDA is not available here; expected auto or cpu")
        if device.index is not None and device.index >= available:
            raise SelectivityError(f"device {name!r} but this machine has {available} CUDA device(s); "
                                   f"expected cuda:0 to cuda:{available - 1}")
    return device


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


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (platform's guess where there is none)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            name = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "")
    except OSError:
        name = ""
    return name or platform.processor() or platform.machine()


def cpu_description() -> str:
    """'AMD EPYC 7B13 (AVX2)' / 'Intel Xeon ... (AVX512, AMX)': this CPU's model name, the instruction set
    torch dispatches to and its bf16 support; a run's numbers depend on them (precision "auto", kernels)."""
    bf16 = cpu_bf16_support()
    extras = [torch.backends.cpu.get_cpu_capability()] + ([] if bf16 == "none" else [bf16.upper().replace("_", "-")])
    return f"{cpu_model() or 'unknown CPU'} ({', '.join(extras)})"


def machine_description(device_name: str) -> dict[str, str]:
    """{"device": "cpu" or "cuda (<GPU name>)", "cpu": cpu_description()} for a run's device setting;
    a device that is not here is named as set (the run will refuse it)."""
    try:
        device = resolve_device(device_name)
    except SelectivityError:
        return {"device": device_name, "cpu": cpu_description()}
    name = f"cuda ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "cpu"
    return {"device": name, "cpu": cpu_description()}


def cpu_has_native_bf16() -> bool:
    """True on CPUs with bf16 instructions (AVX512-BF16 or AMX), where bf16 convolutions beat fp32."""
    return cpu_bf16_support() != "none"


def resolved_precision(precision: str, device: torch.device) -> str:
    """"bf16" or "fp32": what a precision setting means on this device.

    "auto" is bf16 autocast (fp32 weights) on CUDA and on a CPU with native bf16, else fp32;
    so it can differ between machines, and a run records what it resolved to. Measured on
    this project's 2-core AMD EPYC (AVX512-BF16) build machine, ResNet20 batch 128: 0.148
    s/step with bf16 autocast vs 0.225 s fp32 (channels_last both).
    """
    if precision == "auto":
        native = device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16())
        return "bf16" if native else "fp32"
    return precision


def uses_bf16(precision: str, device: torch.device) -> bool:
    """True when `precision` resolves to bf16 autocast on `device` (see resolved_precision)."""
    return resolved_precision(precision, device) == "bf16"


def check_registered_names(config: ExperimentConfig) -> None:
    """A model or dataset name no registry knows, refused before any run folder exists.

    A typo would otherwise fail every run of a sweep, one by one, each leaving a failed run behind.
    """
    if config.model.name not in list_models():
        raise SelectivityError(f"model.name = {config.model.name!r} is not a registered model; expected one of "
                               f"{', '.join(list_models())}")
    if config.data.dataset not in list_datasets():
        raise SelectivityError(f"data.dataset = {config.data.dataset!r} is not a registered dataset; expected one "
                               f"of {', '.join(list_datasets())}")


def load_data(config: ExperimentConfig) -> DatasetSplits:
    """The dataset of `config`, refused when SI cannot be defined on it (fewer than 2 classes).

    Args:
        config: the run's settings (data.dataset, data.root, data.download).
    Returns:
        The train and test splits.
    """
    data = load_dataset(config.data.dataset, root=config.data.root or None, download=config.data.download)
    for split_name in ("train", "test"):
        present = int(getattr(data, split_name).labels.unique().numel())
        if present < 2:
            raise SelectivityError(
                f"dataset {data.name} has {present} class in its {split_name} split; "
                "class selectivity needs at least 2 classes: expected a dataset with 2 or more classes")
    return data


def build_model(config: ExperimentConfig, data: DatasetSplits) -> nn.Module:
    """The registered model for `config`, sized for `data` (classes and input channels)."""
    options = {"in_channels": data.image_shape[0]}
    if config.model.stem:
        options["stem"] = config.model.stem
    return create_model(config.model.name, num_classes=data.num_classes, **options)


@torch.no_grad()
def probe_model(model: nn.Module, data: DatasetSplits, unit_layers: dict[str, object], device: torch.device,
                channels_last: bool = False, signed: dict[str, object] | None = None) -> None:
    """A dry eval-mode forward pass on a few test images: refuse, before training, what would fail later.

    Refuses images too small for the model (its RuntimeError becomes one line naming the
    size), layers whose layout is not known, and unit layers with negative activations for which
    no signed choice was made (SI is defined on non-negative responses; "positive", "min_shift"
    or "abs" make it defined, see capture.layouts). Eval mode and no_grad: no BatchNorm
    statistics or RNG change.

    Args:
        model: the built model, on `device`.
        data: the dataset it will be trained and measured on.
        unit_layers: {"evaluation.layers": "relu", ...}: the setting's name and its layers.
        device: where the model is.
        channels_last: the memory layout the run uses.
        signed: {setting: signed choice} for the settings that made one (UnitCapture's `signed`).
    """
    images = data.test.images[:PROBE_IMAGES].to(device)  # [B, C, H, W] uint8
    inputs = normalize_images(images, data.mean, data.std, channels_last)
    was_training = model.training
    model.eval()
    try:
        for setting, layers in unit_layers.items():
            with UnitCapture(model, layers, signed=(signed or {}).get(setting)) as capture:
                try:
                    model(inputs)
                except RuntimeError as error:
                    _, height, width = data.image_shape
                    detail = " ".join(str(error).split())[:160]
                    raise SelectivityError(
                        f"model {type(model).__name__} cannot take the {height}x{width} images of {data.name} "
                        f"({detail}); expected images large enough for the model") from None
            _check_layers_ran(setting, layers, list(capture.activations))
            for name, units in capture.activations.items():  # [B, U] each
                if capture.signed_choices.get(name) is None and float(units.min()) < 0:
                    raise SelectivityError(
                        f"{setting} selects layer {name}, which has negative activations; SI is defined only "
                        "for non-negative units: expected post-ReLU layers (relu, blocks or ReLU module names) or "
                        "a signed choice: positive, min_shift or abs")
    finally:
        model.train(was_training)


def _check_layers_ran(setting: str, requested, recorded: list[str]) -> None:
    """An explicit `name#k` past a module's calls, or a module never called, would record nothing."""
    if isinstance(requested, str):
        return
    for name in requested:
        if not any(layer == name or layer.startswith(name + "#") for layer in recorded):
            raise SelectivityError(
                f"{setting} names layer {name}, which recorded no activations in a forward pass (never called, or "
                f"fewer calls than its #k); expected layers that run, e.g. {', '.join(recorded[:5])}")
