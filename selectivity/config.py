"""Experiment settings as frozen dataclass groups, TOML config files, and the run hash.

A run's folder is named by a hash of its non-default settings (open_lth style), so adding
a setting with a default leaves every existing hash unchanged. Settings that cannot change
a result (where data lives, which device) are left out of the hash.
"""
import dataclasses
import hashlib
import json
import sys
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from selectivity.errors import SelectivityError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

NOT_HASHED = {"hash": False}
SCHEDULES = ("step", "onecycle", "cosine", "constant")
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class DataSettings:
    dataset: str = "digits"
    root: str = field(default="", metadata=NOT_HASHED)  # "" = selectivity.paths.data_root()
    download: bool = field(default=False, metadata=NOT_HASHED)
    crop_padding: int = 0  # random crop with this much zero padding (CIFAR: 4); 0 = no crop
    flip: bool = False  # random horizontal flip with p = 0.5


@dataclass(frozen=True)
class ModelSettings:
    name: str = "small_cnn"
    stem: str = ""  # resnet18/50 only: "cifar" (3x3 stride 1, no max-pool) or "imagenet"; "" = model default


@dataclass(frozen=True)
class TrainSettings:
    epochs: int = 20
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    schedule: str = "step"  # step | onecycle | cosine | constant
    milestones: tuple[int, ...] = ()  # step: epochs at which lr *= gamma
    gamma: float = 0.1
    warmup_epochs: float = 0.0  # linear warmup from 0 (onecycle: the rise to peak lr)
    label_smoothing: float = 0.0
    precision: str = "auto"  # auto (bf16 autocast on CUDA and on CPUs with native bf16, else fp32) | fp32 | bf16
    compile: bool = field(default=False, metadata=NOT_HASHED)  # torch.compile the model (same numbers)
    cuda_graphs: bool = field(default=False, metadata=NOT_HASHED)  # CUDA devices: capture and replay the whole step
    channels_last: bool = field(default=True, metadata=NOT_HASHED)


@dataclass(frozen=True)
class RegularizerSettings:
    alpha: float | str = 0.0  # a number, or a per-epoch schedule such as "0x5,-20"
    layers: str | tuple[str, ...] = "relu"  # unit layers: relu | blocks | module names


@dataclass(frozen=True)
class EvaluationSettings:
    every: int = 1  # evaluate every N epochs (and always after the last)
    batch_size: int = 1000
    layers: str | tuple[str, ...] = "relu"  # test-time unit layers
    # also write units_epoch<N>.parquet at every evaluation (per-unit SI and preferred class over training)
    save_units: bool = field(default=False, metadata=NOT_HASHED)


@dataclass(frozen=True)
class ExperimentConfig:
    data: DataSettings = DataSettings()
    model: ModelSettings = ModelSettings()
    train: TrainSettings = TrainSettings()
    regularizer: RegularizerSettings = RegularizerSettings()
    evaluation: EvaluationSettings = EvaluationSettings()
    seed: int = field(default=0, metadata=NOT_HASHED)  # replicates live beneath the hash
    device: str = field(default="auto", metadata=NOT_HASHED)  # auto | cpu | cuda | cuda:N
    tensorboard: bool = field(default=False, metadata=NOT_HASHED)


SECTIONS = {f.name: f.type for f in fields(ExperimentConfig) if dataclasses.is_dataclass(f.default)}


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Check a config value against its field's type; TOML lists become tuples."""
    if isinstance(annotation, types.UnionType):
        for option in typing.get_args(annotation):
            try:
                return _coerce(value, option, where)
            except SelectivityError:
                continue
    elif typing.get_origin(annotation) is tuple and isinstance(value, (list, tuple)):
        item_type = typing.get_args(annotation)[0]
        return tuple(_coerce(item, item_type, f"{where}[{i}]") for i, item in enumerate(value))
    elif annotation is bool and isinstance(value, bool):
        return value
    elif annotation is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    elif annotation is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    elif annotation is str and isinstance(value, str):
        return value
    expected = str(annotation).replace("typing.", "").replace("<class '", "").replace("'>", "")
    raise SelectivityError(f"{where} = {value!r} has type {type(value).__name__}; expected {expected}")


def _build(cls, values: dict, where: str):
    known = {f.name: f for f in fields(cls)}
    for key in values:
        if key not in known:
            raise SelectivityError(f"unknown key '{where}{key}'; valid keys are: {', '.join(known)}")
    kwargs = {}
    for name, value in values.items():
        default = known[name].default
        if dataclasses.is_dataclass(default):
            if not isinstance(value, dict):
                raise SelectivityError(f"{where}{name} must be a table [{name}]; got {value!r}")
            kwargs[name] = _build(type(default), value, f"{name}.")
        else:
            kwargs[name] = _coerce(value, known[name].type, f"{where}{name}")
    return cls(**kwargs)


def config_from_dict(values: dict) -> ExperimentConfig:
    """Build a config from nested dicts (TOML tables); unknown keys and wrong types are errors."""
    config = _build(ExperimentConfig, values, "")
    from selectivity.alpha_schedule import parse_alpha  # validates the alpha schedule's syntax

    parse_alpha(config.regularizer.alpha)
    for where, value, choices in (
        ("train.schedule", config.train.schedule, SCHEDULES),
        ("train.precision", config.train.precision, PRECISIONS),
        ("model.stem", config.model.stem, ("", "cifar", "imagenet")),
    ):
        if value not in choices:
            raise SelectivityError(f"{where} = {value!r} is not known; expected one of {', '.join(map(repr, choices))}")
    if config.train.compile and config.train.cuda_graphs:
        raise SelectivityError("train.compile and train.cuda_graphs are both true; expected at most one of the two")
    return config


def read_toml(path: Path, what: str) -> dict:
    """The tables of a TOML file; a missing or malformed file is a one-line error naming `what`."""
    try:
        return tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise SelectivityError(f"{what} {path} does not exist; expected a TOML {what}") from None
    except tomllib.TOMLDecodeError as error:
        raise SelectivityError(f"{what} {path} is not valid TOML ({error})") from None


def load_config(path: str | Path, overrides: dict | None = None) -> ExperimentConfig:
    """Read a TOML experiment config and apply `{"train.lr": 0.05, ...}` overrides."""
    values = read_toml(Path(path), "config file")
    return config_from_dict(apply_overrides(values, overrides or {}))


def apply_overrides(values: dict, overrides: dict) -> dict:
    """Return a copy of nested `values` with dotted keys ("train.lr") replaced."""
    values = json.loads(json.dumps(values))
    for dotted, value in overrides.items():
        *sections, key = dotted.split(".")
        target = values
        for section in sections:
            target = target.setdefault(section, {})
        target[key] = value
    return values


def parse_assignments(assignments: list[str]) -> dict:
    """["train.lr=0.05", "alphas=[0, -1]"] -> {"train.lr": 0.05, "alphas": [0, -1]} (for --set).

    Values are read as TOML (numbers, booleans, lists); a value that is not TOML (a bare
    word such as cifar10, or a schedule such as 0x5,-20) stays a string.
    """
    values = {}
    for assignment in assignments:
        key, equals, text = assignment.partition("=")
        if not equals or not key.strip():
            raise SelectivityError(f"--set {assignment!r} is malformed; expected key=value (e.g. train.epochs=3)")
        try:
            values[key.strip()] = tomllib.loads(f"value = {text}")["value"]
        except tomllib.TOMLDecodeError:
            values[key.strip()] = text
    return values


def to_dict(config: ExperimentConfig) -> dict:
    """Nested plain dict of every setting (tuples as lists), for config.json."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def non_default_settings(config: ExperimentConfig) -> dict:
    """{"section.key": value} for every hashed setting that differs from its default."""
    changed = {}
    for section in fields(config):
        value = getattr(config, section.name)
        if dataclasses.is_dataclass(value):
            for setting in fields(value):
                current = getattr(value, setting.name)
                if setting.metadata.get("hash", True) and current != setting.default:
                    changed[f"{section.name}.{setting.name}"] = current
        elif section.metadata.get("hash", True) and value != section.default:
            changed[section.name] = value
    return changed


def config_hash(config: ExperimentConfig) -> str:
    """Stable 12-hex-digit name of a run's settings, seed excluded."""
    text = json.dumps(non_default_settings(config), sort_keys=True, default=list)
    return hashlib.sha256(text.encode()).hexdigest()[:12]
