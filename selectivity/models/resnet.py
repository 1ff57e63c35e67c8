"""torchvision-architecture ResNet18/50 for Tiny ImageNet (64x64), with one ReLU module per activation.

Module and parameter names match torchvision's (conv1, bn1, layer1.0.conv1, ..., fc), so
a torchvision state_dict loads unchanged; only the ReLUs differ: torchvision reuses one
`relu` per block (a hook on it fires 2-3 times), here each block has `relu1`, `relu2`
(, `relu3`), and the last one, after the residual add, is the block output.

Stems (`stem=` option):
- "cifar" (default, used by the paper configs): 3x3 stride-1 conv, no max-pool; keeps
  64x64 resolution into layer1, about 15x the compute of the imagenet stem (docs/models.md).
- "imagenet": torchvision's 7x7 stride-2 conv + 3x3 stride-2 max-pool.
"""

from __future__ import annotations

import torch
from torch import nn

from selectivity.errors import SelectivityError
from selectivity.models.registry import register_model, relu_module_names

STEMS = ("cifar", "imagenet")


def _downsample(in_planes: int, out_planes: int, stride: int) -> nn.Module | None:
    if stride == 1 and in_planes == out_planes:
        return None
    return nn.Sequential(nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False), nn.BatchNorm2d(out_planes))


class BasicBlock(nn.Module):
    """Two 3x3 convs; `relu2` after the residual add is the block output."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = _downsample(in_planes, planes, stride)
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (stride here, as torchvision v1.5), 1x1 expand; `relu3` is the block output."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        out_planes = planes * self.expansion
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU()
        self.conv3 = nn.Conv2d(planes, out_planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.downsample = _downsample(in_planes, out_planes, stride)
        self.relu3 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu3(out + identity)


class ResNet(nn.Module):
    """ResNet with four stages of 64/128/256/512 base widths.

    Args:
        block: BasicBlock or Bottleneck.
        blocks_per_stage: number of blocks in each of the four stages.
        num_classes: number of logits.
        in_channels: input image channels.
        stem: "cifar" (3x3 stride 1, no max-pool) or "imagenet" (7x7 stride 2 + max-pool).
    """

    def __init__(self, block: type, blocks_per_stage: list[int], num_classes: int = 1000,
                 in_channels: int = 3, stem: str = "cifar"):
        super().__init__()
        if stem not in STEMS:
            raise SelectivityError(f"stem={stem!r}; expected one of {', '.join(STEMS)}")
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1) if stem == "imagenet" else nn.Identity()
        self.in_planes = 64
        self.layer1 = self._make_stage(block, 64, blocks_per_stage[0], stride=1)
        self.layer2 = self._make_stage(block, 128, blocks_per_stage[1], stride=2)
        self.layer3 = self._make_stage(block, 256, blocks_per_stage[2], stride=2)
        self.layer4 = self._make_stage(block, 512, blocks_per_stage[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        for module in self.modules():  # torchvision's init (fc keeps PyTorch's default)
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        self.unit_layers = relu_module_names(self)
        last_relu = "relu2" if block is BasicBlock else "relu3"
        self.block_output_layers = tuple(name for name in self.unit_layers if name.endswith("." + last_relu))

    def _make_stage(self, block: type, planes: int, num_blocks: int, stride: int) -> nn.Sequential:
        blocks = [block(self.in_planes, planes, stride)]
        self.in_planes = planes * block.expansion
        blocks += [block(self.in_planes, planes) for _ in range(num_blocks - 1)]
        return nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # [B, 64, H', W']
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))  # [B, 512 * expansion, h, w]
        return self.fc(torch.flatten(self.avgpool(out), 1))  # [B, num_classes]


@register_model
def resnet18(num_classes: int = 200, **kwargs) -> nn.Module:
    """ResNet18 (BasicBlock, [2, 2, 2, 2]); kwargs: in_channels, stem."""
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes=num_classes, **kwargs)


@register_model
def resnet50(num_classes: int = 200, **kwargs) -> nn.Module:
    """ResNet50 (Bottleneck, [3, 4, 6, 3]); kwargs: in_channels, stem."""
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes=num_classes, **kwargs)
