"""Unit activations of any nn.Module, by layer name, via forward hooks.

A unit is one channel: a fully-connected neuron, a convolutional feature map, a token
channel. Its response to one input is its layer's stated reduction (a `UnitLayout`, see
selectivity.capture.layouts: spatial mean, token reduction, as is), so every captured layer
is [B, U]. Layouts come from what the model states (capture.model_layouts), else from the
user, else only [B, C, H, W] and [B, U] are accepted by shape. A module object that runs
several times in one forward pass (torchvision ResNets reuse `self.relu`) yields one layer
per call site, named `module#1`, `module#2`, ..., never a silent overwrite. ReLUs applied
functionally (`F.relu`, `torch.relu`, `x.relu()`) are found by torch.fx and named
`owner.relu()` (see selectivity.capture.functional).
"""
import fnmatch
import math
import re
from collections import defaultdict

import torch
from torch import nn

from selectivity.capture.functional import FunctionalSites
from selectivity.capture.layouts import (
    UnitLayout, check_patterns_match, check_signed, layout_from_shape, match_pattern, parse_layout, pooled_responses)
from selectivity.capture.model_layouts import model_layouts, token_layout_of
from selectivity.errors import SelectivityError

PRESETS = ("relu", "activations", "mlp", "blocks")
# Activations that can be negative: SI (a ratio of class means) is undefined on them without a signed choice.
SIGNED_ACTIVATIONS = (nn.GELU, nn.SiLU, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.Mish, nn.Hardswish,
                      nn.Tanh)
ACTIVATIONS = SIGNED_ACTIVATIONS + (nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.Sigmoid, nn.Hardsigmoid, nn.Softplus)
# Activation classes of timm and transformers that are not torch's own (matched by class name)
ACTIVATION_CLASS_NAMES = {"GELU", "GELUTanh", "QuickGELU", "Swish", "SiLU", "HardSwish", "HardMish", "Mish",
                          "GELUActivation", "NewGELUActivation", "FastGELUActivation", "QuickGELUActivation",
                          "PytorchGELUTanh", "SiLUActivation", "ReLUSquaredActivation", "MishActivation"}
GLOB_CHARACTERS = set("*?[")


def is_activation(module: nn.Module) -> bool:
    return isinstance(module, ACTIVATIONS) or type(module).__name__ in ACTIVATION_CLASS_NAMES


def block_output_names(model: nn.Module, modules: dict[str, nn.Module]) -> list[str]:
    """Block outputs: the model's own list, else torchvision ResNet `layerX.Y`, timm ViT `blocks.N`,
    timm ConvNeXt `stages.N.blocks.M`, EfficientNet/MobileNet `blocks.N.M`, Hugging Face `[encoder.]layer[s].N`."""
    names = list(getattr(model, "block_output_layers", ()))
    if names:
        return names
    patterns = (r"layer\d+\.\d+", r"stages\.\d+\.blocks\.\d+", r"blocks\.\d+\.\d+", r"blocks\.\d+",
                r"(.+\.)?(encoder\.)?layers?\.\d+")
    for pattern in patterns:
        names = [n for n in modules if re.fullmatch(pattern, n)]
        if names:
            return names
    return []


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
    "activations" = every activation module (ReLU, GELU, SiLU, ..., timm's and transformers' too);
    "mlp" = the hidden activation of every transformer MLP (`*.mlp.*`, `*.intermediate.*`);
    "blocks" = the model's `block_output_layers` (our models declare them; torchvision
    ResNets' `layerX.Y`, timm `blocks.N` / `stages.N.blocks.M`, HF `encoder.layer.N` otherwise).
    A list may hold globs over module names (`blocks.*.mlp.act`); one matching nothing is refused. An explicit name may
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
    elif layers == "activations":
        names = [n for n, m in modules.items() if n and is_activation(m)] + functional
    elif layers == "mlp":  # the hidden activation of each transformer MLP (timm `*.mlp.act`, HF `*.intermediate.*`)
        names = [n for n, m in modules.items() if is_activation(m) and (".mlp." in f".{n}" or ".intermediate." in f".{n}")]
    elif layers == "blocks":
        names = block_output_names(model, modules)
        if not names:
            raise SelectivityError(
                f"{type(model).__name__} declares no block_output_layers; expected a model from "
                "selectivity.models or a torchvision ResNet, or pass an explicit list of layer names"
            )
    elif isinstance(layers, str):
        raise SelectivityError(f"unknown layer preset {layers!r}; expected one of {PRESETS} or a list of module names")
    else:
        candidates = [n for n in modules if n] + functional
        patterns = [n for n in layers if GLOB_CHARACTERS & set(n)]
        check_patterns_match(patterns, candidates, "layer")
        names = []
        for name in layers:
            expanded = [n for n in candidates if fnmatch.fnmatchcase(n, name)] if name in patterns else [name]
            names += [n for n in expanded if n not in names]
        unknown = [n for n in names if n not in functional and (n.split("#")[0] not in modules or n.split("#")[0] == "")]
        if unknown:
            valid = ", ".join([n for n in modules if n] + functional)
            raise SelectivityError(f"unknown layer name(s) {unknown}; valid module names are: {valid}")
    if not names:
        raise SelectivityError(f"{type(model).__name__} has no layers for preset {layers!r}; expected at least one")
    return names


class UnitCapture:
    """Context manager that records [B, U] unit responses of the selected layers.

    After each forward pass of `model`, `activations` maps layer name -> [B, U] tensor, in
    call order: each layer's output reduced by its UnitLayout after the signed choice's
    element-wise part ("positive": max(r, 0), "abs": |r|; raw for None and "min_shift"). With
    `keep_raw`, `raw_activations` holds the raw pooled responses of every layer as well (the same
    tensor where the signed choice changes nothing): AUC, MI and d' use them. `layouts` and
    `signed_choices` give each recorded layer's resolved UnitLayout and signed choice (after the
    first pass), `settings()` the columns recorded with a measurement. Hooks are removed on exit,
    also when the body raises.

    Args:
        model: any nn.Module.
        layers: a preset ("relu" default, "activations", "mlp", "blocks"), or a list of module
            names and globs (optionally `name#k`) and functional call sites (`owner.relu()`).
        detach: detach the activations (measurement); keep the graph for the regularizer.
        layouts: declared layouts: a UnitLayout or "conv" | "channels_last" | "tokens[:REDUCTION[:PREFIX]]"
            | "flat" for every layer, or {module name or glob: layout}. Undeclared layers take what
            the model states (timm num_prefix_tokens, HF config, ConvNeXt blocks), else conv for
            [B, C, H, W] and flat for [B, U]; any other shape is refused.
        tokens: token reduction of token layers: "patch_mean" (default), "cls", "all_mean". Given
            explicitly, it is refused when no recorded layer has tokens.
        signed: None (refuse negative responses downstream), "positive", "min_shift", "abs", or
            {module name or glob: choice}.
        keep_raw: also record `raw_activations`.

    Set `token_mask` to a [B, N] padding mask (1 = real token) before a forward pass to make
    the token means run over real tokens only (text batches' attention_mask).
    Set `enabled = False` to skip recording (the hooks return at once and `activations` is
    left empty after the pass) without removing and re-registering the hooks; the
    regularizer uses it to measure the logged SI on every k-th step only.
    """

    def __init__(self, model: nn.Module, layers: str | list[str] | tuple[str, ...] = "relu", detach: bool = True,
                 layouts=None, tokens: str | None = None, signed=None, keep_raw: bool = False):
        if not isinstance(model, nn.Module):
            raise SelectivityError(f"model is a {type(model).__name__}; expected a torch.nn.Module")
        if not isinstance(layers, str) and (not isinstance(layers, (list, tuple))
                                            or not all(isinstance(name, str) for name in layers)):
            raise SelectivityError(f"layers = {layers!r}; expected a preset ({', '.join(PRESETS)}) or a list of "
                                   "module names")
        self.model = model
        self.detach = detach
        self._functional = FunctionalSites(model)
        wants_functional = layers in ("relu", "activations") or (
            not isinstance(layers, str) and any("relu()" in n or GLOB_CHARACTERS & set(n) for n in layers))
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
        self._setup_layouts(layouts, tokens, signed, list(self._call_filter))
        self.keep_raw = keep_raw
        self.token_mask: torch.Tensor | None = None
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._pending: list[tuple[str, torch.Tensor, torch.Tensor]] = []
        self.activations: dict[str, torch.Tensor] = {}
        self.raw_activations: dict[str, torch.Tensor] = {}
        self.layouts: dict[str, UnitLayout] = {}
        self.signed_choices: dict[str, str | None] = {}
        self.enabled = True

    def _setup_layouts(self, layouts, tokens, signed, names: list[str]) -> None:
        if tokens is not None:
            UnitLayout("tokens", tokens)  # an unknown reduction: one line now
        self._tokens_given = tokens is not None
        self._tokens = tokens or "patch_mean"
        if isinstance(layouts, dict):
            check_patterns_match([p for p in layouts if p not in names], names, "layout")
            self._declared = {p: parse_layout(v, tokens) for p, v in layouts.items()}
        else:
            self._declared = {"*": parse_layout(layouts, tokens)} if layouts is not None else {}
        if isinstance(signed, dict):
            check_patterns_match([p for p in signed if p not in names], names, "signed")
            for choice in signed.values():
                check_signed(choice)
            self._signed = dict(signed)
        else:
            check_signed(signed)
            self._signed = {"*": signed}
        self._model_layouts = model_layouts(self.model)
        self._token_layout = token_layout_of(self.model, self._tokens)

    def _stated_layout(self, name: str) -> UnitLayout | None:
        """Declared, else stated by the model: known before any output, so fixed when the hook is made."""
        return match_pattern(name, self._declared, "layout") or self._model_layouts.get(name)

    def _layout_for(self, name: str, stated: UnitLayout | None, output: torch.Tensor) -> UnitLayout:
        """`stated`, else the model's token layout for [B, N, D], else by shape ([B, C, H, W] / [B, U]).
        Reads no state that a pass changes, so a compiled model is traced once (no guard on a cache)."""
        if stated is not None:
            return stated
        if output.dim() == 3 and self._token_layout is not None:
            return self._token_layout
        return layout_from_shape(output, name)

    def settings(self) -> dict[str, dict[str, object]]:
        """{layer: {"layout", "reduction", "signed"}} of the recorded layers: what a measurement records."""
        return {layer: {"layout": layout.kind,
                        "reduction": layout.description if layout.kind == "tokens" else
                        ("spatial_mean" if layout.kind in ("conv", "channels_last") else "none"),
                        "signed": self.signed_choices.get(layer) or "none"}
                for layer, layout in self.layouts.items()}

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
        signed = match_pattern(name, self._signed, "signed")
        stated = self._stated_layout(name)

        def record(module, inputs, output):
            if not self.enabled:
                return
            if isinstance(output, (tuple, list)):  # HF layers may return (hidden_states, attentions, ...)
                output = output[0]
            output = output.detach() if self.detach else output
            layout = self._layout_for(name, stated, output)
            mask = self.token_mask if layout.kind == "tokens" else None
            units, raw = pooled_responses(output, layout, signed, mask, name, self.keep_raw)
            self._pending.append((name, units, raw, layout))

        return record

    def _finish_pass(self, module, inputs, output) -> None:
        calls_per_module = defaultdict(int)
        for name, *_ in self._pending:
            calls_per_module[name] += 1
        seen = defaultdict(int)
        activations, raw_activations = {}, {}
        for name, units, raw, layout in self._pending:
            seen[name] += 1
            wanted = self._call_filter[name]
            if wanted is not None and seen[name] not in wanted:
                continue
            layer = name if calls_per_module[name] == 1 and wanted is None else f"{name}#{seen[name]}"
            activations[layer], raw_activations[layer] = units, raw
            self.layouts[layer] = layout
            self.signed_choices[layer] = match_pattern(name, self._signed, "signed")
        if self._tokens_given and activations and not any(l.kind == "tokens" for l in self.layouts.values()):
            raise SelectivityError(f"token reduction {self._tokens!r} was given but no recorded layer has tokens "
                                   f"({', '.join(list(activations)[:5])}); expected token layers ([B, N, D]) or no "
                                   "token reduction")
        self.activations = activations
        self.raw_activations = raw_activations if self.keep_raw else {}
        self._pending = []
