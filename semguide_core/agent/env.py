"""The painting environment: what the agent observes and how a bundle of strokes changes the canvas.

State (Sec. 3): canvas C_t, target I, the residual I - C_t, step t / T and two coordinate channels (as
published, plus the residual that the actor's placement reads anyway); the semantic
agent also sees S_I, G_I and the two channels of the alignment grid of its bbox (published layout).
Transition: the bundle's strokes are composited in order onto the canvas by `strokes.composite`. For the
bi-level (semantic) agent the first `n_background` strokes are background strokes, in the layer 1 - S_I
(Eq. 3), the rest foreground strokes in the layer S_I (Eq. 4): background first, as in the paper; how a
stroke composites with its layer (`agent.compositing`: paper or layered) is `strokes.composite`. The
baseline composites every stroke unmasked (Huang et al.).
"""
from __future__ import annotations

from typing import Callable

import torch

from semguide_core import align, strokes
from semguide_core.agent.placement import place
from semguide_core.agent.rewards import Context
from semguide_core.distributed import unwrap

DensityFn = Callable[[torch.Tensor], torch.Tensor]  # strokes [N, 13] -> density [N, H, W]

BASE_CHANNELS = 12     # canvas 3, target 3, residual I - C_t 3, t / T 1, coordinates 2
SEMANTIC_CHANNELS = 4  # mask 1, GBP map 1, alignment grid 2


def neural_density(renderer) -> DensityFn:
    """The neural renderer Phi as a density function (differentiable; what training backpropagates through)."""
    return lambda a: renderer(a[:, :strokes.SHAPE_SIZE])


def straight_through_density(renderer, canvas: int) -> DensityFn:
    """The real rasteriser's density with the neural renderer's gradient: Phi_r[a] + Phi[a] - sg(Phi[a]),
    sg = stop-gradient (a straight-through estimator); without autograd, the rasteriser alone.

    Why: the renderer paints small strokes fatter than they are (measured on a trained semantic agent's
    strokes: those covering about 2 pixels came out with 2.2 times their mass), and an actor trained on its
    canvases learnt thin foreground strokes that looked right to it and covered too little on the real
    canvas. With the rasteriser's values, rewards and replay hold the canvases that `paint` makes; the
    gradient still flows through Phi (model-based DDPG, Eq. 17).
    """
    def density(a: torch.Tensor) -> torch.Tensor:
        if not torch.is_grad_enabled():
            return strokes.rasterise(a, canvas)
        phi = renderer(a[:, :strokes.SHAPE_SIZE])
        return phi + (strokes.rasterise(a.detach(), canvas) - phi).detach()
    return density


def training_density(renderer, training_canvas: str, canvas: int) -> DensityFn:
    """What paints the canvases in training (`agent.training_canvas`): 'rasteriser' or 'renderer'."""
    return straight_through_density(renderer, canvas) if training_canvas == "rasteriser" else neural_density(renderer)


def paint_bundle(canvas: torch.Tensor, bundle: torch.Tensor, density_fn: DensityFn, n_background: int,
                 masks: torch.Tensor | None, layered: bool = False) -> torch.Tensor:
    """C_t+1 from C_t [B,3,H,W] and a bundle [B,K,13]: Eq. 3 for strokes k < n_background, then Eq. 4.

    masks: S_I [B,1,H,W] for the bi-level agent, None for the baseline (every stroke unmasked);
    layered: `agent.compositing == 'layered'` (`strokes.composite`).
    """
    return strokes.paint(canvas, bundle, bundle_masks(masks, n_background, bundle.shape[1]), density_fn, layered)


def densities(bundle: torch.Tensor, density_fn: DensityFn, size) -> torch.Tensor:
    """Phi[a] of every stroke of a bundle [B, K, 13]: [B, K, H, W] for size (H, W)."""
    b, k, _ = bundle.shape
    return density_fn(bundle.reshape(b * k, -1)).view(b, k, *size)


def composite_bundle(canvas: torch.Tensor, density: torch.Tensor, rgb: torch.Tensor, n_background: int,
                     masks: torch.Tensor | None, layered: bool = False) -> torch.Tensor:
    """Eq. 3 for strokes k < n_background, then Eq. 4, from densities [B, K, H, W] and colours [B, K, 3]."""
    return strokes.composite_all(canvas, density, rgb, bundle_masks(masks, n_background, density.shape[1]), layered)


def bundle_masks(masks: torch.Tensor | None, n_background: int, bundle: int) -> torch.Tensor | None:
    """Each stroke's layer mask [B, K, H, W] from S_I [B, 1, H, W]: 1 - S_I for the first n_background
    strokes (Eq. 3), S_I for the rest (Eq. 4); None (unmasked) for the baseline."""
    if masks is None:
        return None
    return torch.cat([1 - masks] * n_background + [masks] * (bundle - n_background), 1)


def stroke_mask(soft_mask: torch.Tensor) -> torch.Tensor:
    """The S_I that Eq. 3-4 composite with: Psi's soft mask thresholded at 0.5 (as `paint` does).

    Eq. 3-4 as printed erase with the full density but colour with S or 1 - S, so where S is neither 0 nor 1
    a pixel can never get brighter than max(S, 1 - S) times the stroke colour: a blurry soft mask paints dark
    halos around the object (measured: the semantic agent's canvases darkened around every bird). With a
    0/1 map, as a sharp segmentation gives, the equations hold as written.
    """
    return (soft_mask > 0.5).to(soft_mask.dtype)


def coordinates(b: int, size: int, device) -> torch.Tensor:
    """Two channels holding each pixel's x and y in [0,1], [b, 2, size, size]."""
    r = torch.linspace(0, 1, size, device=device)
    y, x = torch.meshgrid(r, r, indexing="ij")
    return torch.stack([x, y])[None].expand(b, -1, -1, -1)


def observe(canvas: torch.Tensor, ctx: Context, t, episode_steps: int, semantic_inputs: bool) -> torch.Tensor:
    """The network input for state (C_t, I, S_I, G_I, t): [B, 9 or 13, H, W]. t: int or [B] tensor."""
    b, _, h, w = canvas.shape
    t = torch.as_tensor(t, dtype=canvas.dtype, device=canvas.device).reshape(-1, 1, 1, 1).expand(b, 1, h, w)
    parts = [canvas, ctx.targets, ctx.targets - canvas, t / episode_steps, coordinates(b, h, canvas.device)]
    if semantic_inputs:
        grid = align.crop_grid(ctx.bboxes, (h, w)).permute(0, 3, 1, 2)
        parts += [ctx.masks, ctx.gbp, grid]
    return torch.cat(parts, 1)


def actor_bundle(actor, canvas: torch.Tensor, ctx: Context, t, episode_steps: int,
                 semantic_inputs: bool, t_object=None) -> tuple[torch.Tensor, torch.Tensor]:
    """The actor's bundle [B, K, 13] for state (C_t, I, S_I, G_I, t) and the cells [B, K, 4] it was placed in.

    actor: an Actor, or one inside DDP (training with several processes). t_object: bundles already painted
    on the object (`placement.place`; default t).
    """
    placement = unwrap(actor).placement
    masks = stroke_mask(ctx.masks) if placement.bilevel else None
    cells = place(placement, canvas, ctx.targets, masks, ctx.bboxes, t, t_object)
    return actor(observe(canvas, ctx, t, episode_steps, semantic_inputs), cells), cells


def in_channels(semantic_inputs: bool) -> int:
    return BASE_CHANNELS + (SEMANTIC_CHANNELS if semantic_inputs else 0)


def view_channels(semantic_inputs: bool) -> list[int]:
    """The observation channels each stroke's head sees at its own cell (`networks.cell_views`): the canvas,
    the target, and S_I for the semantic inputs."""
    return [0, 1, 2, 3, 4, 5] + ([BASE_CHANNELS] if semantic_inputs else [])
