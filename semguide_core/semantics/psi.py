"""Psi (Eq. 7): the foreground segmentation and localisation network, S_I, (x, y, w, h) = Psi[I].

A small fully convolutional encoder-decoder (U-Net style skips; the finest level is at half the image
side, which keeps it cheap on a CPU) with two heads (Sec. 6.2):
- a per-pixel foreground head: two-class logits, trained with cross-entropy (L_fg);
- a bounding-box head on the bottleneck: (x, y, w, h) in [0, 1], trained with Smooth L1 (L_bbox).
Pooling the bottleneck would forget where the object is, so the box head also sees two coordinate
channels (CoordConv) before it pools.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from semguide_core.runtime import Checkpoint
from semguide_core.semantics.model_files import load_model
from semguide_core.semantics.training import (Schedule, fit, hflip, hflip_boxes, jitter_colours, random_flips,
                                              random_zoom, zoom_boxes, zoom_images)


def _block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


def coordinate_channels(x: torch.Tensor) -> torch.Tensor:
    """Two channels holding each pixel's x and y in [-1, 1]: [N, 2, H, W]."""
    n, _, h, w = x.shape
    ys = torch.linspace(-1, 1, h, device=x.device).view(1, 1, h, 1).expand(n, 1, h, w)
    xs = torch.linspace(-1, 1, w, device=x.device).view(1, 1, 1, w).expand(n, 1, h, w)
    return torch.cat([xs, ys], 1)


class Psi(nn.Module):
    """forward(images [N, 3, H, W] in [0, 1]) -> (foreground logits [N, 2, H, W], boxes [N, 4] in [0, 1])."""

    def __init__(self, widths: list[int]):
        super().__init__()
        self.widths = list(widths)
        self.encoder = nn.ModuleList(  # every level halves the side: the finest features are at H/2
            _block(c_in, c_out, 2) for c_in, c_out in zip([3] + self.widths[:-1], self.widths))
        self.decoder = nn.ModuleList(
            _block(c_deep + c_skip, c_skip, 1)
            for c_deep, c_skip in zip(self.widths[:0:-1], self.widths[-2::-1]))
        self.mask_head = nn.Conv2d(self.widths[0], 2, 1)
        deepest = self.widths[-1]
        self.bbox_head = nn.Sequential(
            nn.Conv2d(deepest + 2, deepest, 3, 1, 1), nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(deepest, 4), nn.Sigmoid())

    def forward(self, images: torch.Tensor):
        x = images - 0.5
        skips = []
        for block in self.encoder:
            x = block(x)
            skips.append(x)
        boxes = self.bbox_head(torch.cat([x, coordinate_channels(x)], 1))
        for block, skip in zip(self.decoder, skips[-2::-1]):
            x = F.interpolate(x, size=skip.shape[2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], 1))
        logits = F.interpolate(self.mask_head(x), size=images.shape[2:], mode="bilinear", align_corners=False)
        return logits, boxes


def psi_loss(logits: torch.Tensor, boxes: torch.Tensor, true_masks: torch.Tensor, true_boxes: torch.Tensor,
             bbox_weight: float, beta: float):
    """L = L_fg + bbox_weight * L_bbox: cross-entropy per pixel, Smooth L1 on (x, y, w, h).

    true_masks [N, 1, H, W] in {0, 1}; returns (loss, L_fg, L_bbox).
    """
    l_fg = F.cross_entropy(logits, true_masks[:, 0].round().long())
    l_bbox = F.smooth_l1_loss(boxes, true_boxes, beta=beta)
    return l_fg + bbox_weight * l_bbox, l_fg, l_bbox


class PsiPredictor(nn.Module):
    """Psi at inference: images [N, 3, H, W] -> (S_I = foreground probability [N, 1, H, W],
    box [N, 4] clipped to the image: x + w <= 1, y + h <= 1)."""

    def __init__(self, psi: Psi):
        super().__init__()
        self.psi = psi

    def forward(self, images: torch.Tensor):
        logits, boxes = self.psi(images)
        x, y, w, h = boxes.unbind(1)
        clipped = torch.stack([x, y, torch.minimum(w, 1 - x), torch.minimum(h, 1 - y)], 1)
        return logits.softmax(1)[:, 1:], clipped


def load_psi(path: str | Path, device="cpu") -> PsiPredictor:
    """models/psi.pt as a frozen PsiPredictor on `device` (ModelFileError naming a bad file)."""
    return PsiPredictor(load_model(path, Psi, "Psi model", device)).eval()


def train_psi(psi: Psi, images: torch.Tensor, masks: torch.Tensor, boxes: torch.Tensor, p,
              checkpoint: Checkpoint, live_dir: str | Path, device) -> Psi:
    """Fit Psi (p: the `psi` params) to images [N, 3, H, W], masks [N, 1, H, W], boxes [N, 4]; the curves
    logged through DVCLive into live_dir.

    Every sample is augmented: a left-right flip, a zoom and shift (`p.zoom`, `p.shift`) and a colour
    jitter (`p.colour_jitter`). Measured on sample-birds (240 training images, 1 thread, seed 0): with flips
    alone Psi fitted its training masks (IoU 0.90) and reached 0.60 on the test split; with the zoom and
    the jitter 0.67 at 1,500 steps and 0.74 at 3,000, box IoU 0.59 -> 0.74.
    """
    def sample(generator):
        i = torch.randint(len(images), (p.batch_size,), generator=generator)
        flips = random_flips(generator, p.batch_size)
        x, m, b = hflip(images[i], flips), hflip(masks[i], flips), hflip_boxes(boxes[i], flips)
        scale, offset = random_zoom(generator, p.batch_size, p.zoom, p.shift)
        x = jitter_colours(generator, zoom_images(x, scale, offset), p.colour_jitter)
        return x, (zoom_images(m, scale, offset, "zeros") > 0.5).float(), zoom_boxes(b, scale, offset)

    def loss_fn(model, batch):
        x, y, b = (t.to(device) for t in batch)
        logits, predicted = model(x)
        loss, l_fg, l_bbox = psi_loss(logits, predicted, y, b, p.bbox_weight, p.smooth_l1_beta)
        return loss, {"loss": loss.item(), "loss_fg": l_fg.item(), "loss_bbox": l_bbox.item()}

    schedule = Schedule(p.steps, p.lr, p.checkpoint_every, p.seed)
    return fit(psi.to(device), loss_fn, sample, schedule, checkpoint, live_dir, "train_psi")
