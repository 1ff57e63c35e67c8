"""Experiment settings as frozen dataclass groups, TOML config files, and the run hash.

A run's folder is named by a hash of its non-default settings (open_lth style), so adding
a setting with a default leaves every existing hash unchanged. Settings that cannot change
a result (where data lives, which device) are left out of the hash.
"""
import copy
import dataclasses
import hashlib
import json
import math
import re
import sys
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, ClassVar

from selectivity.alpha_schedule import FLOAT32_MAX, parse_alpha
from selectivity.errors import SelectivityError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

NOT_HASHED = {"hash": False}
SCHEDULES = ("step", "onecycle", "cosine", "constant")
PRECISIONS = ("auto", "fp32", "bf16")
LAYER_PRESETS = ("relu", "blocks")
STEMS = ("", "cifar", "imagenet")
SEED_LIMIT = 2**64  # torch.manual_seed takes any integer in [0, 2**64)
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")


def checked(default: Any, expected: str, valid: Callable[[Any], bool], hashed: bool = True):
    """A dataclass field whose value must satisfy `valid`; `expected` is said when it does not."""
    return field(default=default, metadata={"expected": expected, "valid": valid, **({} if hashed else NOT_HASHED)})


MAX_EPOCHS = 10**6  # 5,000x the paper's 200: beyond it a number is a typo, and past int64 it overflows the schedules


def _finite(value) -> bool:
    return math.isfinite(value)


def _float32(value) -> bool:
    """Finite and within float32: the optimizer's state is float32, so a larger lr or decay overflows in its step."""
    return math.isfinite(value) and abs(value) <= FLOAT32_MAX


def _is_integer(value) -> bool:
    """An int, not a bool (TOML is checked by type already; this also covers settings made in code)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _layers_valid(layers) -> bool:
    if isinstance(layers, str):
        return layers in LAYER_PRESETS
    return bool(layers) and all(isinstance(name, str) and name.strip() for name in layers)


LAYERS_EXPECTED = "'relu', 'blocks' or a non-empty list of module names"


class _CheckedSettings:
    """Checks every `checked` field when the settings are made (from TOML, in code, or by replace)."""

    SECTION = ""

    def __post_init__(self):
        for setting in fields(self):
            valid = setting.metadata.get("valid")
            if valid is None:
                continue
            value = getattr(self, setting.name)
            try:
                ok = bool(valid(value))
            except (TypeError, ValueError):
                ok = False
            if not ok:
                key = f"{self.SECTION}.{setting.name}" if self.SECTION else setting.name
                raise SelectivityError(f"{key} = {value!r} is invalid; expected {setting.metadata['expected']}")


@dataclass(frozen=True)
class DataSettings(_CheckedSettings):
    SECTION: ClassVar[str] = "data"
    dataset: str = "digits"
    root: str = field(default="", metadata=NOT_HASHED)  # "" = selectivity.paths.data_root()
    download: bool = field(default=False, metadata=NOT_HASHED)
    # random crop with this much zero padding (CIFAR: 4); 0 = no crop
    crop_padding: int = checked(0, "an integer >= 0", lambda v: v >= 0)
    flip: bool = False  # random horizontal flip with p = 0.5


@dataclass(frozen=True)
class ModelSettings(_CheckedSettings):
    SECTION: ClassVar[str] = "model"
    name: str = "small_cnn"
    # resnet18/50 only: "cifar" (3x3 stride 1, no max-pool) or "imagenet"; "" = model default
    stem: str = checked("", "one of '', 'cifar', 'imagenet'", lambda v: v in STEMS)


@dataclass(frozen=True)
class TrainSettings(_CheckedSettings):
    SECTION: ClassVar[str] = "train"
    epochs: int = checked(20, "an integer in [1, 1000000]", lambda v: 1 <= v <= MAX_EPOCHS)
    batch_size: int = checked(128, "an integer >= 1", lambda v: v >= 1)
    lr: float = checked(0.1, "a number in [0, 3.4e38] (float32)", lambda v: _float32(v) and v >= 0)
    momentum: float = checked(0.9, "a number in [0, 1)", lambda v: 0 <= v < 1)
    nesterov: bool = False
    weight_decay: float = checked(1e-4, "a number in [0, 3.4e38] (float32)", lambda v: _float32(v) and v >= 0)
    schedule: str = checked("step", f"one of {', '.join(map(repr, SCHEDULES))}", lambda v: v in SCHEDULES)
    # step: epochs at which lr *= gamma
    milestones: tuple[int, ...] = checked((), "a list of epochs >= 1", lambda v: all(m >= 1 for m in v))
    gamma: float = checked(0.1, "a finite number > 0", lambda v: _finite(v) and v > 0)
    # linear warmup from 0 (onecycle: the rise to peak lr)
    warmup_epochs: float = checked(0.0, "a finite number >= 0", lambda v: _finite(v) and v >= 0)
    label_smoothing: float = checked(0.0, "a number in [0, 1]", lambda v: 0 <= v <= 1)
    # auto (bf16 autocast on CUDA and on CPUs with native bf16, else fp32) | fp32 | bf16
    precision: str = checked("auto", f"one of {', '.join(map(repr, PRECISIONS))}", lambda v: v in PRECISIONS)
    compile: bool = field(default=False, metadata=NOT_HASHED)  # torch.compile the model (same numbers)
    cuda_graphs: bool = field(default=False, metadata=NOT_HASHED)  # CUDA devices: capture and replay the whole step
    channels_last: bool = field(default=True, metadata=NOT_HASHED)
    # resume a run whose recorded precision differs from the one this machine resolves
    allow_precision_change: bool = field(default=False, metadata=NOT_HASHED)

    def __post_init__(self):
        super().__post_init__()
        if self.compile and self.cuda_graphs:
            raise SelectivityError("train.compile and train.cuda_graphs are both true; expected at most one of the two")
        if self.nesterov and self.momentum == 0:
            raise SelectivityError("train.nesterov = true with train.momentum = 0; expected a momentum > 0")
        if self.warmup_epochs > self.epochs:  # the lr would never reach its peak (onecycle: never fall)
            raise SelectivityError(f"train.warmup_epochs = {self.warmup_epochs:g} is longer than train.epochs = "
                                   f"{self.epochs}; expected a warm-up of at most the run's epochs")


@dataclass(frozen=True)
class RegularizerSettings(_CheckedSettings):
    SECTION: ClassVar[str] = "regularizer"
    # a number, or a per-epoch schedule such as "0x5,-20" (every value finite)
    alpha: float | str = 0.0
    # unit layers: relu | blocks | module names
    layers: str | tuple[str, ...] = checked("relu", LAYERS_EXPECTED, _layers_valid)
    # measure the logged training-batch SI (train_batch_si) on every k-th step of an epoch when the
    # regularizer is inactive (alpha == 0 throughout); 1 = every step. Ignored while the penalty needs
    # every step. Hashed like any setting: at 1 (the default) every existing hash is unchanged.
    track_every: int = checked(1, "an integer >= 1", lambda v: _is_integer(v) and v >= 1)

    def __post_init__(self):
        super().__post_init__()
        try:
            parse_alpha(self.alpha)
        except SelectivityError as error:  # a malformed or non-finite alpha, named by its key
            raise SelectivityError(f"regularizer.{error}") from None


@dataclass(frozen=True)
class EvaluationSettings(_CheckedSettings):
    SECTION: ClassVar[str] = "evaluation"
    # evaluate every N epochs (and always after the last)
    every: int = checked(1, "an integer >= 1", lambda v: v >= 1)
    batch_size: int = checked(1000, "an integer >= 1", lambda v: v >= 1)
    # test-time unit layers
    layers: str | tuple[str, ...] = checked("relu", LAYERS_EXPECTED, _layers_valid)
    # also write units_epoch<N>.parquet at every evaluation (per-unit SI and preferred class over training)
    save_units: bool = field(default=False, metadata=NOT_HASHED)


@dataclass(frozen=True)
class ExperimentConfig(_CheckedSettings):
    data: DataSettings = DataSettings()
    model: ModelSettings = ModelSettings()
    train: TrainSettings = TrainSettings()
    regularizer: RegularizerSettings = RegularizerSettings()
    evaluation: EvaluationSettings = EvaluationSettings()
    # replicates live beneath the hash
    seed: int = checked(0, "an integer in [0, 2**64)", lambda v: 0 <= v < SEED_LIMIT, hashed=False)
    # auto | cpu | cuda | cuda:N
    device: str = checked("auto", "auto, cpu, cuda or cuda:N", lambda v: DEVICE_PATTERN.fullmatch(v), hashed=False)
    tensorboard: bool = field(default=False, metadata=NOT_HASHED)

    def __post_init__(self):
        super().__post_init__()
        _check_alpha_fits(self.regularizer.alpha, self.train.epochs)
        if self.train.cuda_graphs and self.regularizer.track_every > 1:
            # a captured step replays whatever it recorded: it cannot measure on some steps only
            raise SelectivityError(f"train.cuda_graphs = true with regularizer.track_every = "
                                   f"{self.regularizer.track_every}; expected track_every = 1 with CUDA graphs")


def _check_alpha_fits(alpha: float | str, epochs: int) -> None:
    """Every segment of an alpha schedule starts within the run, and a schedule whose last segment
    is counted ends by the run's end: otherwise part of what was asked for is never trained."""
    segments = parse_alpha(alpha)
    counted = [count for _, count in segments if count is not None]
    start_of_last = sum(count for _, count in segments[:-1])
    if start_of_last >= epochs or (segments[-1][1] is not None and sum(counted) > epochs):
        raise SelectivityError(f"regularizer.alpha = {alpha!r} is a schedule of {sum(counted)}+ epochs, longer than "
                               f"train.epochs = {epochs}; expected every segment to start before the run ends")


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
    return _build(ExperimentConfig, values, "")  # each settings group checks its ranges as it is made


def read_toml(path: Path, what: str) -> dict:
    """The tables of a TOML file; a missing or malformed file is a one-line error naming `what`."""
    try:
        values = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SelectivityError(f"{what} {path} does not exist; expected a TOML {what}") from None
    except UnicodeDecodeError as error:  # TOML is UTF-8 by definition; a binary or UTF-16 file is not one
        raise SelectivityError(f"{what} {path} is not UTF-8 text (byte {error.start}); expected a TOML {what}") from None
    except tomllib.TOMLDecodeError as error:
        raise SelectivityError(f"{what} {path} is not valid TOML ({error})") from None
    if not values:  # an empty (or comments-only) file is a truncated or wrong one, not "all defaults"
        raise SelectivityError(f"{what} {path} sets nothing; expected a TOML {what} with at least one setting")
    return values


def load_config(path: str | Path, overrides: dict | None = None) -> ExperimentConfig:
    """Read a TOML experiment config and apply `{"train.lr": 0.05, ...}` overrides."""
    values = read_toml(Path(path), "config file")
    return config_from_dict(apply_overrides(values, overrides or {}))


def apply_overrides(values: dict, overrides: dict) -> dict:
    """Return a copy of nested `values` with dotted keys ("train.lr") replaced."""
    values = copy.deepcopy(values)  # not a JSON round trip: TOML dates and times are not JSON
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
