"""Rewards (Sec. 4.1-4.3): each is the decrease of a distance between target and canvas over one step.

    r_b     = L(I, C_t) - L(I, C_t+1)                                   Eq. 5
    r_f     = L(Z^I * Z^S, Z^C_t * Z^S) - L(Z^I * Z^S, Z^C_t+1 * Z^S)     Eq. 12 (aligned crops, Omega)
    r_focus = L^G_t - L^G_t+1                                           Eq. 14-15 (G_I within S_I)
    r       = r_b + eta * r_f + nu * r_focus                            Eq. 19 (Eq. 20: eta = 0, nu = kappa)

L is either the WGAN distance of a target-conditioned discriminator D (L = -D(target, image), as in the
published code: the reward is how much more target-like the canvas became) or the mean squared error.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from semguide_core import align


@dataclass(frozen=True)
class Context:
    """What an episode paints towards, for a batch of episodes (all [B, C, H, W] float, bboxes [B, 4])."""
    targets: torch.Tensor  # I
    masks: torch.Tensor    # S_I (of the episode's instance), [B, 1, H, W]
    gbp: torch.Tensor      # G_I, [B, 1, H, W]
    bboxes: torch.Tensor   # normalised (x, y, w, h) of the instance

    def crops(self) -> "Context":
        """Z^I, Z^S, Z^G: the aligned (zoomed) target, mask and GBP map (Eq. 9, 10, 13)."""
        zoomed = align.crop(torch.cat([self.targets, self.masks, self.gbp], 1), self.bboxes)
        return Context(zoomed[:, :3], zoomed[:, 3:4], zoomed[:, 4:5], self.bboxes)


def l2_distance(targets: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Mean squared error per image, [B]."""
    return ((targets - images) ** 2).mean(dim=(1, 2, 3))


def focus_distance(zoomed_targets: torch.Tensor, zoomed_canvas: torch.Tensor, zoomed_gbp: torch.Tensor,
                   eps: float = 1e-6) -> torch.Tensor:
    """Eq. 14, the GBP distance L^G, [B]: ||Z^G (Z^I - Z^C)||_F^2 / ||Z^G||_F^2 (per colour channel).

    The paper prints the denominator unsquared but states the intent: normalise by the number of non-zero
    pixels of the GBP map so that L^G does not depend on the map's extent. ||G||_F^2 is that count for a
    0/1 map (and the published code divides by the sum of G); the unsquared norm would not be invariant.
    """
    num = ((zoomed_gbp * (zoomed_targets - zoomed_canvas)) ** 2).sum(dim=(1, 2, 3))
    den = (zoomed_gbp ** 2).sum(dim=(1, 2, 3)) * zoomed_targets.shape[1]
    return num / (den + eps)


@dataclass(frozen=True)
class RewardWeights:
    """The weights of Eq. 19; the baseline has neither, the focus ablation (Eq. 20) has eta = 0, nu = kappa."""
    eta: float = 0.0  # foreground reward r_f; 0 = none
    nu: float = 0.0   # focus reward r_focus; 0 = none


def total_reward(terms: dict, w: RewardWeights) -> torch.Tensor:
    """Eq. 19: r = r_b + eta * r_f + nu * r_focus, from the terms {'background', 'foreground', 'focus'}.

    Eq. 20 (the focus ablation) is the same sum with eta = 0 and nu = kappa. A term whose weight is 0 is
    not computed, and is absent from `terms`.
    """
    return terms["background"] + w.eta * terms.get("foreground", 0.0) + w.nu * terms.get("focus", 0.0)


class Rewards:
    """The distances of one agent and its reward (Eq. 5, 12, 14-15, 19). `distance`: 'wgan' or 'l2'.

    For 'wgan', `critics` = (D for the full image, D for the aligned foreground crops) score the distance;
    they are trained by `ddpg.DDPG` (WGAN-GP), here they are only read.

    scale (L2 only) says in what units eta and nu weigh their terms:
    - 'crop', as printed: L_f is a mean over the aligned crop (Eq. 12) and L^G a mean over the GBP map's
      mass (Eq. 14). A bird covering a tenth of the image then counts ten times per pixel in L_f, and the
      few salient pixels a hundred times in L^G: nu = 10 makes the foreground strokes serve almost only
      the expert's pixels (measured: birds in one generic colour, the background blacked out by
      foreground strokes whose r_b penalty was ~1/100 of their reward).
    - 'image': every term is a mean over the image's pixels (the crop's mean times the bbox's share of the
      image, L^G times the map's mass). Eq. 19 is then one pixel-weighted L2 whose weight is 1 on the
      background, 1 + eta on the object and 1 + eta + nu G^2 on its salient parts: eta and nu are the
      extra weight of an object pixel and of an expert-salient pixel, relative weights as the paper means.
    """

    def __init__(self, weights: RewardWeights, distance: str, critics=None, scale: str = "image"):
        self.weights = weights
        if distance == "l2":
            self.full_distance = self.crop_distance = l2_distance
        else:  # L = -D(target, image), one discriminator for the full image, one for the aligned crops
            self.full_distance, self.crop_distance = (lambda t, x, d=d: -d(t, x) for d in critics)
        self.per_image_pixel = scale == "image" and distance == "l2"

    def distances(self, canvas: torch.Tensor, ctx: Context, zoomed: Context | None = None) -> dict:
        """The weighted terms' distances of one canvas, each [B]: 'background', 'foreground', 'focus'."""
        w = self.weights
        out = {"background": self.background(canvas, ctx)}
        if w.eta or w.nu:
            zoomed = zoomed or ctx.crops()
            zc = align.crop(canvas, ctx.bboxes)
            area = ctx.bboxes[:, 2] * ctx.bboxes[:, 3] if self.per_image_pixel else 1.0  # crop's share of the image
            if w.eta:
                out["foreground"] = self.crop_distance(zoomed.targets * zoomed.masks, zc * zoomed.masks) * area
            if w.nu:
                # G_I restricted to the object: the map is the expert's view of the object, and unmasked its
                # values on nearby background made nu = 10 steer the background strokes (measured: they
                # turned white, the colour that served the map, not the background)
                gbp = zoomed.gbp * zoomed.masks
                mass = (gbp ** 2).mean(dim=(1, 2, 3)) * area if self.per_image_pixel else 1.0
                out["focus"] = focus_distance(zoomed.targets, zc, gbp) * mass
        return out

    def background(self, canvas: torch.Tensor, ctx: Context) -> torch.Tensor:
        """L(I, C) of the whole image alone, [B]: what r_b (Eq. 5) is the decrease of."""
        return self.full_distance(ctx.targets, canvas)

    def __call__(self, canvas0: torch.Tensor, canvas1: torch.Tensor, ctx: Context,
                 before: dict | None = None) -> tuple[torch.Tensor, dict]:
        """r(s_t, a_t) [B] for the step canvas0 -> canvas1, and each term's reward (for logging).

        before: `distances(canvas0, ctx)` when the caller already has them.
        """
        zoomed = ctx.crops() if (self.weights.eta or self.weights.nu) else None
        before = before if before is not None else self.distances(canvas0, ctx, zoomed)
        after = self.distances(canvas1, ctx, zoomed)
        terms = {k: before[k] - after[k] for k in before}
        return total_reward(terms, self.weights), terms
