"""Image scores shared by training, painting, the reference canvases and evaluation.

Images are [N, 3, H, W] in [0, 1]; masks [N, 1, H, W] in {0, 1}. Per-image scores are tensors [N];
`image_means` averages them the way every result in this project is reported: MSE over all pixels and
channels per image, foreground MSE over the true object's pixels per image, each averaged over images
(the foreground over the images that have an object). PSNR has peak 1.
"""
from __future__ import annotations

import math

import torch


def mse(target: torch.Tensor, canvas: torch.Tensor) -> torch.Tensor:
    """Mean squared error per image over its pixels and channels, [N]."""
    return ((target - canvas) ** 2).flatten(1).mean(1)


def foreground_mse(target: torch.Tensor, canvas: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """MSE per image over its foreground pixels (and the 3 channels), [N]; nan for an image without one.

    A mask in [0, 1] weighs each pixel's squared error (a weighted mean: the GBP-weighted error)."""
    squared = (mask * ((target - canvas) ** 2).mean(1, keepdim=True)).flatten(1).sum(1)
    area = mask.flatten(1).sum(1)
    return torch.where(area > 0, squared / area.clamp(min=1), torch.full_like(area, float("nan")))


def psnr(target: torch.Tensor, canvas: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image, [N] (inf when equal)."""
    return 10 * torch.log10(1 / mse(target, canvas))


def db(mse_value: float) -> float:
    """The PSNR in dB of a mean MSE; an exact canvas is capped at 100 dB instead of infinity."""
    return 10 * math.log10(1 / max(mse_value, 1e-10))


def image_means(target: torch.Tensor, canvas: torch.Tensor, mask: torch.Tensor, **maps: torch.Tensor) -> dict[str, float]:
    """{'l2': mean MSE, 'fg_l2': mean foreground MSE over the images with an object (nan if none)}, and
    '<name>_l2' for each further map [N, 1, H, W] given (e.g. part=..., gbp=...): `foreground_mse` with that
    map, averaged over the images where it is not all zero."""
    scores = {"l2": mse(target, canvas).mean().item()}
    for name, weights in {"fg": mask, **maps}.items():
        per_image = foreground_mse(target, canvas, weights)
        has = ~per_image.isnan()
        scores[f"{name}_l2"] = per_image[has].mean().item() if has.any() else float("nan")
    return scores
