"""Rewards (Sec. 4.1-4.3): each is the decrease of a distance between target and canvas over one step.

    r_b     = L(I, C_t) - L(I, C_t+1)                                   Eq. 5
    r_f     = L(Z^I * Z^S, Z^C_t * Z^S) - L(Z^I * Z^S, Z^C_t+1 * Z^S)     Eq. 12 (aligned crops, Omega)
    r_focus = L^G_t - L^G_t+1                                           Eq. 14-15 (G_I within S_I)
    r       = r_b + w_fg * r_f + w_focus * r_focus                      Eq. 19 (w = eta, nu) / Eq. 20 (w_focus = kappa)

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
    background: float  # weight of r_b (1 in Eq. 19 and 20)
    foreground: float  # eta (Eq. 19); 0 = no foreground reward
    focus: float       # nu (Eq. 19) or kappa (Eq. 20); 0 = no focus reward


class Rewards:
    """The distances of one agent and its weighted reward (Eq. 19). `distance`: 'wgan' or 'l2'.

    For 'wgan', `critics` = (D for the full image, D for the aligned foreground crops) score the distance;
    they are trained by `ddpg.DDPG` (WGAN-GP), here they are only read.

    relative (L2 only): each term's distance is divided by its value on the blank (black) canvas, so every
    term runs from 1 to 0 over an episode whatever the area it measures, and eta, nu weigh shares of each
    term's error, as relative weights. In absolute L2 the zoomed foreground and GBP terms (a crop magnified
    to the canvas, nu = 10) are many times the whole-image term.
    """

    def __init__(self, weights: RewardWeights, distance: str, critics=None, relative: bool = False):
        self.weights, self.distance, self.critics = weights, distance, critics
        self.relative = relative and distance == "l2"

    def _distance(self, which: int, targets, images):
        if self.distance == "l2":
            return l2_distance(targets, images)
        return -self.critics[which](targets, images)

    def distances(self, canvas: torch.Tensor, ctx: Context, zoomed: Context | None = None) -> dict:
        """The weighted terms' distances of one canvas, each [B]: 'background', 'foreground', 'focus'."""
        w = self.weights
        out = {"background": self._distance(0, ctx.targets, canvas)}
        if w.foreground or w.focus:
            zoomed = zoomed or ctx.crops()
            zc = align.crop(canvas, ctx.bboxes)
            if w.foreground:
                out["foreground"] = self._distance(1, zoomed.targets * zoomed.masks, zc * zoomed.masks)
            if w.focus:
                # G_I restricted to the object: the map is the expert's view of the object, and unmasked its
                # values on nearby background made nu = 10 steer the background strokes (measured: they
                # turned white, the colour that served the map, not the background)
                out["focus"] = focus_distance(zoomed.targets, zc, zoomed.gbp * zoomed.masks)
        return out

    def __call__(self, canvas0: torch.Tensor, canvas1: torch.Tensor, ctx: Context) -> tuple[torch.Tensor, dict]:
        """r(s_t, a_t) [B] for the step canvas0 -> canvas1, and each term's reward (for logging)."""
        zoomed = ctx.crops() if (self.weights.foreground or self.weights.focus) else None
        before, after = self.distances(canvas0, ctx, zoomed), self.distances(canvas1, ctx, zoomed)
        terms = {k: before[k] - after[k] for k in before}
        if self.relative:
            blank = self.distances(torch.zeros_like(canvas0), ctx, zoomed)
            terms = {k: r / blank[k].clamp(min=1e-6) for k, r in terms.items()}
        total = sum(getattr(self.weights, k) * r for k, r in terms.items())
        return total, terms
