"""Actor, critic and WGAN discriminator (Sec. 6.2; layouts as in the published Learning-to-Paint code).

Actor and critic share one ResNet-style trunk whose width (channels of the first stage) and depth (residual
blocks per stage) are params: the paper uses ResNet-18 (width 64, blocks [2, 2, 2, 2]); on a CPU budget a
narrow trunk trains in minutes. The first conv has stride 2 and there is no max-pool, as published.
The actor normalises with BatchNorm; the critic has no batch statistics (a value target must not depend on
which states share its batch), so it uses weight-normalised convs instead.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from semguide_core.strokes import STROKE_SIZE


def conv(c_in: int, c_out: int, k: int, stride: int, norm: bool) -> nn.Module:
    layer = nn.Conv2d(c_in, c_out, k, stride, padding=k // 2, bias=not norm)
    return layer if norm else weight_norm(layer)


class Block(nn.Module):
    """A ResNet basic block: two 3x3 convs and a (projected when the shape changes) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int, norm: bool):
        super().__init__()
        bn = (lambda c: nn.BatchNorm2d(c)) if norm else (lambda c: nn.Identity())
        self.body = nn.Sequential(conv(c_in, c_out, 3, stride, norm), bn(c_out), nn.ReLU(),
                                  conv(c_out, c_out, 3, 1, norm), bn(c_out))
        self.shortcut = (nn.Identity() if stride == 1 and c_in == c_out
                         else nn.Sequential(conv(c_in, c_out, 1, stride, norm), bn(c_out)))

    def forward(self, x):
        return torch.relu(self.body(x) + self.shortcut(x))


class ResNet(nn.Module):
    """Stem (stride 2) + 4 stages (channels width * 1, 2, 4, 8; strides 1, 2, 2, 2) + pooled linear head."""

    def __init__(self, in_channels: int, outputs: int, width: int, blocks: list[int], norm: bool):
        super().__init__()
        layers = [conv(in_channels, width, 3, 2, norm), nn.BatchNorm2d(width) if norm else nn.Identity(), nn.ReLU()]
        c_in = width
        for stage, n_blocks in enumerate(blocks):
            c_out = width * 2 ** stage
            for i in range(n_blocks):
                layers.append(Block(c_in, c_out, 2 if (i == 0 and stage > 0) else 1, norm))
                c_in = c_out
        self.trunk = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(c_in, outputs)

    def forward(self, x):
        return self.head(self.trunk(x))


class Actor(nn.Module):
    """Observation -> a bundle of `bundle` strokes, [B, bundle, 13] in [0,1]."""

    def __init__(self, in_channels: int, bundle: int, width: int, blocks: list[int]):
        super().__init__()
        self.bundle = bundle
        self.net = ResNet(in_channels, bundle * STROKE_SIZE, width, blocks, norm=True)

    def forward(self, obs):
        return torch.sigmoid(self.net(obs)).view(-1, self.bundle, STROKE_SIZE)


class Critic(nn.Module):
    """Observation of the next state -> its value V, [B]."""

    def __init__(self, in_channels: int, width: int, blocks: list[int]):
        super().__init__()
        self.net = ResNet(in_channels, 1, width, blocks, norm=False)

    def forward(self, obs):
        return self.net(obs)[:, 0]


class Discriminator(nn.Module):
    """WGAN critic conditioned on the target: (target, image) -> a score, higher = more like the target.

    Five 5x5 stride-2 convs (published layout) with LeakyReLU, then a mean over the remaining map.
    """

    def __init__(self, width: int):
        super().__init__()
        chans = [6, width, 2 * width, 4 * width, 8 * width]
        layers = []
        for c_in, c_out in zip(chans[:-1], chans[1:]):
            layers += [weight_norm(nn.Conv2d(c_in, c_out, 5, 2, 2)), nn.LeakyReLU(0.2)]
        layers.append(nn.Conv2d(chans[-1], 1, 5, 2, 2))
        self.net = nn.Sequential(*layers)

    def forward(self, target, image):
        return self.net(torch.cat([target, image], 1)).mean(dim=(1, 2, 3))
