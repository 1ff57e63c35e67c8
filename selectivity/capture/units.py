"""Unit activations of any nn.Module, by layer name, via forward hooks.

A unit is a fully-connected neuron or a convolutional feature map; a map's response to one
input is its spatial mean, so every captured layer is [B, U]. A module object that runs
several times in one forward pass (torchvision ResNets reuse `self.relu`) yields one layer
per call site, named `module#1`, `module#2`, ..., never a silent overwrite. ReLUs applied
functionally (`F.relu`, `torch.relu`, `x.relu()`) are found by torch.fx and named
`owner.relu()` (see selectivity.capture.functional).
"""
import math
from collections import defaultdict

import torch
from torch import nn

from selectivity.capture.functional import FunctionalSites
from selectivity.errors import SelectivityError

PRESETS = ("relu", "blocks")
# Activations that can be negative: SI (a ratio of class means) is undefined on them.
SIGNED_ACTIVATIONS = (nn.GELU, nn.SiLU, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.Mish, nn.Hardswish,
                      nn.Tanh)


class _SpatialMean(torch.autograd.Function):
    """Spatial mean whose gradient is added into the next layer's gradient the cheaper way.

    Autograd adds this gradient to the one flowing back from the next layer. Adding a
    broadcast (stride-0) bf16 view into a channels_last map takes a slow path: on the
    2-core AVX512-BF16 build CPU one [128, 16, 32, 32] add took 1.76 ms that way against
    0.19 ms to materialise plus 0.21 ms to add densely. In fp32 the broadcast add is the
    fast one (2-core AVX2 EPYC, [256, 16, 32, 32] channels_last: 22.7 ms broadcast against
    29.2 ms materialise-and-add, under load), so reduced-precision maps get a dense
    gradient in their layout and fp32 maps the broadcast view. The values are the same.
    """

    @staticmethod
    def forward(ctx, output: torch.Tensor) -> torch.Tensor:
        ctx.input_shape, ctx.input_dtype = output.shape, output.dtype
        channels_last = output.dim() == 4 and output.is_contiguous(memory_format=torch.channels_last)
        ctx.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        ctx.dense = output.element_size() < 4  # bf16/fp16; a plain test, so torch.compile traces it inline
        ctx.count = math.prod(output.shape[2:])
        return output.sum(tuple(range(2, output.dim()))) / ctx.count  # sum in place of flatten(2): no copy

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        spread = (grad / ctx.count).to(ctx.input_dtype)
        spread = spread.reshape(*grad.shape, *[1] * (len(ctx.input_shape) - 2)).expand(ctx.input_shape)
        return spread.contiguous(memory_format=ctx.memory_format) if ctx.dense else spread


def reduce_to_units(output: torch.Tensor) -> torch.Tensor:
    """[B, C, *spatial] -> [B, C] by spatial mean; [B, U] is returned as-is."""
    if output.dim() <= 2:
        return output
    if output.requires_grad:
        return _SpatialMean.apply(output)
    return output.sum(tuple(range(2, output.dim()))) / math.prod(output.shape[2:])


def resolve_layers(model: nn.Module, layers: str | list[str] | tuple[str, ...] = "relu",
                   functional: list[str] | None = None) -> list[str]:
    """Layer names to record for a preset or an explicit list of names.

    Presets: "relu" = every nn.ReLU module and every functional ReLU call site in `functional`
    (post-ReLU activations of the hidden layers);
    "blocks" = the model's `block_output_layers` (our models declare them; torchvision
    ResNets' `layerX.Y` blocks are used when the model declares none). An explicit name may
    carry a call-site suffix (`layer1.0.relu#2`) to keep one call of a reused module.
    `functional` lists the functional call sites' names (FunctionalSites.layer_names).
    """
    modules = dict(model.named_modules())
    functional = list(functional or [])
    if layers == "relu":
        names = [n for n, m in modules.items() if isinstance(m, nn.ReLU)] + functional
        signed = sorted({type(m).__name__ for m in modules.values() if isinstance(m, SIGNED_ACTIVATIONS)})
        if not names and signed:
            raise SelectivityError(
                f"{type(model).__name__} has no ReLU units, only {', '.join(signed)} activations, which can be "
                "negative; SI is defined only for non-negative (e.g. post-ReLU) activations: select such layers")
    elif layers == "blocks":
        names = list(getattr(model, "block_output_layers", ()))
        if not names:
            names = [n for n in modules if n.count(".") == 1 and n.startswith("layer") and n.split(".")[1].isdigit()]
        if not names:
            raise SelectivityError(
                f"{type(model).__name__} declares no block_output_layers; expected a model from "
                "selectivity.models or a torchvision ResNet, or pass an explicit list of layer names"
            )
    elif isinstance(layers, str):
        raise SelectivityError(f"unknown layer preset {layers!r}; expected one of {PRESETS} or a list of module names")
    else:
        names = list(layers)
        unknown = [n for n in names if n not in functional and (n.split("#")[0] not in modules or n.split("#")[0] == "")]
        if unknown:
            valid = ", ".join([n for n in modules if n] + functional)
            raise SelectivityError(f"unknown layer name(s) {unknown}; valid module names are: {valid}")
    if not names:
        raise SelectivityError(f"{type(model).__name__} has no layers for preset {layers!r}; expected at least one")
    return names


class UnitCapture:
    """Context manager that records [B, U] unit activations of the selected layers.

    After each forward pass of `model`, `activations` maps layer name -> [B, U] tensor, in
    call order. Hooks are removed on exit, also when the body raises.

    Args:
        model: any nn.Module.
        layers: "relu" (default), "blocks", or a list of module names (optionally `name#k`)
            and functional call sites (`owner.relu()`, `owner.relu()#k`).
        detach: detach the activations (measurement); keep the graph for the regularizer.

    Set `enabled = False` to skip recording (the hooks return at once and `activations` is
    left empty after the pass) without removing and re-registering the hooks; the
    regularizer uses it to measure the logged SI on every k-th step only.
    """

    def __init__(self, model: nn.Module, layers: str | list[str] | tuple[str, ...] = "relu", detach: bool = True):
        if not isinstance(model, nn.Module):
            raise SelectivityError(f"model is a {type(model).__name__}; expected a torch.nn.Module")
        if not isinstance(layers, str) and (not isinstance(layers, (list, tuple))
                                            or not all(isinstance(name, str) for name in layers)):
            raise SelectivityError(f"layers = {layers!r}; expected a preset ({', '.join(PRESETS)}) or a list of "
                                   "module names")
        self.model = model
        self.detach = detach
        self._functional = FunctionalSites(model)
        wants_functional = layers == "relu" or (not isinstance(layers, str) and any("relu()" in n for n in layers))
        functional = self._functional.layer_names() if wants_functional else []
        requested = resolve_layers(model, layers, functional)
        self._functional_layers = {name for name in requested if name in functional}
        self._call_filter: dict[str, set[int] | None] = defaultdict(set)
        for name in requested:
            if name in self._functional_layers:
                self._call_filter[name] = None  # a functional site runs once per pass: its name is final
                continue
            module_name, _, call = name.partition("#")
            if call and self._call_filter[module_name] is not None:
                self._call_filter[module_name].add(int(call))
            else:
                self._call_filter[module_name] = None  # every call site
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._pending: list[tuple[str, torch.Tensor]] = []
        self.activations: dict[str, torch.Tensor] = {}
        self.enabled = True

    def __enter__(self) -> "UnitCapture":
        modules = dict(self.model.named_modules())
        try:
            self._handles.append(self.model.register_forward_pre_hook(self._start_pass))
            for name in self._call_filter:
                if name not in self._functional_layers:
                    self._handles.append(modules[name].register_forward_hook(self._recorder(name)))
            if self._functional_layers:
                self._functional.install(self._recorder, self._functional_layers)
            self._handles.append(self.model.register_forward_hook(self._finish_pass))
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.remove()

    def remove(self) -> None:
        self._functional.uninstall()
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._pending.clear()

    def _start_pass(self, module, inputs) -> None:
        self._pending = []

    def _recorder(self, name: str):
        def record(module, inputs, output):
            if not self.enabled:
                return
            units = reduce_to_units(output.detach() if self.detach else output)
            self._pending.append((name, units))

        return record

    def _finish_pass(self, module, inputs, output) -> None:
        calls_per_module = defaultdict(int)
        for name, _ in self._pending:
            calls_per_module[name] += 1
        seen = defaultdict(int)
        activations = {}
        for name, units in self._pending:
            seen[name] += 1
            wanted = self._call_filter[name]
            if wanted is not None and seen[name] not in wanted:
                continue
            layer = name if calls_per_module[name] == 1 and wanted is None else f"{name}#{seen[name]}"
            activations[layer] = units
        self.activations = activations
        self._pending = []
