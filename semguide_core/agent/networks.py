"""Actor, critic and WGAN discriminator (Sec. 6.2).

Actor and critic share one ResNet-style trunk whose width (channels of the first stage) and depth (residual
blocks per stage) are params; the first conv has stride 2 and there is no max-pool, as published. The
critic keeps the published layout (trunk, global pool, linear: ResNet-18 in the paper). The actor departs
from it: its trunk stays a feature map and each stroke is read at the cell it is placed in
(placement.py, docs/agent.md says why: the pooled head learns one layout for all images and stops).
The actor normalises with BatchNorm; the critic has no batch statistics (a value target must not depend on
which states share its batch), so it uses weight-normalised convs instead.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from semguide_core.agent import env
from semguide_core.agent.placement import Placement, grid_cells, roi_mean
from semguide_core.config import AgentParams
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


def resnet_trunk(in_channels: int, width: int, blocks: list[int], norm: bool) -> tuple[nn.Sequential, int]:
    """Stem (stride 2) + one stage per entry of `blocks` (channels width * 1, 2, 4, ...; strides 1, 2, 2, ...).

    Returns the trunk (a feature map at stride 2 ** len(blocks)) and its output channels.
    """
    layers = [conv(in_channels, width, 3, 2, norm), nn.BatchNorm2d(width) if norm else nn.Identity(), nn.ReLU()]
    c_in = width
    for stage, n_blocks in enumerate(blocks):
        c_out = width * 2 ** stage
        for i in range(n_blocks):
            layers.append(Block(c_in, c_out, 2 if (i == 0 and stage > 0) else 1, norm))
            c_in = c_out
    return nn.Sequential(*layers), c_in


class ResNet(nn.Module):
    """The ResNet trunk, global average pool, linear head (the published actor's and critic's layout)."""

    def __init__(self, in_channels: int, outputs: int, width: int, blocks: list[int], norm: bool):
        super().__init__()
        trunk, c_out = resnet_trunk(in_channels, width, blocks, norm)
        self.trunk = nn.Sequential(trunk, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(c_out, outputs)

    def forward(self, x):
        return self.head(self.trunk(x))


class Actor(nn.Module):
    """Observation and the bundle's cells (placement.py) -> the bundle's strokes, [B, K, 13] in [0,1].

    A fully convolutional ResNet trunk gives a feature map; each stroke is read from the mean features of
    its cell, the image's mean features, a one-hot of its slot k (so strokes sharing a cell can differ) and,
    with `view` > 0, its cell's view (`cell_views`), by a small MLP head shared by all cells. Its 13 outputs
    are relative to the cell (`cell_strokes`): the
    stroke stays near its cell and is sized by it, so one head serves the coarse cells of the first bundles
    and the fine cells of the last. A bi-level agent has two heads, one for a_b and one for a_f (Eq. 2):
    with one shared head, Adam's per-parameter step sizes follow the foreground terms' larger gradients
    (eta, nu) and the background strokes barely learned (measured: they stayed grey, the untrained colour).
    """

    def __init__(self, in_channels: int, bundle: int, width: int, blocks: list[int], hidden: int,
                 reach: float, thickness: float, n_background: int, grids: list[int], grid_steps: list[int],
                 rank_by: str, view: int = 0, view_channels: tuple[int, ...] = ()):
        super().__init__()
        self.bundle, self.reach, self.thickness = bundle, reach, thickness
        self.view, self.view_channels = view, list(view_channels)
        self.placement = Placement(bundle, n_background, tuple(grids), tuple(grid_steps), rank_by)  # where strokes go
        self.trunk, c = resnet_trunk(in_channels, width, blocks, norm=True)
        # channels-last convs: 1.35x faster forward + backward on CPU (measured, batch 16 at 64 px)
        self.trunk.to(memory_format=torch.channels_last)
        inputs = 2 * c + bundle + len(self.view_channels) * view * view
        self.heads = nn.ModuleList([nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(),
                                                  nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, STROKE_SIZE))
                                    for _ in range(2 if self.placement.bilevel else 1)])

    def forward(self, obs: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
        features = self.trunk(obs)
        local = roi_mean(features, cells)                                    # [B, K, C]
        image = features.mean(dim=(2, 3))[:, None].expand_as(local)          # [B, K, C]
        slot = torch.eye(self.bundle, device=obs.device)[None].expand(len(obs), -1, -1)
        parts = [local, image, slot]
        if self.view:
            parts.append(cell_views(obs[:, self.view_channels], cells, self.view, self.reach))
        x = torch.cat(parts, -1)
        k_bg = self.placement.n_background if self.placement.bilevel else self.bundle
        raw = torch.cat([head(part) for head, part in zip(self.heads, (x[:, :k_bg], x[:, k_bg:]))], 1)
        return cell_strokes(torch.sigmoid(raw), cells, self.reach, self.thickness)


def cell_views(maps: torch.Tensor, cells: torch.Tensor, side: int, reach: float) -> torch.Tensor:
    """Each cell's own view of maps [B, C, H, W]: side x side sub-cell means over the square its stroke can
    reach (the cell's centre +- `reach` cells), [B, K, C * side * side].

    Why: the trunk's features have a fixed stride (4 px), coarser than the cells of the finest grids and of
    a small object's bbox; a stroke read only from them gets a blurred idea of the colours it should paint
    (with the view the baseline's test MSE fell by 10%, docs/agent.md). The view gives every head its cell
    at the cell's own scale, whatever its size.
    """
    b, k, _ = cells.shape
    half = cells[..., 2:] * max(reach, 0.5)
    region = torch.cat([cells[..., :2] - half, 2 * half], -1).reshape(b * k, 4)  # (x, y, w, h)
    sub_cells = grid_cells(region, side).reshape(b, k * side * side, 4)
    return roi_mean(maps, sub_cells, samples=4).reshape(b, k, -1)


def cell_strokes(u: torch.Tensor, cells: torch.Tensor, reach: float, thickness: float) -> torch.Tensor:
    """Strokes (Eq. 1) [B, K, 13] from the actor's outputs u in [0,1] relative to cells (cx, cy, sx, sy).

    Ends P0, P2 lie within `reach` cells of the cell's centre; the middle control point stays relative to
    them (as in Eq. 1's layout); thickness z is at most `thickness` * 2 * (cell side): z = 2 / g is a disc
    whose diameter spans a cell of a g x g grid (radius 1 + z * canvas / 2 pixels of the 2x grid);
    opacity and colour are free.
    """
    centre, size = cells[..., :2], cells[..., 2:]
    p0 = (centre + (2 * u[..., 0:2] - 1) * reach * size).clamp(0, 1)
    p2 = (centre + (2 * u[..., 4:6] - 1) * reach * size).clamp(0, 1)
    z_max = (2 * thickness * size.prod(-1).sqrt()).clamp(max=1)[..., None]
    return torch.cat([p0, u[..., 2:4], p2, u[..., 6:8] * z_max, u[..., 8:]], -1)


def actor_arch(p: AgentParams, semantic_inputs: bool, n_background: int) -> dict:
    """The Actor's arguments from the agent params and its observation: what an agent file stores as `arch`."""
    return dict(in_channels=env.in_channels(semantic_inputs), bundle=p.bundle, width=p.actor_width,
                blocks=list(p.actor_blocks),
                hidden=p.actor_hidden, reach=p.stroke_reach, thickness=p.stroke_thickness,
                n_background=n_background, grids=list(p.grids), grid_steps=list(p.grid_steps), rank_by=p.rank_by,
                view=p.cell_view, view_channels=env.view_channels(semantic_inputs))


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
