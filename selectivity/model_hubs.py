"""Models from timm (by name) and Hugging Face (a local folder), with the preprocessing they state.

Each loader returns a model_loading.LoadedModel whose `normalization` is the model's own mean/std
(timm's pretrained_cfg, the HF image processor's image_mean/image_std) and whose model resizes its
input as the model states (timm: resize to input_size / crop_pct then centre crop; HF: the image
processor's size), through a forward pre-hook. Resizing after normalising equals resizing before,
since a per-channel affine map commutes with interpolation. A HF model's forward returns an
output object; a forward hook makes it return the logits, so every consumer sees [B, K].
Nothing is downloaded: timm models are built with pretrained=False and get their weights from a
local file; HF models come from a folder holding config.json and the weights.
"""
import ast
import difflib
import json
import math
from pathlib import Path

import torch
from torch import nn

from selectivity.checkpoint_import import read_checkpoint, unwrap_state_dict
from selectivity.data.streamed import hf_preprocessing, timm_preprocessing
from selectivity.errors import SelectivityError
from selectivity.model_loading import LoadedModel, weights_num_classes


def parse_model_options(items: list[str] | None) -> dict:
    """["img_size=32", "drop_rate=0.0"] -> {"img_size": 32, "drop_rate": 0.0} (values as Python literals)."""
    options = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise SelectivityError(f"--model-option {item!r}; expected KEY=VALUE, e.g. img_size=32")
        try:
            options[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            options[key] = value  # a bare word such as act_layer=gelu
    return options


def eval_resize(size: tuple[int, int], crop_pct: float = 1.0):
    """A forward pre-hook resizing [B, C, H, W] inputs: to size / crop_pct (bilinear), then the centre crop."""
    height, width = size
    scaled = (int(math.floor(height / crop_pct)), int(math.floor(width / crop_pct)))

    def resize(module, args, kwargs):
        images = args[0] if args else kwargs.get("pixel_values")
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or tuple(images.shape[2:]) == (height, width):
            return None
        images = nn.functional.interpolate(images, size=scaled, mode="bilinear", align_corners=False, antialias=True)
        top, left = (scaled[0] - height) // 2, (scaled[1] - width) // 2
        images = images[:, :, top : top + height, left : left + width]
        if args:
            return (images, *args[1:]), kwargs
        return args, {**kwargs, "pixel_values": images}

    return resize


def numbers(mean, std) -> str:
    return ",".join(f"{value:g}" for value in (*mean, *std))


def load_timm_model(name: str, num_classes: int, weights: str | Path | None = None, options: dict | None = None,
                    trust: bool = False, pretrained: bool = False):
    """timm.create_model(name, pretrained=False, num_classes=..., **options), then a local weights file.

    Args:
        name: a timm model name (timm.list_models()).
        num_classes: logits when untrained (an options["num_classes"] wins); with weights, read from the
            file's classifier.
        weights: a state_dict file for this architecture, or None for random weights.
        options: extra create_model keyword arguments (img_size=32, ...).
        trust: allow weights_only=False for a file holding other objects.
        pretrained: let timm download its weights (needs internet).
    Returns:
        (LoadedModel, preprocessing description for the user).
    """
    try:
        import timm
        import timm.data
    except ImportError:
        raise SelectivityError("--timm needs the timm package; expected `pip install selectivity[timm]`") from None
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=5)
        raise SelectivityError(f"unknown timm model {name!r}; expected a name of timm.list_models()"
                               + (f", e.g. {', '.join(close)}" if close else ""))
    options = dict(options or {})
    # --model-option num_classes=N states the head of an untrained model (a 1000-class one on a small tree, say)
    num_classes = options.pop("num_classes", num_classes)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise SelectivityError(f"--model-option num_classes={num_classes!r}; expected an integer >= 1")
    state_dict, notes = None, []
    if weights is not None:
        loaded, notes = read_checkpoint(weights, trust)
        state_dict, unwrap_notes = unwrap_state_dict(loaded, str(weights))
        notes += unwrap_notes
        num_classes = weights_num_classes(state_dict)
    try:
        model = timm.create_model(name, pretrained=pretrained, num_classes=num_classes, **options)
    except TypeError as error:
        raise SelectivityError(f"timm {name} does not take {options}: {error}; expected options of its "
                               "constructor") from None
    if state_dict is not None:
        result = _load_strict(model, state_dict)
        if result:
            raise SelectivityError(f"weights file {weights} does not fit timm {name} ({result}); expected a "
                                   f"state_dict of {name} with {num_classes} classes")
    config = timm.data.resolve_data_config({}, model=model)
    channels = int(options.get("in_chans", len(config["mean"])))
    if channels != len(config["mean"]):  # timm's config keeps the RGB statistics of the pretrained weights
        config["mean"] = (sum(config["mean"]) / len(config["mean"]),) * channels  # their channel average,
        config["std"] = (sum(config["std"]) / len(config["std"]),) * channels  # as inputs are averaged over RGB
    if "img_size" in options:  # timm's config keeps the pretrained weights' input size (224): the option wins
        img_size = options["img_size"]
        size = tuple(img_size) if isinstance(img_size, (tuple, list)) else (int(img_size), int(img_size))
        config["input_size"], config["crop_pct"] = (channels, *size), 1.0  # the model's own size: no crop
    size = tuple(config["input_size"][1:])
    model.register_forward_pre_hook(eval_resize(size, float(config.get("crop_pct", 1.0))), with_kwargs=True)
    described = (f"timm data config: resize to {size[0]}x{size[1]} (crop_pct {config.get('crop_pct', 1.0):g}), "
                 f"mean {tuple(config['mean'])}, std {tuple(config['std'])}")
    loaded = LoadedModel(model, name, numbers(config["mean"], config["std"]), tuple(notes),
                         timm_preprocessing(config) if channels == 3 else None, "timm data config")
    return loaded, described


def _load_strict(model: nn.Module, state_dict: dict) -> str:
    """'' when `state_dict` loads exactly, else a short account of what does not fit."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    wrong = [k for k in own if k in state_dict and tuple(own[k].shape) != tuple(state_dict[k].shape)]
    if not (missing or unexpected or wrong):
        model.load_state_dict(state_dict, strict=True)
        return ""
    parts = [f"{label} {len(keys)} keys, e.g. {keys[0]}" for label, keys in
             (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if keys]
    return "; ".join(parts)


def load_hf_model(folder: str | Path, text: bool = False):
    """A Hugging Face classifier from a local folder (config.json + weights), logits as its output.

    Args:
        folder: written by `save_pretrained` (config.json, model.safetensors or pytorch_model.bin).
        text: AutoModelForSequenceClassification instead of AutoModelForImageClassification.
    Returns:
        (LoadedModel, preprocessing description).
    """
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise SelectivityError(f"{folder} is not a Hugging Face model folder (no config.json); expected a folder "
                               "written by save_pretrained (config.json + model.safetensors)")
    try:
        import transformers
    except ImportError:
        raise SelectivityError("--hf needs the transformers package; expected `pip install selectivity[hf]`") from None
    if not any((folder / name).is_file() for name in ("model.safetensors", "pytorch_model.bin")):
        raise SelectivityError(f"{folder} has config.json but no weights; expected model.safetensors or "
                               "pytorch_model.bin beside it")
    auto = transformers.AutoModelForSequenceClassification if text else transformers.AutoModelForImageClassification
    try:
        model = auto.from_pretrained(str(folder), local_files_only=True)
    except (ValueError, OSError, KeyError) as error:
        detail = " ".join(str(error).split())[:160]
        raise SelectivityError(f"{folder} is not a Hugging Face {'text' if text else 'image'} classifier ({detail}); "
                               f"expected a folder of a {auto.__name__} model") from None
    model.register_forward_hook(lambda module, inputs, output: output.logits)
    normalization, described = "imagenet", "no image processor config: imagenet mean/std, no resize"
    processor, preprocessing = folder / "preprocessor_config.json", None
    if processor.is_file() and not text:
        try:
            settings = json.loads(processor.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise SelectivityError(f"{processor} is not valid JSON ({error}); expected the image processor "
                                   "config written by save_pretrained") from None
        if not isinstance(settings, dict):
            raise SelectivityError(f"{processor} holds {type(settings).__name__}; expected a JSON object")
        preprocessing = hf_preprocessing(settings)
        mean, std = settings.get("image_mean"), settings.get("image_std")
        if mean and std:
            normalization = numbers(mean, std)
        size = settings.get("size") or {}
        if isinstance(size, int):
            size = {"height": size, "width": size}
        if "height" in size and "width" in size:
            dims = (int(size["height"]), int(size["width"]))
            model.register_forward_pre_hook(eval_resize(dims), with_kwargs=True)
            described = f"HF image processor: resize to {dims[0]}x{dims[1]}, mean {mean}, std {std}"
        else:
            described = f"HF image processor: mean {mean}, std {std}, no resize (size {size} not height/width)"
    label = f"hf-{folder.name}"
    return LoadedModel(model, label, normalization, (), preprocessing,
                       "HF image processor" if preprocessing else ""), described
