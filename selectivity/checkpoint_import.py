"""Weights saved by other code bases, matched one-to-one onto a model's parameter names.

Most CIFAR ResNet checkpoints in circulation are a plain state dict, often under DataParallel's
`module.` prefix, often inside a training dict ({"state_dict": ..., "best_prec1": ...}), and
sometimes with other names for the same tensors (`fc` for `linear`). `read_checkpoint` opens
the file (weights_only=True unless the user trusts it), `unwrap_state_dict` finds the tensors
and `match_state_dict` renames them onto a model's keys, accepting only an exact one-to-one
match of names and shapes. Each step returns notes saying what it did, for the user to read.
"""
import pickle
import re
import zipfile
from pathlib import Path

import torch

from selectivity.errors import SelectivityError

# Wrappers add these to every key: torch.compile (_orig_mod.) and DataParallel/DDP (module.).
KEY_PREFIXES = ("_orig_mod.", "module.")
# Entries of a training dict that hold the model's weights, in the order they are tried.
CONTAINER_KEYS = ("state_dict", "model_state_dict", "model", "net", "network", "state")
# Other names for the same tensor: (pattern in the file's key, replacement), tried in this order
# when a key has no exact match. The classifier is `linear` in akamaster/pytorch_resnet_cifar10 and
# kuangliu/pytorch-cifar, `fc` in torchvision-style code, `classifier` in others.
KEY_ALIASES = (
    (r"^fc\.", "linear."), (r"^linear\.", "fc."), (r"^classifier\.", "linear."), (r"^classifier\.", "fc."),
)
# Absent from checkpoints saved before PyTorch 0.4.1; the model's own counter is kept (eval ignores it).
OPTIONAL_SUFFIXES = (".num_batches_tracked",)
TRUST_HINT = "pass --trust-checkpoint to unpickle it anyway (this runs code from the file: only for files you trust)"


def read_checkpoint(path: str | Path, trust: bool = False) -> tuple[object, list[str]]:
    """torch.load the file with weights_only=True, or with weights_only=False when `trust` is set and needed.

    Args:
        path: a torch.save file.
        trust: allow full unpickling when the file holds objects other than tensors and containers.
    Returns:
        (the loaded object, notes saying how it was loaded).
    """
    path = Path(path)
    if not path.is_file():
        raise SelectivityError(f"weights file {path} does not exist; expected a state_dict saved with torch.save")
    try:
        return torch.load(path, map_location="cpu", weights_only=True), []
    except pickle.UnpicklingError as error:
        found = re.search(r"GLOBAL ([\w.]+)", str(error))
        if not found and not _looks_like_torch_save(path):  # damaged, or another format: trusting will not help
            raise SelectivityError(f"cannot read weights file {path} (neither a torch.save zip archive nor a pickle: "
                                   "damaged or another format); expected a torch.save file") from None
        # without a class name the safe loader cannot say why: a pickle protocol above 2 (even of tensors
        # only), other objects, or a cut file all read "Unsupported operand"
        what = (f"an object of class {found.group(1)}" if found else
                "pickle data the safe loader cannot read (objects other than tensors, pickle protocol 4 or 5, or a "
                "cut file)")
        if not trust:
            raise SelectivityError(f"weights file {path} holds {what}, which weights_only=True refuses; {TRUST_HINT}") from None
    except Exception as error:  # truncated zip, not a torch file at all, ...
        raise SelectivityError(f"cannot read weights file {path} ({type(error).__name__}); expected a torch.save file") from None
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # a class the file names that this Python cannot import, ...
        raise SelectivityError(f"cannot unpickle weights file {path} ({type(error).__name__}: {error}); "
                               "expected a file whose classes are importable here") from None
    return loaded, [f"loaded with weights_only=False (--trust-checkpoint): the file holds {what}"]


def _looks_like_torch_save(path: Path) -> bool:
    """A torch.save zip archive, or a legacy pickle (protocol 2+ starts with the PROTO opcode 0x80)."""
    if zipfile.is_zipfile(path):
        return True
    with open(path, "rb") as file:
        return file.read(1) == b"\x80"


def is_tensor_dict(value: object) -> bool:
    """{str: tensor}, non-empty: what a state dict is (a dict keyed by numbers is some other object)."""
    return isinstance(value, dict) and bool(value) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())


def unwrap_state_dict(loaded: object, source: str) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The {name: tensor} dict inside what torch.load returned, without wrapper prefixes.

    Args:
        loaded: a state dict, a dict holding one under a CONTAINER_KEYS entry, or a whole nn.Module.
        source: the file name, for messages.
    Returns:
        (state dict with KEY_PREFIXES stripped, notes saying where it was found and what was stripped).
    """
    notes = []
    if isinstance(loaded, torch.nn.Module):
        loaded, notes = loaded.state_dict(), [f"took the state dict of the pickled {type(loaded).__name__} module"]
    elif isinstance(loaded, dict) and not is_tensor_dict(loaded):
        entry = next((key for key in CONTAINER_KEYS if is_tensor_dict(loaded.get(key))), None)
        if entry is None:
            raise SelectivityError(
                f"weights file {source} holds no state dict "
                f"({'top-level keys: ' + ', '.join(map(str, list(loaded)[:8])) if loaded else 'an empty dict'}); "
                f"expected {{name: tensor}} or a dict with one under {', '.join(CONTAINER_KEYS)}")
        others = [str(key) for key in loaded if key != entry]
        notes.append(f"took the state dict from entry '{entry}'" + (f" (ignored: {', '.join(others)})" if others else ""))
        loaded = loaded[entry]
    if not is_tensor_dict(loaded):
        raise SelectivityError(f"weights file {source} is not a state dict ({type(loaded).__name__}); "
                               "expected {name: tensor} or a dict holding one")
    stripped = {strip_prefixes(key): value for key, value in loaded.items()}
    if len(stripped) != len(loaded):
        raise SelectivityError(f"weights file {source} has keys that collide once wrapper prefixes are stripped; "
                               "expected one tensor per parameter")
    for prefix in KEY_PREFIXES:
        count = sum(key.startswith(prefix) for key in loaded)
        if count:
            notes.append(f"stripped the prefix '{prefix}' from {count} of {len(loaded)} keys")
    return stripped, notes


def strip_prefixes(key: str) -> str:
    """The key without any leading KEY_PREFIXES (nested wrappers stack them)."""
    changed = True
    while changed:
        changed = False
        for prefix in KEY_PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix):], True
    return key


def renamed_key(key: str, model_keys: dict[str, torch.Size], claimed: set[str]) -> str | None:
    """The model key this file key stands for: itself, else the first alias that names an unclaimed key."""
    if key in model_keys:
        return key
    for pattern, replacement in KEY_ALIASES:
        candidate = re.sub(pattern, replacement, key)
        if candidate != key and candidate in model_keys and candidate not in claimed:
            return candidate
    return None


def match_state_dict(state_dict: dict[str, torch.Tensor], model_state: dict[str, torch.Tensor],
                     source: str, label: str) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Rename the file's keys onto the model's; refuse unless names and shapes match one-to-one.

    Args:
        state_dict: the file's tensors (prefixes already stripped).
        model_state: model.state_dict() of the freshly built model.
        source, label: the file and the model, for messages.
    Returns:
        (a state dict with exactly the model's keys, notes listing every rename).
    Raises:
        SelectivityError naming the first unexpected key, missing key or shape mismatch.
    """
    model_keys = {key: value.shape for key, value in model_state.items()}
    mapped, renames = {}, {}
    for key, value in state_dict.items():
        target = renamed_key(key, model_keys, set(mapped))
        if target is None or target in mapped:
            raise SelectivityError(
                f"weights {source} do not fit model {label}: unexpected key {key} {list(value.shape)} "
                f"(no parameter of {label} has this name or a known alias); expected weights of this architecture")
        if value.shape != model_keys[target]:
            raise SelectivityError(
                f"weights {source} do not fit model {label}: {key} has shape {list(value.shape)} but {label}'s "
                f"{target} has {list(model_keys[target])}; expected weights of this architecture")
        mapped[target] = value
        if target != key:
            renames[key] = target
    notes = [f"renamed {old} -> {new}" for old, new in renames.items()]
    missing = [key for key in model_keys if key not in mapped]
    optional = [key for key in missing if key.endswith(OPTIONAL_SUFFIXES)]
    required = [key for key in missing if key not in optional]
    if required:
        raise SelectivityError(
            f"weights {source} do not fit model {label}: missing key {required[0]} {list(model_keys[required[0]])} "
            f"({len(required)} missing in all); expected weights of this architecture")
    for key in optional:
        mapped[key] = model_state[key]
    if optional:
        notes.append(f"kept the model's own {optional[0].rsplit('.', 1)[1]} for {len(optional)} BatchNorm layers "
                     "(absent from the file, as in checkpoints from PyTorch < 0.4.1; unused in evaluation)")
    return {key: mapped[key] for key in model_keys}, notes
