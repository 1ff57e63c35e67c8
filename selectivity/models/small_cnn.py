"""A small CNN for scikit-learn `digits` (1x8x8, 10 classes): the smoke-size model for CPU runs.

Three conv-BN-ReLU layers (32, 64, 64 channels; a 2x2 max-pool after the second), global
average pool, then one hidden fully-connected layer of 128 units. Every ReLU is a unit
layer and a block output. Global pooling makes it accept any input size of 2x2 or more.
"""

from __future__ import annotations

import torch
from torch import nn

from selectivity.models.registry import register_model, relu_module_names


class SmallCNN(nn.Module):
    """Conv(32)-Conv(64)-pool-Conv(64)-avgpool-FC(128)-FC(num_classes), BatchNorm after each conv.

    Args:
        num_classes: number of logits.
        in_channels: input image channels.
        hidden_units: width of the hidden fully-connected layer.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, hidden_units: int = 128):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 32, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.relu2 = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.conv3 = nn.Conv2d(64, 64, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(64)
        self.relu3 = nn.ReLU()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Linear(64, hidden_units)
        self.relu4 = nn.ReLU()
        self.fc2 = nn.Linear(hidden_units, num_classes)
        self.unit_layers = relu_module_names(self)
        self.block_output_layers = self.unit_layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))  # [B, 32, H, W]
        out = self.pool(self.relu2(self.bn2(self.conv2(out))))  # [B, 64, H/2, W/2]
        out = self.relu3(self.bn3(self.conv3(out)))  # [B, 64, H/2, W/2]
        out = torch.flatten(self.avgpool(out), 1)  # [B, 64]
        return self.fc2(self.relu4(self.fc1(out)))  # [B, num_classes]


@register_model
def small_cnn(num_classes: int = 10, **kwargs) -> nn.Module:
    """Small CNN for 8x8 digits; kwargs: in_channels (default 1), hidden_units (default 128)."""
    return SmallCNN(num_classes=num_classes, **kwargs)
