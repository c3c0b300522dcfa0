"""Where each stroke of a bundle goes: the cells of a coarse-to-fine grid where the canvas is most wrong.

Why: an actor that regresses all K strokes from one globally pooled vector first learns a stroke layout
shared by every image (the per-image gradients of positions agree at initialisation), and that shared
layout is a stationary point where the later bundles are near no-ops (docs/agent.md). Here the actor
still predicts every number of every stroke, but each stroke is tied to one cell of a grid and is read
from the actor's features at that cell, so its position is image-specific from the first update.

The rule, per step t (`Placement`):
- the grid side g_t follows `grids` / `grid_steps`: coarse cells for the first bundles (the painting's
  structure), finer ones later (its detail);
- each cell's error is scored (`top_cells`: by default the squared norm of the cell's mean residual
  colour, what a flat stroke can remove) and the K cells with the largest error each get one stroke
  (a cell is repeated only when the grid has fewer than K cells);
- bi-level agents (Eq. 3-4): the background strokes rank the image's cells by the energy outside S_I,
  the foreground strokes rank cells of the same grid laid over the object's bbox by the energy inside S_I,
  so foreground strokes go where S_I says and zoom with the object as the alignment model does.

A cell is (cx, cy, sx, sy): centre and size in normalised image coordinates.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

FULL_IMAGE = (0.0, 0.0, 1.0, 1.0)


@dataclass(frozen=True)
class Placement:
    bundle: int              # K strokes per step
    n_background: int        # strokes k < n_background are background strokes (all K for the baseline)
    grids: tuple             # grid side of each phase, coarse to fine
    grid_steps: tuple        # the step at which each next phase starts (len(grids) - 1 of them)
    rank_by: str = "mean_residual"  # or "residual_energy" (see `top_cells`)

    @property
    def bilevel(self) -> bool:
        return self.n_background < self.bundle

    def grid_at(self, t: torch.Tensor) -> torch.Tensor:
        """Grid side for each step in t [B] (int tensor)."""
        phase = torch.bucketize(t.long().contiguous(), torch.tensor(self.grid_steps, dtype=torch.long), right=True)
        return torch.tensor(self.grids, dtype=torch.long)[phase]


def grid_cells(boxes: torch.Tensor, g: int) -> torch.Tensor:
    """The g x g cells of each box (x, y, w, h) [B, 4], row-major, as (cx, cy, sx, sy) [B, g*g, 4]."""
    i = (torch.arange(g, dtype=boxes.dtype, device=boxes.device) + 0.5) / g
    cy, cx = torch.meshgrid(i, i, indexing="ij")
    x, y, w, h = (boxes[:, k, None] for k in range(4))
    centres_x, centres_y = x + w * cx.flatten(), y + h * cy.flatten()
    return torch.stack([centres_x, centres_y, (w / g).expand_as(centres_x), (h / g).expand_as(centres_y)], -1)


def roi_mean(maps: torch.Tensor, cells: torch.Tensor, samples: int = 2) -> torch.Tensor:
    """Mean of maps [B, C, H, W] over each cell [B, N, 4], by bilinear samples x samples: [B, N, C]."""
    b, n, _ = cells.shape
    offsets = (torch.arange(samples, dtype=maps.dtype, device=maps.device) + 0.5) / samples - 0.5
    oy, ox = torch.meshgrid(offsets, offsets, indexing="ij")
    px = cells[..., 0, None] + cells[..., 2, None] * ox.flatten()   # [B, N, S*S]
    py = cells[..., 1, None] + cells[..., 3, None] * oy.flatten()
    grid = torch.stack([px, py], -1) * 2 - 1                        # grid_sample's [-1, 1] coordinates
    sampled = F.grid_sample(maps, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return sampled.mean(-1).transpose(1, 2)                         # [B, C, N, S*S] -> [B, N, C]


def top_cells(maps: torch.Tensor, boxes: torch.Tensor, g: int, k: int, rank_by: str) -> torch.Tensor:
    """The k cells of the g x g grid over each box with the largest error, [B, k, 4], largest first.

    maps: the residual I - C_t [B, 3, H, W] (rank_by 'mean_residual': a cell's error is the squared norm of
    its mean residual colour, what one flat stroke of the right colour removes) or its squared norm summed
    over colours [B, 1, H, W] ('residual_energy': all the cell's error, also texture no stroke can fix).
    """
    cells = grid_cells(boxes, g)
    means = roi_mean(maps, cells, samples=4)
    error = (means ** 2).sum(-1) if rank_by == "mean_residual" else means[..., 0]
    order = error.topk(min(k, g * g), dim=1).indices
    order = order[:, torch.arange(k, device=order.device) % order.shape[1]]  # repeat when g*g < k
    return torch.gather(cells, 1, order[..., None].expand(-1, -1, 4))


def place(rule: Placement, canvas: torch.Tensor, targets: torch.Tensor, masks: torch.Tensor | None,
          bboxes: torch.Tensor, t: torch.Tensor, t_object: torch.Tensor | None = None) -> torch.Tensor:
    """The cells [B, K, 4] of the next bundle's strokes (background strokes first), from C_t, I, S_I, bbox, t.

    masks: the 0/1 S_I that bi-level painting composites with; ignored for the baseline.
    t_object: the bundles already painted on this object, whose grid the foreground strokes follow (default
    t: a training episode paints one object from its first step). When painting several instances (Eq. 16)
    an instance first chosen late still starts coarse: on the finest grid of a small instance's box, its
    first strokes were under a pixel wide and left it black.
    """
    b = len(canvas)
    t = torch.as_tensor(t, device=canvas.device).reshape(-1).expand(b)
    t_object = t if t_object is None else torch.as_tensor(t_object, device=canvas.device).reshape(-1).expand(b)
    residual = targets - canvas
    maps = residual if rule.rank_by == "mean_residual" else (residual ** 2).sum(1, keepdim=True)
    # pooled to the finest grid, so that a few bilinear samples per cell average the whole cell
    pooled = lambda m: F.adaptive_avg_pool2d(m, max(rule.grids))  # noqa: E731
    full = torch.tensor(FULL_IMAGE, dtype=canvas.dtype, device=canvas.device).expand(b, 4)
    sides = rule.grid_at(t.cpu())
    cells = canvas.new_zeros(b, rule.bundle, 4)
    k_bg = rule.n_background
    for g in sides.unique().tolist():
        sel = (sides == g).to(canvas.device)
        if not rule.bilevel:
            cells[sel] = top_cells(pooled(maps[sel]), full[sel], g, rule.bundle, rule.rank_by)
        elif k_bg:
            cells[sel, :k_bg] = top_cells(pooled(maps[sel] * (1 - masks[sel])), full[sel], g, k_bg, rule.rank_by)
    if rule.bilevel:
        object_sides = rule.grid_at(t_object.cpu())
        for g in object_sides.unique().tolist():
            sel = (object_sides == g).to(canvas.device)
            # not pooled: cells over the bbox are smaller than the image's, down to a pixel or two
            cells[sel, k_bg:] = top_cells(maps[sel] * masks[sel], bboxes[sel], g, rule.bundle - k_bg, rule.rank_by)
    return cells
