"""Bounding boxes and masks: conversions, overlap scores, and pasting a crop back into its box.

Boxes are normalised (x, y, w, h): top-left corner and size as fractions of the image width / height
(docs/architecture.md). A box covers whole pixels: pixel column j lies inside when x*W <= j < (x+w)*W.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from semguide_core.data.record import mask_box

WHOLE_IMAGE = (0.0, 0.0, 1.0, 1.0)


def mask_to_bbox(masks: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """The tightest box around the pixels above `threshold`: masks [N, H, W] -> boxes [N, 4] (data.record's rule).

    An empty mask gives the whole image (0, 0, 1, 1): the crop of a frame with no detected object is
    the frame itself, which keeps every later step defined.
    """
    boxes = [mask_box((m > threshold).cpu().numpy()) for m in masks]
    return torch.tensor([box if box[2] > 0 else WHOLE_IMAGE for box in boxes], dtype=torch.float32).reshape(-1, 4)


def bbox_to_mask(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Boxes [N, 4] -> filled masks [N, H, W] in {0, 1}; pixel edges are rounded to the nearest pixel."""
    x0 = (boxes[:, 0] * width).round()
    y0 = (boxes[:, 1] * height).round()
    x1 = ((boxes[:, 0] + boxes[:, 2]) * width).round()
    y1 = ((boxes[:, 1] + boxes[:, 3]) * height).round()
    xs = torch.arange(width, dtype=boxes.dtype, device=boxes.device)
    ys = torch.arange(height, dtype=boxes.dtype, device=boxes.device)
    inside_x = (xs >= x0[:, None]) & (xs < x1[:, None])  # [N, W]
    inside_y = (ys >= y0[:, None]) & (ys < y1[:, None])  # [N, H]
    return (inside_y[:, :, None] & inside_x[:, None, :]).float()


def bbox_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Intersection over union of paired boxes [N, 4] -> [N] (continuous, not rounded to pixels)."""
    ax1, ay1 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx1, by1 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = (torch.minimum(ax1, bx1) - torch.maximum(a[:, 0], b[:, 0])).clamp(min=0)
    ih = (torch.minimum(ay1, by1) - torch.maximum(a[:, 1], b[:, 1])).clamp(min=0)
    inter = iw * ih
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    return inter / union.clamp(min=1e-12)


def mask_iou(predicted: torch.Tensor, truth: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """IoU of binarised masks [N, H, W] -> [N]; two empty masks agree perfectly (IoU 1)."""
    p, t = predicted > threshold, truth > 0.5
    inter = (p & t).flatten(1).sum(1).float()
    union = (p | t).flatten(1).sum(1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def paste_boxes(crops: torch.Tensor, boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The inverse of `align.crop` (Omega): each crop [N, C, h, w] resampled into its box on a zero image
    [N, C, height, width] (the inverse of the affine map of Eq. 21)."""
    x, y, w, h = boxes.unbind(1)
    w, h = w.clamp(min=1e-6), h.clamp(min=1e-6)
    zero = torch.zeros_like(x)
    theta = torch.stack([torch.stack([1 / w, zero, -(2 * x + w - 1) / w], 1),
                         torch.stack([zero, 1 / h, -(2 * y + h - 1) / h], 1)], 1)
    grid = F.affine_grid(theta, [len(crops), crops.shape[1], height, width], align_corners=False)
    return F.grid_sample(crops, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def box_outline(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The one-pixel border of each box as a mask [N, H, W] (for drawing boxes in figures)."""
    filled = bbox_to_mask(boxes, height, width)[:, None]
    interior = -F.max_pool2d(-filled, 3, stride=1, padding=1)  # erosion; the image edge counts as outside
    interior = F.pad(interior[:, :, 1:-1, 1:-1], (1, 1, 1, 1))
    return (filled - interior)[:, 0]
