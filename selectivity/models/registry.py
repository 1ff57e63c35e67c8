"""Model registry (timm style): `@register_model` factories, `create_model(name)`, `list_models()`.

Every registered model exposes two tuples of module names (as `model.named_modules()`
spells them, in forward order) that the capture stage hooks:

- `unit_layers`: each post-ReLU activation of a hidden layer, one `nn.ReLU` module per
  activation, used exactly once per forward pass (never the logit layer).
- `block_output_layers`: the subset of `unit_layers` that are block outputs.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from selectivity.errors import SelectivityError

ModelFactory = Callable[..., nn.Module]

_MODEL_FACTORIES: dict[str, ModelFactory] = {}


def register_model(factory: ModelFactory) -> ModelFactory:
    """Register a model factory under its function name.

    Args:
        factory: `def name(num_classes: int = 10, **kwargs) -> nn.Module`.

    Returns:
        The factory unchanged, so this works as a decorator.
    """
    name = factory.__name__
    if name in _MODEL_FACTORIES:
        raise SelectivityError(f"model {name!r} is already registered; expected a unique factory name")
    _MODEL_FACTORIES[name] = factory
    return factory


def list_models() -> list[str]:
    """Names of every registered model, sorted.

    Returns:
        Sorted list of names accepted by `create_model`.
    """
    return sorted(_MODEL_FACTORIES)


def create_model(name: str, num_classes: int, **kwargs) -> nn.Module:
    """Build a registered model with its unit layers named.

    Args:
        name: a name from `list_models()`.
        num_classes: number of output logits (> 0).
        **kwargs: model options, e.g. `in_channels=1` or `stem="imagenet"`.

    Returns:
        The model, taking normalised `[B, C, H, W]` input and returning `[B, num_classes]`
        logits, with `unit_layers` and `block_output_layers` attributes.
    """
    if name not in _MODEL_FACTORIES:
        raise SelectivityError(f"unknown model {name!r}; expected one of {', '.join(list_models())}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise SelectivityError(f"num_classes={num_classes!r} for model {name!r}; expected a positive integer")
    try:
        model = _MODEL_FACTORIES[name](num_classes=num_classes, **kwargs)
    except TypeError as error:
        # A misspelt option should read as a user error, not a stack trace into a constructor.
        if "unexpected keyword argument" not in str(error):
            raise
        raise SelectivityError(f"model {name!r} got an unknown option: {error}") from error
    check_unit_layers(model, name)
    return model


def relu_module_names(model: nn.Module) -> tuple[str, ...]:
    """Names of every `nn.ReLU` submodule in registration order.

    The model files register modules in forward order, so this is also forward order
    (tests/test_models.py checks that against forward hooks).

    Args:
        model: any module.

    Returns:
        Tuple of module names as `model.named_modules()` gives them.
    """
    return tuple(module_name for module_name, module in model.named_modules() if isinstance(module, nn.ReLU))


def check_unit_layers(model: nn.Module, name: str) -> None:
    """Refuse a model whose `unit_layers` / `block_output_layers` are missing or not ReLUs.

    Args:
        model: the freshly built model.
        name: its registry name, for the error message.
    """
    modules = dict(model.named_modules())
    unit_layers = getattr(model, "unit_layers", None)
    block_output_layers = getattr(model, "block_output_layers", None)
    if not isinstance(unit_layers, tuple) or not isinstance(block_output_layers, tuple) or not unit_layers:
        raise SelectivityError(f"model {name!r} lacks unit_layers/block_output_layers tuples; expected both set")
    for layer_name in unit_layers:
        module = modules.get(layer_name)
        if not isinstance(module, nn.ReLU) or module.inplace:
            raise SelectivityError(f"model {name!r} unit layer {layer_name!r} is not a non-inplace nn.ReLU")
    outside = set(block_output_layers) - set(unit_layers)
    if outside:
        raise SelectivityError(f"model {name!r} block outputs {sorted(outside)} are not unit layers")
