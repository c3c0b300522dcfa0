"""EfficientNet (Tan & Le 2019) from the B0 table with width and depth multipliers, in plain torch.

It is torchvision's `EfficientNet` module for module: the same tree and names (a torchvision
efficientnet_b0 ImageNet state dict loads, and a trained model saves to the same bytes), the same layers
created and initialised in the same order (one seed gives the same weights) and the same forward,
stochastic depth included; tests/test_semantics_models.py holds it against torchvision 0.29 for weights,
outputs and gradients. It is written out rather than imported because `import torchvision` imports
`torch._dynamo` (through `torchvision.ops.roi_align`): 1.3 s, most of `semguide paint`'s start-up budget,
for a network this small.
"""
from __future__ import annotations

import math

import torch
from torch import nn

# EfficientNet-B0, Table 1: expand ratio, kernel, stride, in channels, out channels, layers per stage
B0_STAGES = ((1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
             (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1))


def scaled_channels(channels: float, divisor: int = 8) -> int:
    """channels rounded to the nearest multiple of `divisor`, at least `divisor` and never more than 10%
    below (the reference implementations' rule for width multipliers and expansion)."""
    rounded = max(divisor, int(channels + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * channels else rounded


def conv_bn(in_channels: int, out_channels: int, kernel: int, stride: int = 1, groups: int = 1,
            activation: bool = True) -> nn.Sequential:
    """Convolution ('same' padding, no bias), BatchNorm and SiLU: [0], [1], [2] as torchvision names them."""
    layers = [nn.Conv2d(in_channels, out_channels, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
              nn.BatchNorm2d(out_channels)]
    return nn.Sequential(*layers, nn.SiLU(inplace=True)) if activation else nn.Sequential(*layers)


class SqueezeExcitation(nn.Module):
    """x times a per-channel gate: sigmoid(fc2(SiLU(fc1(mean of x over the image))))."""

    def __init__(self, channels: int, squeeze: int):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.activation = nn.SiLU(inplace=True)
        self.scale_activation = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x))))) * x


class StochasticDepth(nn.Module):
    """In training, zero a residual branch per sample with probability p and scale the kept ones by
    1 / (1 - p) (Huang et al. 2016, "row" mode); the identity in evaluation."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = 1.0 - self.p
        return x * torch.empty(len(x), 1, 1, 1, dtype=x.dtype, device=x.device).bernoulli_(keep).div_(keep)


class MBConv(nn.Module):
    """Inverted residual block: 1x1 expansion, depthwise convolution, squeeze-excitation, 1x1 projection;
    with a residual connection, through stochastic depth, when the shape allows."""

    def __init__(self, in_channels: int, out_channels: int, expand_ratio: float, kernel: int, stride: int,
                 drop: float):
        super().__init__()
        expanded = scaled_channels(in_channels * expand_ratio)
        expand = [conv_bn(in_channels, expanded, 1)] if expanded != in_channels else []
        self.block = nn.Sequential(*expand, conv_bn(expanded, expanded, kernel, stride, groups=expanded),
                                   SqueezeExcitation(expanded, max(1, in_channels // 4)),
                                   conv_bn(expanded, out_channels, 1, activation=False))
        self.stochastic_depth = StochasticDepth(drop)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return self.stochastic_depth(out) + x if self.residual else out


class EfficientNet(nn.Module):
    """features (stem, the seven stages of MBConv blocks, 1x1 head conv) -> average -> dropout -> linear.

    width_mult scales every stage's channels (rounded by `scaled_channels`), depth_mult its number of
    blocks (rounded up); 1.0 and 1.0 is EfficientNet-B0. The stochastic depth probability grows linearly
    from 0 at the first block to `stochastic_depth` (excluded) at the last."""

    def __init__(self, num_classes: int, width_mult: float = 1.0, depth_mult: float = 1.0, dropout: float = 0.2,
                 stochastic_depth: float = 0.2):
        super().__init__()
        stages = [(ratio, kernel, stride, scaled_channels(cin * width_mult), scaled_channels(cout * width_mult),
                   int(math.ceil(layers * depth_mult)))
                  for ratio, kernel, stride, cin, cout, layers in B0_STAGES]
        total, index = sum(s[-1] for s in stages), 0
        layers = [conv_bn(3, stages[0][3], 3, stride=2)]
        for ratio, kernel, stride, cin, cout, count in stages:
            blocks = []
            for i in range(count):  # the first block of a stage changes channels and stride, the rest keep them
                blocks.append(MBConv(cin if i == 0 else cout, cout, ratio, kernel, stride if i == 0 else 1,
                                     stochastic_depth * float(index) / total))
                index += 1
            layers.append(nn.Sequential(*blocks))
        head = 4 * stages[-1][4]
        layers.append(conv_bn(stages[-1][4], head, 1))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout, inplace=True), nn.Linear(head, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))
