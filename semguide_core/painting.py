"""Painting a batch of images with a trained agent: the loop, Eq. 16, and Huang et al.'s `divide`.

`paint` is the one episode loop: the `paint` stage, `semguide paint`, the SVG, the validation curves while
training and the agents' final metrics all paint with it (training's own episodes interleave replay and
updates, `agent.train`, and share its transition, `strokes.paint`). At every step it asks the agent for one
bundle of strokes (`agent.act`, docs/architecture.md), rasterises them with the real rasteriser
(`strokes.py`, crisp, and what the SVG reproduces; or another density function, e.g. the neural renderer
for an agent trained on its canvases) and composites them stroke by stroke:

- baseline agent: every stroke unmasked, C <- C * (1 - Phi) + Phi^c;
- semantic agent: background strokes first, in the layer 1 - S (Eq. 3), then foreground strokes in the
  layer S_u (Eq. 4), where u is the foreground instance with the largest remaining error (Eq. 16):
  u = argmax_i || S_i * (I - C_t) ||_F. How a stroke composites with its layer is the agent's
  `compositing` (`strokes.composite`: Eq. 3-4 as printed, or layered).

A `Scene` says what the agent paints towards. `make_scene` (painting images): the instances are the
connected components of Psi's mask thresholded at 0.5 (Psi predicts one foreground map; components smaller
than `min_instance_area` count as background), the agent sees Psi's soft mask within the chosen instance
and that instance's box. `episode_scene` (training episodes, `agent.rewards.Context`): one instance, the
mask and box the agent trained with. Compositing uses the binary regions, so every pixel belongs to
exactly one layer, and the painting is exactly a set of strokes clipped by regions: that is what the SVG
writes (exports.py), and why its rendering matches the PNG.

High resolution (Huang et al.'s `divide`): the image is first painted whole at the canvas size, then cut
into d x d patches that are painted on, as one batch, with the same number of strokes each, on a canvas
d times larger. Patch strokes are converted to whole-image coordinates (position (col + x) / d, thickness
z / d), so the final image, the JSON and the SVG all hold one list of strokes in one frame.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from semguide_core import strokes as S
from semguide_core.agent.env import DensityFn, stroke_mask, straight_through_density
from semguide_core.agent.rewards import Context
from semguide_core.semantics.boxes import mask_to_bbox


# ------------------------------------------------------------------------------ instances and Eq. 16
def instance_masks(mask: torch.Tensor, min_area: float, max_instances: int) -> torch.Tensor:
    """Binary instance masks [K, H, W] (K <= max_instances, largest first) from a soft mask [H, W].

    An instance is a connected component (8-neighbourhood) of mask > 0.5 covering at least `min_area` of
    the image; smaller specks are left to the background.
    """
    # imported here: scikit-image (with SciPy) costs 0.3 s of `semguide paint`'s start-up, and only the
    # semantic agent reaches this function
    from skimage.measure import label as connected_components

    labels = torch.from_numpy(connected_components((mask > 0.5).cpu().numpy(), connectivity=2))
    areas = torch.bincount(labels.flatten())[1:]
    keep = [k + 1 for k in areas.argsort(descending=True).tolist()
            if areas[k] >= min_area * mask.numel()][:max_instances]
    if not keep:
        return mask.new_zeros(0, *mask.shape)
    return (labels[None] == torch.tensor(keep)[:, None, None]).to(mask.dtype)


def choose_instance(target: torch.Tensor, canvas: torch.Tensor, instances: torch.Tensor) -> torch.Tensor:
    """Eq. 16: u = argmax_i ||S_i * (I - C_t)||_F, per image. target, canvas [B,3,H,W]; instances [B,K,H,W]."""
    error = (instances[:, :, None] * (target - canvas)[:, None]).flatten(2).norm(dim=2)  # [B, K]
    return error.argmax(dim=1)


# ------------------------------------------------------------------------------------- painting loop
UNMASKED, BACKGROUND = -1, 0  # a stroke's region: -1 whole image (baseline), 0 background, k >= 1 instance k


@dataclass
class Scene:
    """What the agent looks at besides the canvas, for a batch of images at one resolution."""
    target: torch.Tensor     # [B, 3, H, W]
    masks: torch.Tensor      # [B, K, H, W], the S_I the agent sees while it paints instance k
    gbp: torch.Tensor        # [B, 1, H, W], G_I
    instances: torch.Tensor  # [B, K, H, W] binary, zero-padded to the batch's largest K (K >= 1)
    bboxes: torch.Tensor | None = None  # [B, K, 4] the instances' boxes; None: the box of each (patch's) mask

    @property
    def regions(self) -> torch.Tensor:
        """[B, K+1, H, W]: region 0 = background (1 - union of instances), region k = instance k."""
        return torch.cat([1 - self.instances.amax(dim=1, keepdim=True), self.instances], dim=1)

    def upsampled(self, target: torch.Tensor) -> "Scene":
        """The same scene at the side of `target` (an integer multiple): masks and G_I bilinear, instances
        nearest, each mask kept within its instance."""
        factor = target.shape[-1] // self.target.shape[-1]
        up = lambda x: F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)  # noqa: E731
        instances = self.instances.repeat_interleave(factor, -1).repeat_interleave(factor, -2)
        return Scene(target, up(self.masks) * instances, up(self.gbp), instances, self.bboxes)


def make_scene(target, soft_mask, gbp, min_area: float, max_instances: int) -> Scene:
    """The scene of images to paint: Psi's soft mask [B, 1, H, W] split into its connected components."""
    per_image = [instance_masks(m[0], min_area, max_instances) for m in soft_mask]
    instances = soft_mask.new_zeros(len(target), max(1, *map(len, per_image)), *target.shape[-2:])
    for b, masks in enumerate(per_image):
        instances[b, :len(masks)] = masks
    return Scene(target, soft_mask * instances, gbp, instances)


def episode_scene(ctx: Context) -> Scene:
    """The scene of training episodes, one instance each: the agent sees the S_I and bbox it trained with
    (Psi's, or those of the episode's instance), and Eq. 3-4 composite with S_I thresholded (`env.stroke_mask`)."""
    return Scene(ctx.targets, ctx.masks, ctx.gbp, stroke_mask(ctx.masks), ctx.bboxes[:, None])


@dataclass
class Painting:
    """A batch of paintings and how they were made."""
    canvas: torch.Tensor   # [B, 3, H, W] final canvas
    strokes: torch.Tensor  # [B, N, 13] in painting order, whole-image coordinates
    region: torch.Tensor   # [B, N] long: UNMASKED, BACKGROUND or instance k >= 1
    frames: dict           # strokes painted (per patch) -> canvas [B, 3, H, W] after that many
    layered: bool          # how masked strokes composited (`strokes.composite`)

    @property
    def foreground(self) -> torch.Tensor:
        return self.region > BACKGROUND

    def select(self, i: int) -> "Painting":
        """Painting i of the batch, as a batch of one."""
        one = slice(i, i + 1)
        return Painting(self.canvas[one], self.strokes[one], self.region[one],
                        {count: frame[one] for count, frame in self.frames.items()}, self.layered)


def stroke_masks(region: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
    """Each stroke's layer mask (Eq. 3-4), [B, N, H, W], from its region [B, N]."""
    regions = torch.cat([torch.ones_like(regions[:, :1]), regions], dim=1)  # index 0 = whole image
    return regions[torch.arange(len(region))[:, None], region + 1]


def draw(canvas: torch.Tensor, strokes: torch.Tensor, region: torch.Tensor, regions: torch.Tensor,
         layered: bool, density_fn: DensityFn | None = None) -> torch.Tensor:
    """Composite strokes [B,N,13] in order onto canvas [B,3,H,W], each in its region's layer (Eq. 3-4,
    `strokes.composite`); density_fn: the real rasteriser when None."""
    return S.paint(canvas, strokes, stroke_masks(region, regions), density_fn, layered)


def render(strokes: torch.Tensor, region: torch.Tensor, regions: torch.Tensor, layered: bool,
           chunk: int = 50) -> torch.Tensor:
    """The painting a stroke list makes on a black canvas the size of `regions` [B, K+1, H, W]."""
    canvas = regions.new_zeros(len(strokes), 3, *regions.shape[-2:])
    for start in range(0, strokes.shape[1], chunk):
        canvas = draw(canvas, strokes[:, start:start + chunk], region[:, start:start + chunk], regions, layered)
    return canvas


def paint_episodes(agent, ctx: Context, frame_counts=(), density_fn: DensityFn | None = None) -> Painting:
    """Training episodes `ctx` painted whole (T bundles) from a black canvas: the validation curves while
    training, the agents' final metrics and Fig. 5. density_fn: the real rasteriser when None."""
    return paint(agent, episode_scene(ctx), agent.steps * agent.bundle, frame_counts=frame_counts,
                 density_fn=density_fn)


def patches(x: torch.Tensor, divide: int) -> torch.Tensor:
    """[B, C, d*s, d*s] -> [B*d*d, C, s, s], patch p = row * d + col."""
    b, c, h, w = x.shape
    x = x.reshape(b, c, divide, h // divide, divide, w // divide).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b * divide * divide, c, h // divide, w // divide)


def to_whole_image(strokes: torch.Tensor, divide: int) -> torch.Tensor:
    """Patch strokes [B*d*d, K, 13] in patch coordinates -> whole-image coordinates (same shape).

    The ends move to (col + x) / d, (row + y) / d; the middle point is relative to the ends and stays;
    thickness scales by 1 / d so that the disc radius in pixels is unchanged.
    """
    if divide == 1:
        return strokes
    p = torch.arange(divide * divide).repeat(len(strokes) // divide ** 2)
    row, col = (p // divide).to(strokes)[:, None], (p % divide).to(strokes)[:, None]
    out = strokes.clone()
    out[..., [0, 4]] = (col[..., None] + strokes[..., [0, 4]]) / divide
    out[..., [1, 5]] = (row[..., None] + strokes[..., [1, 5]]) / divide
    out[..., 6:8] = strokes[..., 6:8] / divide
    return out


@torch.no_grad()
def paint(agent, scene: Scene, n_strokes: int, divide: int = 1, canvas: torch.Tensor | None = None,
          frame_counts=(), every_bundle: bool = False, density_fn: DensityFn | None = None) -> Painting:
    """Paint a batch with the agent, `n_strokes` strokes per image (per patch when divide > 1).

    The agent sees canvas-sized views: the whole scene, or its d x d patches as one batch. The last bundle
    is cut short when K does not divide n_strokes. Frames are kept at the first bundle end reaching each of
    `frame_counts`, and after every bundle with `every_bundle` (for the GIF). `canvas` continues a painting.
    density_fn: what turns strokes into densities, the real rasteriser when None.
    """
    if divide > 1 and scene.bboxes is not None:
        raise ValueError("paint: a scene with given boxes cannot be divided into patches (their boxes differ)")
    batch = len(scene.target)
    canvas = torch.zeros_like(scene.target) if canvas is None else canvas.clone()
    regions = scene.regions
    target, masks, gbp, instances = (patches(x, divide) for x in
                                     (scene.target, scene.masks, scene.gbp, scene.instances))
    rows = torch.arange(len(target))  # one row per view: an image, or a patch of one
    semantic = agent.kind == "semantic"
    strokes, region, frames = [], [], {}
    painted = step = 0
    object_steps = torch.zeros(instances.shape[:2], dtype=torch.long, device=instances.device)  # per instance
    while painted < n_strokes:
        view = patches(canvas, divide)
        u = choose_instance(target, view, instances)                       # Eq. 16, [views]
        chosen = instances[rows, u][:, None]                               # S_u, [views, 1, s, s]
        present = chosen.flatten(1).amax(dim=1) > 0
        bbox = (mask_to_bbox(chosen[:, 0]).to(view) if scene.bboxes is None
                else scene.bboxes[rows, u])
        # past the training episode the step inputs stay at their last trained value
        last = agent.steps - 1
        bundle = agent.act(view, target, masks[rows, u][:, None], gbp, bbox, min(step, last),
                           object_steps[rows, u].clamp(max=last))
        object_steps[rows, u] += 1
        bundle = bundle[:, :n_strokes - painted].clone()
        k = bundle.shape[1]
        fg = torch.arange(k, device=view.device) >= (agent.n_background if semantic else k)
        # a foreground stroke where there is no instance could only darken the canvas: make it invisible
        bundle[:, fg, 8:10] *= present[:, None, None].to(bundle)
        where = torch.where(fg, u[:, None] + 1, BACKGROUND if semantic else UNMASKED)
        # stroke-major order: stroke i of every patch, then stroke i + 1
        bundle = to_whole_image(bundle, divide).reshape(batch, -1, k, S.STROKE_SIZE).transpose(1, 2)
        bundle = bundle.reshape(batch, -1, S.STROKE_SIZE)
        where = where.reshape(batch, -1, k).transpose(1, 2).reshape(batch, -1)
        canvas = draw(canvas, bundle, where, regions, agent.layered, density_fn)
        strokes.append(bundle)
        region.append(where)
        painted, step = painted + k, step + 1
        for count in frame_counts:
            if count <= painted and count not in frames:
                frames[count] = canvas.clone()
        if every_bundle:
            frames[painted] = canvas.clone()
    return Painting(canvas, torch.cat(strokes, 1), torch.cat(region, 1), frames, agent.layered)


def paint_divided(agent, scene: Scene, target_big: torch.Tensor, n_strokes: int, divide: int,
                  every_bundle: bool = False) -> Painting:
    """Huang et al.'s `divide`: paint the whole image, then its d x d patches at d times the side."""
    whole = paint(agent, scene, n_strokes, every_bundle=every_bundle)
    big = scene.upsampled(target_big)
    start = render(whole.strokes, whole.region, big.regions, whole.layered)  # the first pass, re-rasterised crisply
    detail = paint(agent, big, n_strokes, divide, canvas=start, every_bundle=every_bundle)
    up = lambda x: F.interpolate(x, scale_factor=divide, mode="nearest")  # noqa: E731
    frames = {count: up(frame) for count, frame in whole.frames.items()}
    frames.update({n_strokes + count: frame for count, frame in detail.frames.items()})
    return Painting(detail.canvas, torch.cat([whole.strokes, detail.strokes], 1),
                    torch.cat([whole.region, detail.region], 1), frames, whole.layered)


# images `refine` optimises together: each image's strokes are its own, so the group only sets the cost. On 2
# cores (session 14, 10 steps of the default renderer): 0.23 / 0.16 / 0.13 / 0.15 / 0.30 s per image and step
# for groups of 1 / 2 / 4 / 8 / 16; past 4 the renderer's activations page-fault (half the time in the kernel)
REFINE_GROUP = 4


def refine(painting: Painting, scene: Scene, renderer, steps: int, lr: float = 0.003) -> Painting:
    """`semguide paint --refine N`: N Adam steps on all of a painting's strokes at once, then the real rasteriser.

    Per-image optimisation after the agent, not the agent (the evaluation tables measure the agents): the
    strokes' 13 numbers move in logit space (so they stay in [0, 1]) to lower the MSE to the target of the
    canvas the real rasteriser paints from them, with the neural renderer's gradient (the straight-through
    density the agents train with, `env.straight_through_density`); each stroke keeps its place in the order
    and its region, so a foreground stroke stays masked by its instance (Eq. 4) and an invisible one stays
    invisible. Through the renderer's canvas alone the gain stopped where the renderer and the rasteriser
    disagree (+1.0 dB on 8 test images, and lost again at a higher rate); README for what this gains.
    Images are optimised REFINE_GROUP at a time (the same steps: Adam moves each number on its own gradient).
    """
    masks = stroke_masks(painting.region, scene.regions)
    visible = (painting.strokes[..., 8:10].amax(-1, keepdim=True) > 0).to(painting.strokes)
    shown = lambda a, v: torch.cat([a[..., :8], a[..., 8:10] * v, a[..., 10:]], -1)  # noqa: E731
    density = straight_through_density(renderer, scene.target.shape[-1])
    groups = []
    for first in range(0, len(painting.strokes), REFINE_GROUP):
        group = slice(first, first + REFINE_GROUP)
        target, seen = scene.target[group], visible[group]
        logits = torch.logit(painting.strokes[group].clamp(1e-4, 1 - 1e-4)).requires_grad_(True)
        opt = torch.optim.Adam([logits], lr=lr)
        for _ in range(steps):
            canvas = S.paint(torch.zeros_like(target), shown(torch.sigmoid(logits), seen), masks[group], density,
                             painting.layered)
            loss = ((canvas - target) ** 2).mean(dim=(1, 2, 3)).sum()  # summed: each image its own step
            opt.zero_grad()
            loss.backward()
            opt.step()
        groups.append(shown(torch.sigmoid(logits.detach()), seen))
    strokes = torch.cat(groups)
    canvas = render(strokes, painting.region, scene.regions, painting.layered)
    # the frames stay: how the agent painted
    return Painting(canvas, strokes, painting.region, painting.frames, painting.layered)

