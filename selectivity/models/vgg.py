"""VGG16 with BatchNorm, the common CIFAR variant (13 conv3x3-BN-ReLU layers, one Linear head).

The head is a single Linear(512, num_classes) on the flattened 1x1x512 map (as in
kuangliu/pytorch-cifar), not torchvision's three-layer 4096-wide classifier: 14,728,266
parameters for 10 classes. An adaptive average pool before the head is the identity at
32x32 and lets other input sizes through. There is no hidden fully-connected layer, so
every unit layer is a conv ReLU, and `block_output_layers` is every conv ReLU too.
"""

from __future__ import annotations

import torch
from torch import nn

from selectivity.models.registry import register_model, relu_module_names

VGG16_STAGES = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class VGG(nn.Module):
    """VGG with BatchNorm for small images.

    Args:
        stages: channel widths of the 3x3 convs, "M" for a 2x2 max-pool.
        num_classes: number of logits.
        in_channels: input image channels.
    """

    def __init__(self, stages: tuple, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for width in stages:
            if width == "M":
                layers.append(nn.MaxPool2d(2, stride=2))
                continue
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
            channels = width
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)
        self._init_weights()
        self.unit_layers = relu_module_names(self)
        self.block_output_layers = self.unit_layers

    def _init_weights(self) -> None:
        # torchvision's VGG init: keeps activations at a sane scale through 13 conv layers.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0.0, 0.01)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.avgpool(self.features(x))  # [B, 512, 1, 1]
        return self.classifier(torch.flatten(out, 1))  # [B, num_classes]


@register_model
def vgg16(num_classes: int = 10, **kwargs) -> nn.Module:
    """VGG16-BN for 32x32 inputs with a single Linear classifier."""
    return VGG(VGG16_STAGES, num_classes=num_classes, **kwargs)
