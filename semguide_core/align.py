"""Neural alignment Omega (Sec. 4.2): zoom into the foreground bounding box, differentiably.

A bbox is normalised (x, y, w, h) in [0,1], (x, y) its top-left corner. Eq. 11 is the ideal mapping from
input pixel coordinates to output (zoomed) pixel coordinates, x_out = W / w_b * (x_in - x_b), with x_b, w_b
in pixels. PyTorch's `affine_grid` wants its inverse in normalised coordinates [-1, 1] (Eq. 21 of the
supplement, `bbox_to_theta`): an output location u maps to the input location w * u + (2x + w - 1). The
test checks the two against each other.

`crop` (Omega in Eq. 8-10 and 13) samples canvas, target, mask or guided-backprop map with `grid_sample`,
so gradients flow from the foreground reward back into the canvas and the strokes.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def bbox_to_theta(bbox: torch.Tensor) -> torch.Tensor:
    """Eq. 21: [N, 2, 3] `affine_grid` matrices that zoom the normalised bbox (x, y, w, h) to the full output."""
    x, y, w, h = (bbox[:, i] for i in range(4))
    zero = torch.zeros_like(x)
    return torch.stack([torch.stack([w, zero, 2 * x + w - 1], 1),
                        torch.stack([zero, h, 2 * y + h - 1], 1)], 1)


def crop_grid(bbox: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The sampling grid [N, h, w, 2] of the zoom (also given to the actor as two input channels)."""
    return F.affine_grid(bbox_to_theta(bbox), [len(bbox), 1, *size], align_corners=False)


def crop(images: torch.Tensor, bbox: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Omega(images, bbox): the bbox region of images [N, C, H, W] resampled to `size` (default: H, W).

    As in the published code the crop is canvas-sized and the aspect ratio is not kept. With
    align_corners=False, an integer pixel bbox cropped to its own pixel size reproduces plain slicing.
    """
    size = tuple(size or images.shape[-2:])
    return F.grid_sample(images, crop_grid(bbox.to(images.dtype), size), mode="bilinear",
                         padding_mode="zeros", align_corners=False)
