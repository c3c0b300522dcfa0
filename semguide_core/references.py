"""Reference canvases to read every agent result against (`semguide references`).

Each reference is a canvas made from the test image itself, without an agent: how far a flat colour, a
flat-colour mosaic or strokes optimised for that one image get. An agent's test MSE means little alone;
next to these it says whether the agent paints more than one colour per image (the mean colour), more than
a coarse mosaic, and how much of what 200 strokes allow (the per-image optimum) it reaches.

Scores are computed as the agents are scored: MSE over all pixels and channels, averaged over images;
the foreground MSE over the ground-truth object's pixels only, averaged over the images that have one.
PSNR is 10 log10(1 / MSE) of that mean MSE (peak 1).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from semguide_core.agent.env import neural_density
from semguide_core.data.prepared import load_prepared
from semguide_core.metrics import db, image_means, mse
from semguide_core.strokes import STROKE_SIZE, paint

# The optimum's strokes start in the cells of an OPTIMUM_GRID x OPTIMUM_GRID grid with the largest residual
OPTIMUM_GRID = 8


def test_images(prepared_dir: str | Path = "artifacts/prepared") -> tuple[torch.Tensor, torch.Tensor]:
    """The prepared test split: images [B,3,H,W] float in [0,1] and ground-truth masks [B,1,H,W]."""
    data = load_prepared(prepared_dir)
    batch = data.tensors(data.split("test"))
    return batch.images, batch.masks


def mean_colour(targets: torch.Tensor) -> torch.Tensor:
    """Each image filled with its own mean colour: the best canvas of one flat colour."""
    return targets.mean(dim=(2, 3), keepdim=True).expand_as(targets)


def mosaic(targets: torch.Tensor, g: int) -> torch.Tensor:
    """A g x g mosaic: each cell of the image filled with its mean colour (the canvas side divisible by g)."""
    side = targets.shape[-1]
    if side % g:
        raise ValueError(f"a {g} x {g} mosaic needs a canvas side divisible by {g}, got {side}")
    return F.interpolate(F.avg_pool2d(targets, side // g), scale_factor=side // g, mode="nearest")


def object_mean_colour(targets: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """The canvas filled with the mean colour of the object (ground-truth mask): the foreground reference.

    Only its foreground MSE means something; an image without a mask gets black."""
    area = masks.sum(dim=(2, 3), keepdim=True).clamp(min=1)
    return ((targets * masks).sum(dim=(2, 3), keepdim=True) / area).expand_as(targets)


def optimum(targets: torch.Tensor, renderer, strokes: int = 200, stage: int = 5, steps: int = 50,
            lr: float = 0.1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """`strokes` strokes optimised for each image on its own: what the strokes allow, with no actor.

    Returns the strokes [B, strokes, 13] and the canvas [B,3,H,W] they paint with the real rasteriser on a
    black canvas, composited in order as the agents paint (C <- C (1 - d) + d rgb).

    Greedy stages, because all strokes optimised jointly from a random start tend to end poor: each stage
    adds `stage` (<= 64) strokes on top of the canvas so far and runs `steps` Adam steps (rate `lr`) on their
    logits (sigmoid -> 13 numbers) through the neural `renderer`, the earlier strokes fixed. A stage's
    strokes start in the cells of an 8 x 8 grid with the largest residual (squared error, one stroke per
    cell): ends at random within the cell, thickness 0.2 (about a cell wide), opacity 0.9, the cell's mean
    colour. Each stage's strokes then go onto the canvas through the real rasteriser, the one the results
    are scored with, so a later stage corrects where the renderer and the rasteriser disagree. Images are
    one batch.
    """
    gen = torch.Generator().manual_seed(seed)
    canvas = torch.zeros_like(targets)
    chosen = []
    for done in range(0, strokes, stage):
        k = min(stage, strokes - done)
        logits = torch.logit(_start(targets, canvas, k, gen).to(targets.device), eps=1e-3).requires_grad_(True)
        opt = torch.optim.Adam([logits], lr=lr)
        for _ in range(steps):
            # summed over images, so each image's strokes get the same step whatever the batch size
            painted = paint(canvas, torch.sigmoid(logits), density_fn=neural_density(renderer))
            loss = ((painted - targets) ** 2).mean(dim=(1, 2, 3)).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        bundle = torch.sigmoid(logits.detach())
        canvas = paint(canvas, bundle)
        chosen.append(bundle)
    return torch.cat(chosen, dim=1), canvas


def _start(targets: torch.Tensor, canvas: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """Starting strokes [B,k,13] in the k grid cells with the largest residual (see `optimum`)."""
    b = len(targets)
    residual = F.adaptive_avg_pool2d(((targets - canvas) ** 2).mean(1), OPTIMUM_GRID).flatten(1)
    cells = residual.topk(k, dim=1).indices.cpu()  # [B,k], row-major cell index
    corner = torch.stack([cells % OPTIMUM_GRID, cells // OPTIMUM_GRID], dim=-1).float() / OPTIMUM_GRID  # (x, y)
    ends = corner[:, :, None] + torch.rand(b, k, 2, 2, generator=gen) / OPTIMUM_GRID  # [B,k,end,(x,y)]
    colours = F.adaptive_avg_pool2d(targets, OPTIMUM_GRID).flatten(2).transpose(1, 2).cpu()  # [B,cells,3]
    start = torch.empty(b, k, STROKE_SIZE)
    start[..., 0:2], start[..., 4:6] = ends[:, :, 0], ends[:, :, 1]
    start[..., 2:4] = 0.5                          # the middle control point halfway: a straight stroke
    start[..., 6:8] = 0.2
    start[..., 8:10] = 0.9
    start[..., 10:13] = colours.gather(1, cells[..., None].expand(-1, -1, 3))
    return start


def reference_table(targets: torch.Tensor, masks: torch.Tensor, renderer=None, strokes: int = 200,
                    stage: int = 5, steps: int = 50, lr: float = 0.1, max_images: int = 0) -> dict:
    """Every reference on the first `max_images` test images (0 = all), as {key: row}.

    A row is {"reference": what it is, "mse", "psnr_db", "images"}; the foreground row's MSE is the
    foreground MSE. Mosaics 2, 4 and 8 where they divide the canvas. The optimum only with a `renderer`
    (it costs `strokes` / `stage` * `steps` renderer passes over the images).
    """
    if max_images:
        targets, masks = targets[:max_images], masks[:max_images]
    canvases = {"mean_colour": ("each image's mean colour", mean_colour(targets))}
    for g in [g for g in (2, 4, 8) if targets.shape[-1] % g == 0]:
        canvases[f"mosaic_{g}"] = (f"flat-colour mosaic {g} x {g}", mosaic(targets, g))
    if renderer is not None:
        canvases[f"optimum_{strokes}"] = (f"{strokes} strokes optimised per image, real rasteriser",
                                          optimum(targets, renderer, strokes, stage, steps, lr)[1])
    rows = {key: (label, mse(targets, canvas).mean().item()) for key, (label, canvas) in canvases.items()}
    rows["object_mean_colour"] = ("object filled with its mean colour (foreground MSE)",
                                  image_means(targets, object_mean_colour(targets, masks), masks)["fg_l2"])
    return {key: {"reference": label, "mse": value, "psnr_db": db(value), "images": len(targets)}
            for key, (label, value) in rows.items()}


def as_frame(table: dict) -> pd.DataFrame:
    """The table's rows as reference | MSE | PSNR dB (`tables.markdown` prints it)."""
    return pd.DataFrame([[row["reference"], row["mse"], row["psnr_db"]] for row in table.values()],
                        columns=["reference", "MSE", "PSNR dB"])
