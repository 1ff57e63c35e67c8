"""How a captured layer's output becomes one response per unit (channel), and the signed choice.

A unit is one channel. Its response to one input is a stated reduction over the layer's
non-channel dimensions, given by the layer's `UnitLayout`:

    kind            output          response of channel c (docs/definitions.md#units-of-any-layout)
    "conv"          [B, C, H, W]    mean over H, W (Leavitt & Morcos's feature-map mean)
    "channels_last" [B, H, W, C]    mean over H, W (timm ConvNeXt MLPs, Swin blocks)
    "tokens"        [B, N, D]       a token reduction (below); D channels are the units
    "flat"          [B, U]          as is

Token reductions: "patch_mean" = mean over tokens N[num_prefix_tokens:] (class, register and
distillation tokens left out; the default, as MILAN does for ViT MLP neurons); "cls" = token 0
alone; "all_mean" = mean over all N tokens. With a padding mask [B, N] (a text batch's
attention_mask) both means run over the real tokens only. Channels are never averaged.

Signed choice (SI needs non-negative responses; AUC, MI and d' do not):
    None        refuse a layer with negative responses (the default, as Leavitt & Morcos's ReLU nets)
    "positive"  max(r, 0) element-wise before pooling (differentiable almost everywhere: the regularizer's)
    "min_shift" pool the raw values; SI from class means minus the unit's minimum over the data
    "abs"       |r| element-wise before pooling (Ranadive et al.'s ViT script, for comparison)
"""
import fnmatch
import math
from dataclasses import dataclass

import torch

from selectivity.errors import SelectivityError

LAYOUT_KINDS = ("conv", "channels_last", "tokens", "flat")
TOKEN_REDUCTIONS = ("patch_mean", "cls", "all_mean")
SIGNED_CHOICES = ("positive", "min_shift", "abs")
OUTPUT_DIMS = {"conv": 4, "channels_last": 4, "tokens": 3, "flat": 2}


@dataclass(frozen=True)
class UnitLayout:
    """The layout of one layer's output and how it is reduced to [B, C] unit responses.

    Attributes:
        kind: "conv" [B, C, H, W], "channels_last" [B, H, W, C], "tokens" [B, N, D] or "flat" [B, U].
        tokens: for "tokens": "patch_mean" (default), "cls" or "all_mean"; None otherwise.
        num_prefix_tokens: tokens before the patches (class/register/distillation), left out by "patch_mean".
        source: where the layout came from ("model: timm num_prefix_tokens=1", "declared", "shape").
    """

    kind: str
    tokens: str | None = None
    num_prefix_tokens: int = 0
    source: str = "declared"

    def __post_init__(self):
        if self.kind not in LAYOUT_KINDS:
            raise SelectivityError(f"layout {self.kind!r} is not known; expected one of {', '.join(LAYOUT_KINDS)}")
        if self.kind == "tokens" and self.tokens not in TOKEN_REDUCTIONS:
            raise SelectivityError(f"token reduction {self.tokens!r} is not known; expected one of "
                                   f"{', '.join(TOKEN_REDUCTIONS)}")
        if self.kind != "tokens" and self.tokens is not None:
            raise SelectivityError(f"token reduction {self.tokens!r} on a {self.kind!r} layout, which has no tokens; "
                                   "expected the 'tokens' layout ([B, N, D]) or no token reduction")
        if self.num_prefix_tokens < 0:
            raise SelectivityError(f"num_prefix_tokens = {self.num_prefix_tokens}; expected 0 or more")

    @property
    def description(self) -> str:
        """One word for tables: conv, channels_last, flat, tokens:patch_mean(skip 1), tokens:cls, ..."""
        if self.kind != "tokens":
            return self.kind
        skip = f"(skip {self.num_prefix_tokens})" if self.tokens == "patch_mean" and self.num_prefix_tokens else ""
        return f"tokens:{self.tokens}{skip}"


def parse_layout(value: "str | UnitLayout", tokens: str | None = None) -> UnitLayout:
    """A UnitLayout from a user's declaration: a UnitLayout, or "conv" | "channels_last" | "flat" |
    "tokens" | "tokens:REDUCTION" | "tokens:REDUCTION:PREFIX" (e.g. "tokens:patch_mean:1")."""
    if isinstance(value, UnitLayout):
        return value
    if not isinstance(value, str):
        raise SelectivityError(f"layout {value!r}; expected a UnitLayout or one of {', '.join(LAYOUT_KINDS)}")
    kind, _, rest = value.partition(":")
    if kind != "tokens":
        return UnitLayout(kind, None if not rest else rest)
    reduction, _, prefix = rest.partition(":")
    if prefix and not prefix.isdigit():
        raise SelectivityError(f"layout {value!r}: prefix token count {prefix!r} is not a number; "
                               "expected tokens:REDUCTION:N, e.g. tokens:patch_mean:1")
    return UnitLayout("tokens", reduction or tokens or "patch_mean", int(prefix or 0))


def check_signed(signed) -> None:
    if signed is not None and signed not in SIGNED_CHOICES:
        raise SelectivityError(f"signed = {signed!r}; expected None (refuse negative responses) or one of "
                               f"{', '.join(SIGNED_CHOICES)}")


def match_pattern(name: str, choices: dict, what: str):
    """The value of the first glob pattern in `choices` matching layer `name` (exact names first); None if none."""
    module_name = name.split("#")[0]
    for key in (name, module_name):
        if key in choices:
            return choices[key]
    for pattern, value in choices.items():
        if fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(module_name, pattern):
            return value
    return None


def check_patterns_match(patterns, names: list[str], what: str) -> None:
    """A glob pattern (of layers, layouts or signed choices) that matches no layer is refused in one line."""
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(n, pattern) or fnmatch.fnmatchcase(n.split("#")[0], pattern) for n in names):
            shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
            raise SelectivityError(f"{what} pattern {pattern!r} matches no layer; expected a module name or glob "
                                   f"over: {shown}")


def apply_signed(output: torch.Tensor, signed: str | None) -> torch.Tensor:
    """The element-wise part of the signed choice, applied before pooling ("positive", "abs")."""
    if signed == "positive":
        return output.clamp_min(0)  # relu: gradient 1 above 0, 0 below
    if signed == "abs":
        return output.abs()
    return output  # None, "min_shift": pooled raw (min_shift acts on the class means)


def token_responses(output: torch.Tensor, layout: UnitLayout, mask: torch.Tensor | None) -> torch.Tensor:
    """[B, N, D] -> [B, D] by the layout's token reduction; `mask` [B, N] (1 = real token) or None."""
    if layout.tokens == "cls":
        return output[:, 0].clone()  # a view would follow in-place changes to the tokens
    start = layout.num_prefix_tokens if layout.tokens == "patch_mean" else 0
    kept = output[:, start:]  # [B, N', D]
    if kept.shape[1] == 0:
        raise SelectivityError(f"token reduction {layout.tokens} left no tokens ({output.shape[1]} tokens, "
                               f"{start} prefix); expected more tokens than num_prefix_tokens")
    if mask is None:
        return kept.mean(1)
    if mask.shape != output.shape[:2]:
        raise SelectivityError(f"padding mask {tuple(mask.shape)} does not fit tokens {tuple(output.shape[:2])}; "
                               "expected an attention_mask [B, N] for the layer's tokens")
    weights = mask[:, start:].to(kept.dtype).unsqueeze(-1)  # [B, N', 1]
    return (kept * weights).sum(1) / weights.sum(1).clamp_min(1)


def reduce_with_layout(output: torch.Tensor, layout: UnitLayout, signed: str | None = None,
                       mask: torch.Tensor | None = None, layer: str = "layer") -> torch.Tensor:
    """One layer's output -> [B, C] unit responses: signed transform, then the layout's reduction.

    Args:
        output: the module's output, shaped as `layout` says.
        layout: the layer's UnitLayout.
        signed: None | "positive" | "min_shift" | "abs" (see the module docstring).
        mask: [B, N] padding mask for token layouts (None: every token is real).
        layer: the layer's name, for the error message.
    Returns:
        [B, C] responses (the output's dtype; differentiable) in memory of their own: an
        in-place op later in the forward (`h.relu_(); h.add_(1)`) must not change what a
        hook recorded, so a flat output or a cls token, which would be the output itself
        or a view of it, is copied.
    """
    if output.dim() != OUTPUT_DIMS[layout.kind]:
        detail = ("a token reduction on a layer without tokens" if layout.kind == "tokens"
                  else f"the {layout.kind} layout")
        raise SelectivityError(f"layer {layer} gives {tuple(output.shape)}, which does not fit {detail}; expected "
                               f"a {OUTPUT_DIMS[layout.kind]}-d output or another layout ({', '.join(LAYOUT_KINDS)})")
    values = apply_signed(output, signed)
    if layout.kind == "flat":
        return values.clone() if values is output else values
    if layout.kind == "channels_last":
        return values.sum((1, 2)) / math.prod(values.shape[1:3])
    if layout.kind == "tokens":
        return token_responses(values, layout, mask)
    from selectivity.capture.units import reduce_to_units  # the conv path keeps its fast gradient
    return reduce_to_units(values)


# A no-grad layer's signed and raw responses are pooled in batch slices of about this size, so the
# element-wise transform stays in cache instead of writing a full copy of the output: on a ViT's
# MLP ([128, 65, 768] fp32) that copy cost as much as the GELU itself (docs/benchmarks.md).
SLICE_BYTES = 1 << 20


def pooled_responses(output: torch.Tensor, layout: UnitLayout, signed: str | None, mask: torch.Tensor | None = None,
                     layer: str = "layer", keep_raw: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(responses under `signed`, raw responses) of one layer, each [B, C], as reduce_with_layout
    gives them (raw is the first unless `keep_raw` and an element-wise choice, "positive" or
    "abs"). A no-grad output under such a choice is pooled slice by slice along the batch."""
    elementwise = signed in ("positive", "abs")

    def pool(part, part_mask):
        units = reduce_with_layout(part, layout, signed, part_mask, layer)
        return units, (reduce_with_layout(part, layout, None, part_mask, layer) if keep_raw and elementwise else units)

    if not elementwise or output.requires_grad or output.dim() < 3:
        return pool(output, mask)
    rows = max(1, SLICE_BYTES // max(1, output[0].numel() * output.element_size()))
    pairs = [pool(output[start:start + rows], None if mask is None else mask[start:start + rows])
             for start in range(0, output.shape[0], rows)]
    units = torch.cat([part for part, _ in pairs])
    return units, (torch.cat([part for _, part in pairs]) if keep_raw else units)


def layout_from_shape(output: torch.Tensor, layer: str) -> UnitLayout:
    """[B, C, H, W] -> conv and [B, U] -> flat when nothing declares the layout; anything else is refused."""
    if output.dim() == 4:
        return UnitLayout("conv", source="shape")
    if output.dim() == 2:
        return UnitLayout("flat", source="shape")
    raise SelectivityError(
        f"layer {layer} gives {tuple(output.shape)}, whose layout is not known; expected [B, C, H, W] or [B, U], or "
        "declare it: layouts={'" + layer.split('#')[0] + "': 'tokens' | 'channels_last' | 'conv' | 'flat'}")
