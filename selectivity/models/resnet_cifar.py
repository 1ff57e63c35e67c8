"""CIFAR ResNets of He et al. 2016 (section 4.2): 6n+2 layers, 16/32/64 channels, option-A shortcuts.

Follows the common reference akamaster/pytorch_resnet_cifar10 (same module names, so its
checkpoints load after stripping DataParallel's `module.` prefix; same Kaiming-normal
init of conv and linear weights). Parameters for 10 classes: resnet20 269,722;
resnet32 464,154; resnet44 658,586; resnet56 853,018 (pinned in tests/test_models.py).
Each ReLU is its own module so a hook on it fires once per forward pass.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from selectivity.models.registry import register_model, relu_module_names


class ZeroPadShortcut(nn.Module):
    """Parameter-free "option A" shortcut: subsample by 2 and zero-pad new channels."""

    def __init__(self, extra_channels: int):
        super().__init__()
        self.extra_channels = extra_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # = x[:, :, ::2, ::2], but a slice's backward scatters into a new contiguous tensor, so a
        # channels_last model got one mixed-layout gradient add per stage; a 1x1 pool's backward keeps the layout
        subsampled = F.avg_pool2d(x, kernel_size=1, stride=2)  # [B, C, ceil(H/2), ceil(W/2)]
        half = self.extra_channels // 2
        return F.pad(subsampled, (0, 0, 0, 0, half, self.extra_channels - half))  # [B, C + extra, H/2, W/2]


class CifarBasicBlock(nn.Module):
    """Two 3x3 conv-BN layers plus shortcut; `relu2` (after the add) is the block output."""

    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        needs_projection = stride != 1 or in_planes != planes
        self.shortcut = ZeroPadShortcut(planes - in_planes) if needs_projection else nn.Identity()
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for 32x32 inputs.

    Args:
        blocks_per_stage: n, the number of BasicBlocks in each of the three stages.
        num_classes: number of logits.
        in_channels: input image channels.
    """

    def __init__(self, blocks_per_stage: int, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU()
        self.layer1 = self._make_stage(16, 16, blocks_per_stage, stride=1)
        self.layer2 = self._make_stage(16, 32, blocks_per_stage, stride=2)
        self.layer3 = self._make_stage(32, 64, blocks_per_stage, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(64, num_classes)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight)  # as the reference: fan_in, on conv and linear
        self.unit_layers = relu_module_names(self)
        self.block_output_layers = tuple(name for name in self.unit_layers if name.endswith(".relu2"))

    @staticmethod
    def _make_stage(in_planes: int, planes: int, num_blocks: int, stride: int) -> nn.Sequential:
        blocks = [CifarBasicBlock(in_planes, planes, stride)]
        blocks += [CifarBasicBlock(planes, planes, 1) for _ in range(num_blocks - 1)]
        return nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))  # [B, 16, H, W]
        out = self.layer3(self.layer2(self.layer1(out)))  # [B, 64, H/4, W/4]
        return self.linear(torch.flatten(self.avgpool(out), 1))  # [B, num_classes]


@register_model
def resnet20(num_classes: int = 10, **kwargs) -> nn.Module:
    """ResNet20 (n=3), the paper's headline CIFAR-10 model."""
    return CifarResNet(3, num_classes=num_classes, **kwargs)


@register_model
def resnet32(num_classes: int = 10, **kwargs) -> nn.Module:
    """ResNet32 (n=5)."""
    return CifarResNet(5, num_classes=num_classes, **kwargs)


@register_model
def resnet44(num_classes: int = 10, **kwargs) -> nn.Module:
    """ResNet44 (n=7)."""
    return CifarResNet(7, num_classes=num_classes, **kwargs)


@register_model
def resnet56(num_classes: int = 10, **kwargs) -> nn.Module:
    """ResNet56 (n=9)."""
    return CifarResNet(9, num_classes=num_classes, **kwargs)
