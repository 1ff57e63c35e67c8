"""vit_cifar: the small CIFAR ViT against a forward pass and unit responses written here by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from selectivity.capture import UnitCapture
from selectivity.models import create_model


def test_parameter_count_by_hand():
    dim, hidden, tokens, classes = 96, 192, 65, 10
    block = (2 * 2 * dim  # two LayerNorms
             + 3 * dim * dim + 3 * dim + dim * dim + dim  # attention in/out projections
             + dim * hidden + hidden + hidden * dim + dim)  # MLP
    expected = 3 * 16 * dim + dim + dim + tokens * dim + 4 * block + 2 * dim + dim * classes + classes
    model = create_model("vit_cifar", classes)
    assert sum(parameter.numel() for parameter in model.parameters()) == expected == 311_338


def _reference_forward(model, images: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The ViT written out with explicit attention; returns logits and each block's GELU output."""
    patch = model.patch_embed
    x = torch.nn.functional.conv2d(images, patch.weight, patch.bias, stride=4)  # [B, D, 8, 8]
    x = x.reshape(x.shape[0], x.shape[1], 64).permute(0, 2, 1)
    x = torch.cat([model.cls_token.repeat(x.shape[0], 1, 1), x], dim=1) + model.pos_embed
    hidden_layers = []
    for block in model.blocks:
        dim, heads = x.shape[-1], block.attn.num_heads
        ln = lambda t, norm: torch.nn.functional.layer_norm(t, (dim,), norm.weight, norm.bias, norm.eps)
        normed = ln(x, block.norm1)
        q, k, v = (normed @ block.attn.in_proj_weight.T + block.attn.in_proj_bias).split(dim, dim=-1)
        split = lambda t: t.reshape(t.shape[0], t.shape[1], heads, dim // heads).transpose(1, 2)
        q, k, v = split(q), split(k), split(v)
        weights = torch.softmax(q @ k.transpose(-1, -2) / (dim // heads) ** 0.5, dim=-1)
        attended = (weights @ v).transpose(1, 2).reshape(x.shape)
        x = x + attended @ block.attn.out_proj.weight.T + block.attn.out_proj.bias
        pre = ln(x, block.norm2) @ block.mlp.fc1.weight.T + block.mlp.fc1.bias
        hidden = 0.5 * pre * (1 + torch.erf(pre / 2 ** 0.5))  # exact GELU
        hidden_layers.append(hidden)
        x = x + hidden @ block.mlp.fc2.weight.T + block.mlp.fc2.bias
    cls = torch.nn.functional.layer_norm(x[:, 0], (x.shape[-1],), model.norm.weight, model.norm.bias, model.norm.eps)
    return cls @ model.head.weight.T + model.head.bias, hidden_layers


def test_forward_and_captured_units_match_a_forward_written_by_hand():
    torch.manual_seed(3)
    model = create_model("vit_cifar", 10).double().eval()
    images = torch.randn(5, 3, 32, 32, dtype=torch.float64)
    expected_logits, hidden_layers = _reference_forward(model, images)
    with torch.no_grad(), UnitCapture(model, "relu") as capture:
        logits = model(images)
    torch.testing.assert_close(logits, expected_logits)
    assert list(capture.activations) == list(model.unit_layers)
    for name, hidden in zip(model.unit_layers, hidden_layers):
        tokens = hidden.detach().numpy()  # [B, 65, 192]: class token first
        assert tokens.min() < 0  # GELU is signed: the positive part matters
        expected = np.maximum(tokens[:, 1:, :], 0).mean(axis=1)  # one unit per MLP channel
        np.testing.assert_allclose(capture.activations[name].numpy(), expected, rtol=1e-12, atol=1e-12)


def test_unit_layers_are_each_blocks_mlp_units():
    model = create_model("vit_cifar", 10, depth=2)
    assert model.unit_layers == ("blocks.0.mlp.units", "blocks.1.mlp.units")
    assert model.block_output_layers == model.unit_layers


def test_init_is_deterministic_by_seed():
    def state(seed: int) -> dict[str, torch.Tensor]:
        torch.manual_seed(seed)
        return create_model("vit_cifar", 10).state_dict()

    first, again, other = state(0), state(0), state(1)
    assert all(torch.equal(first[key], again[key]) for key in first)
    assert not torch.equal(first["pos_embed"], other["pos_embed"])
    assert not torch.equal(first["blocks.0.mlp.fc1.weight"], other["blocks.0.mlp.fc1.weight"])


@pytest.mark.parametrize("options", [{"dim": 128, "heads": 4, "mlp_ratio": 4, "depth": 1}])
def test_options_set_the_unit_count(options):
    model = create_model("vit_cifar", 10, **options).eval()
    with torch.no_grad(), UnitCapture(model, "relu") as capture:
        model(torch.randn(2, 3, 32, 32))
    assert capture.activations["blocks.0.mlp.units"].shape == (2, 512)
