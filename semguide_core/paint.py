"""Paint images with a trained agent, and export the painting: PNG, GIF of the process, strokes JSON, SVG.

The painting loop lives here, not in the agent: at every step it asks the agent for one bundle of strokes
(`agent.act`, docs/architecture.md), rasterises them with the real rasteriser (`strokes.py`, crisp, and
what the SVG reproduces) and composites them stroke by stroke:

- baseline agent: every stroke unmasked, C <- C * (1 - Phi) + Phi^c;
- semantic agent: background strokes first, colour masked by 1 - S (Eq. 3), then foreground strokes masked
  by S_u (Eq. 4), where u is the foreground instance with the largest remaining error (Eq. 16):
  u = argmax_i || S_i * (I - C_t) ||_F.

Instances are the connected components of Psi's mask thresholded at 0.5 (Psi predicts one foreground
map; components smaller than `min_instance_area` count as background). Compositing uses these binary
regions, so every pixel belongs to exactly one layer, and the painting is exactly a set of strokes
clipped by regions: that is what the SVG writes, and why its rendering matches the PNG.

High resolution (Huang et al.'s `divide`): the image is first painted whole at the canvas size, then cut
into d x d patches that are painted on, as one batch, with the same number of strokes each, on a canvas
d times larger. Patch strokes are converted to whole-image coordinates (position (col + x) / d, thickness
z / d), so the final image, the JSON and the SVG all hold one list of strokes in one frame.
"""
from __future__ import annotations

import io
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from skimage.measure import label as connected_components

from semguide_core import strokes as S
from semguide_core.errors import SemguideError
from semguide_core.evaluate import psnr
from semguide_core.images import load_image
from semguide_core.runtime import atomic_path, write_json
from semguide_core.semantics.boxes import mask_to_bbox


# ------------------------------------------------------------------------------ instances and Eq. 16
def instance_masks(mask: torch.Tensor, min_area: float, max_instances: int) -> torch.Tensor:
    """Binary instance masks [K, H, W] (K <= max_instances, largest first) from a soft mask [H, W].

    An instance is a connected component (8-neighbourhood) of mask > 0.5 covering at least `min_area` of
    the image; smaller specks are left to the background.
    """
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
    soft_mask: torch.Tensor  # [B, 1, H, W], Psi's mask S_I (what the agent was trained with)
    gbp: torch.Tensor        # [B, 1, H, W], G_I
    instances: torch.Tensor  # [B, K, H, W] binary, zero-padded to the batch's largest K (K >= 1)

    @property
    def regions(self) -> torch.Tensor:
        """[B, K+1, H, W]: region 0 = background (1 - union of instances), region k = instance k."""
        return torch.cat([1 - self.instances.amax(dim=1, keepdim=True), self.instances], dim=1)

    def upsampled(self, target: torch.Tensor) -> "Scene":
        """The same scene at the side of `target` (an integer multiple): maps bilinear, instances nearest."""
        factor = target.shape[-1] // self.target.shape[-1]
        up = lambda x: F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)  # noqa: E731
        return Scene(target, up(self.soft_mask), up(self.gbp),
                     self.instances.repeat_interleave(factor, -1).repeat_interleave(factor, -2))


def make_scene(target, soft_mask, gbp, min_area: float, max_instances: int) -> Scene:
    per_image = [instance_masks(m[0], min_area, max_instances) for m in soft_mask]
    instances = soft_mask.new_zeros(len(target), max(1, *map(len, per_image)), *target.shape[-2:])
    for b, masks in enumerate(per_image):
        instances[b, :len(masks)] = masks
    return Scene(target, soft_mask, gbp, instances)


@dataclass
class Painting:
    """A batch of paintings and how they were made."""
    canvas: torch.Tensor   # [B, 3, H, W] final canvas
    strokes: torch.Tensor  # [B, N, 13] in painting order, whole-image coordinates
    region: torch.Tensor   # [B, N] long: UNMASKED, BACKGROUND or instance k >= 1
    frames: dict           # strokes painted (per patch) -> canvas [B, 3, H, W] after that many

    @property
    def foreground(self) -> torch.Tensor:
        return self.region > BACKGROUND


def draw(canvas: torch.Tensor, strokes: torch.Tensor, region: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
    """Composite strokes [B,N,13] in order onto canvas [B,3,H,W], each coloured inside its region (Eq. 3-4)."""
    regions = torch.cat([torch.ones_like(regions[:, :1]), regions], dim=1)  # index 0 = whole image
    masks = regions[torch.arange(len(strokes))[:, None], region + 1]        # [B, N, H, W]
    return S.paint(canvas, strokes, masks)


def render(strokes: torch.Tensor, region: torch.Tensor, regions: torch.Tensor, chunk: int = 50) -> torch.Tensor:
    """The painting a stroke list makes on a black canvas the size of `regions` [B, K+1, H, W]."""
    canvas = regions.new_zeros(len(strokes), 3, *regions.shape[-2:])
    for start in range(0, strokes.shape[1], chunk):
        canvas = draw(canvas, strokes[:, start:start + chunk], region[:, start:start + chunk], regions)
    return canvas


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
          frame_counts=(), every_bundle: bool = False) -> Painting:
    """Paint a batch with the agent, `n_strokes` strokes per image (per patch when divide > 1).

    The agent sees canvas-sized views: the whole scene, or its d x d patches as one batch. The last bundle
    is cut short when K does not divide n_strokes. Frames are kept at the first bundle end reaching each of
    `frame_counts`, and after every bundle with `every_bundle` (for the GIF). `canvas` continues a painting.
    """
    batch = len(scene.target)
    canvas = torch.zeros_like(scene.target) if canvas is None else canvas.clone()
    regions = scene.regions
    target, soft_mask, gbp, instances = (patches(x, divide) for x in
                                         (scene.target, scene.soft_mask, scene.gbp, scene.instances))
    views = len(target)
    semantic = agent.kind == "semantic"
    strokes, region, frames = [], [], {}
    painted = step = 0
    while painted < n_strokes:
        view = patches(canvas, divide)
        u = choose_instance(target, view, instances)                       # Eq. 16, [views]
        chosen = instances[torch.arange(views), u][:, None]                # S_u, [views, 1, s, s]
        present = chosen.flatten(1).amax(dim=1) > 0
        # past the training episode the step input stays at its last trained value
        bbox = mask_to_bbox(chosen[:, 0]).to(view)
        bundle = agent.act(view, target, soft_mask * chosen, gbp, bbox, min(step, agent.steps - 1))
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
        canvas = draw(canvas, bundle, where, regions)
        strokes.append(bundle)
        region.append(where)
        painted, step = painted + k, step + 1
        for count in frame_counts:
            if count <= painted and count not in frames:
                frames[count] = canvas.clone()
        if every_bundle:
            frames[painted] = canvas.clone()
    return Painting(canvas, torch.cat(strokes, 1), torch.cat(region, 1), frames)


def paint_divided(agent, scene: Scene, target_big: torch.Tensor, n_strokes: int, divide: int,
                  every_bundle: bool = False) -> Painting:
    """Huang et al.'s `divide`: paint the whole image, then its d x d patches at d times the side."""
    whole = paint(agent, scene, n_strokes, every_bundle=every_bundle)
    big = scene.upsampled(target_big)
    start = render(whole.strokes, whole.region, big.regions)  # the first pass, re-rasterised crisply
    detail = paint(agent, big, n_strokes, divide, canvas=start, every_bundle=every_bundle)
    up = lambda x: F.interpolate(x, scale_factor=divide, mode="nearest")  # noqa: E731
    frames = {count: up(frame) for count, frame in whole.frames.items()}
    frames.update({n_strokes + count: frame for count, frame in detail.frames.items()})
    return Painting(detail.canvas, torch.cat([whole.strokes, detail.strokes], 1),
                    torch.cat([whole.region, detail.region], 1), frames)


# ------------------------------------------------------------------------------------------- exports
def to_uint8(image: torch.Tensor) -> np.ndarray:
    """[..., 3, H, W] float in [0,1] -> [..., H, W, 3] uint8."""
    return (image.clamp(0, 1) * 255).round().byte().movedim(-3, -1).cpu().numpy()


def save_png(image: torch.Tensor, path: Path) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(to_uint8(image)).save(tmp, format="PNG")


def save_gif(frames: list[torch.Tensor], path: Path, seconds: float = 4.0) -> None:
    """The painting process as an animated GIF lasting about `seconds`, holding the last frame a while."""
    images = [Image.fromarray(to_uint8(f)) for f in frames]
    step_ms = max(20, int(1000 * seconds / len(images)))
    durations = [step_ms] * (len(images) - 1) + [1500]
    with atomic_path(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=durations, loop=0)


def strokes_record(strokes: torch.Tensor, region: torch.Tensor, side: int, agent: str, source: str) -> dict:
    """The strokes of one painting as a JSON-able dict: 13 numbers each, foreground flag and instance."""
    return {
        "source": source,
        "agent": agent,
        "side": side,
        "order": "x0 y0 x1 y1 x2 y2 z0 z2 w0 w2 r g b (Eq. 1; x1, y1 relative to the ends)",
        "strokes": [{"a": [round(v, 5) for v in a.tolist()],
                     "foreground": bool(r > BACKGROUND),
                     "instance": int(r) if r > BACKGROUND else None,
                     "masked": bool(r != UNMASKED)}
                    for a, r in zip(strokes, region.tolist())],
    }


def _hex(rgb) -> str:
    return "#" + "".join(f"{round(float(c) * 255):02x}" for c in rgb)


def _region_path(region: torch.Tensor) -> str:
    """A binary map [H, W] as one SVG path of whole-pixel runs, row by row."""
    on = region.bool().cpu().numpy()
    parts = []
    for y, row in enumerate(on):
        edges = np.flatnonzero(np.diff(np.concatenate([[0], row.astype(np.int8), [0]])))
        for x0, x1 in zip(edges[::2], edges[1::2]):
            parts.append(f"M{x0} {y}h{x1 - x0}v1h{x0 - x1}z")
    return "".join(parts)


def to_svg(strokes: torch.Tensor, region: torch.Tensor, regions: torch.Tensor) -> str:
    """An SVG of a painting: strokes [N,13], their region [N], region maps [K+1, H, W] (binary).

    Each stroke is drawn as the rasteriser draws it: its discs, grey level = opacity w, later discs covering
    earlier ones, form a luminance mask (the density map); through that mask the stroke's colour is laid
    over the canvas (C * (1 - density) + density * rgb). A masked stroke lays black outside its region and
    its colour inside (Eq. 3-4), the region being a clip path of whole pixels.
    """
    side = regions.shape[-1]
    half = S.SUPERSAMPLE
    points, z, w = S.curve_samples(strokes)
    centres = (points * (side * half - 1) + 0.5) / half   # supersampled pixel centres -> canvas units
    radii = S.disc_radius(z, side) / half
    full = f'width="{side}" height="{side}"'
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" {full} viewBox="0 0 {side} {side}">',
           f'<rect {full} fill="#000"/>', "<defs>"]
    for r in sorted({int(r) for r in region.tolist() if r != UNMASKED}):
        out.append(f'<clipPath id="r{r}"><path d="{_region_path(regions[r])}"/></clipPath>')
    visible = [i for i in range(len(strokes)) if strokes[i, 8:10].max() > 0]
    for i in visible:
        # the stroke's shape: the union of its discs as one path, so edge pixels get their true coverage
        shape = "".join(f"M{x - rad:.3f} {y:.3f}a{rad:.3f} {rad:.3f} 0 1 0 {2 * rad:.3f} 0"
                        f"a{rad:.3f} {rad:.3f} 0 1 0 {-2 * rad:.3f} 0z"
                        for (x, y), rad in zip(centres[i].tolist(), radii[i].tolist()))
        # its opacity: the discs in order, grey = w, later over earlier; widened by half a pixel so that
        # inside the shape every pixel holds the last disc's value, not a blend with the black around it
        discs = "".join(f'<circle cx="{x:.3f}" cy="{y:.3f}" r="{rad + 0.5:.3f}" fill="{_hex([v] * 3)}"/>'
                        for (x, y), rad, v in zip(centres[i].tolist(), radii[i].tolist(), w[i].tolist()))
        out.append(f'<mask id="u{i}" maskUnits="userSpaceOnUse" x="0" y="0" {full}>'
                   f'<path d="{shape}" fill="#fff"/></mask>')
        out.append(f'<mask id="s{i}" maskUnits="userSpaceOnUse" x="0" y="0" {full}>'
                   f'<g mask="url(#u{i})">{discs}</g></mask>')
    out.append("</defs>")
    for i in visible:
        colour, r = _hex(strokes[i, 10:13]), int(region[i])
        if r == UNMASKED:
            out.append(f'<rect {full} fill="{colour}" mask="url(#s{i})"/>')
        else:
            out.append(f'<g mask="url(#s{i})"><rect {full} fill="#000"/>'
                       f'<rect {full} fill="{colour}" clip-path="url(#r{r})"/></g>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def render_svg(svg: str) -> torch.Tensor:
    """Rasterise SVG text with resvg (offline, no system library) -> [3, H, W] float in [0,1]."""
    import resvg_py  # imported here: only the SVG check needs it

    png = bytes(resvg_py.svg_to_bytes(svg_string=svg))
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(rgb).permute(2, 0, 1)


# ------------------------------------------------------------------------------ `semguide paint` files
@dataclass
class Models:
    """What painting an arbitrary image needs: the agent, and for the semantic agent Psi and the expert."""
    agent: object
    psi: torch.nn.Module | None
    guided_expert: torch.nn.Module | None
    gbp_percentile: float

    @classmethod
    def load(cls, agent_path: Path, name: str, canvas: int, psi_path: Path, expert_path: Path, gbp_percentile: float,
             device) -> "Models":
        from semguide_core.agent import load_agent
        from semguide_core.semantics import load_expert, load_psi
        from semguide_core.semantics.guided_backprop import make_guided

        agent = load_agent(agent_path, device, name, canvas)
        if not agent.semantic_inputs:  # the baseline reads neither mask nor GBP map
            return cls(agent, None, None, gbp_percentile)
        return cls(agent, load_psi(psi_path, device), make_guided(load_expert(expert_path, device)), gbp_percentile)

    def semantics(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Psi's mask S_I and the expert's GBP map G_I, [B,1,H,W] each, for images [B,3,H,W] (zeros for
        the baseline)."""
        if self.psi is None:
            zeros = images.new_zeros(len(images), 1, *images.shape[-2:])
            return zeros, zeros
        from semguide_core.semantics import gbp_maps

        with torch.no_grad():
            masks, boxes = self.psi(images)
        return masks, gbp_maps(self.guided_expert, images, masks, boxes, self.gbp_percentile).detach()


# `semguide paint` warns past MANY_STROKES strokes per image, with an estimate from these (measured at 64 px
# on 2 cores: 200 strokes painted and exported in about 2 s, a 2.6 MB SVG)
MANY_STROKES, SECONDS_PER_STROKE, SVG_BYTES_PER_STROKE = 2000, 0.01, 13_000


def paint_files(images: list[Path], agent: str = "semantic", strokes: int = 200, out: Path = Path("paintings"),
                divide: int = 1, models: Path = Path("models"), params_file: Path = Path("params.yaml")) -> int:
    """`semguide paint IMAGE... --agent semantic|baseline --strokes N --out DIR [--divide D]`.

    Writes DIR/<name>.png, .gif, .json (strokes) and .svg per image, and prints the PSNR of the rendered
    SVG against the PNG. A file that cannot be read is reported on one line and skipped. Returns the exit
    status: 0 when every image was painted, 1 otherwise.
    """
    from tqdm import tqdm

    from semguide_core.config import load_params
    from semguide_core.runtime import pick_device

    if agent not in ("semantic", "baseline"):
        raise SemguideError(f"--agent {agent!r}: must be semantic or baseline")
    if strokes < 1 or divide < 1:
        raise SemguideError(f"--strokes {strokes} / --divide {divide}: must be >= 1")
    if out.exists() and not out.is_dir():
        raise SemguideError(f"--out {out}: exists and is not a folder")
    total = strokes * (1 + divide * divide if divide > 1 else 1)
    if total > MANY_STROKES:
        print(f"warning: {total} strokes per image: about {total * SECONDS_PER_STROKE / 60:.0f} min and a "
              f"{total * SVG_BYTES_PER_STROKE / 1e6:,.0f} MB SVG per image on 2 CPU cores "
              f"(the agents were trained for 200)", file=sys.stderr)
    params = load_params(params_file)
    device = pick_device(params.device)
    loaded = Models.load(models / f"agent_{agent}.pt", agent, params.canvas, models / "psi.pt", models / "expert.pt",
                         params.gbp.percentile, device)
    side = params.canvas
    failed, names = 0, set()
    for path in tqdm(images, desc=f"paint ({agent})", unit="image"):
        try:
            small = load_image(path, side)[None].to(device)
            big = load_image(path, side * divide)[None].to(device) if divide > 1 else small
        except SemguideError as err:
            tqdm.write(f"error: {err}", file=sys.stderr)
            failed += 1
            continue
        soft_mask, gbp = loaded.semantics(small)
        scene = make_scene(small, soft_mask, gbp, params.paint.min_instance_area, params.paint.max_instances)
        if divide > 1:
            painting = paint_divided(loaded.agent, scene, big, strokes, divide, every_bundle=True)
            regions = scene.upsampled(big).regions
        else:
            painting = paint(loaded.agent, scene, strokes, every_bundle=True)
            regions = scene.regions
        name = _unique_stem(Path(path), names)
        target_db = float(psnr(big, painting.canvas)[0])
        psnr_db = export(painting, regions, Path(out) / name, agent, str(path), target_db)
        tqdm.write(f"{path} -> {Path(out) / name}.{{png,gif,json,svg}} (vs the image: {target_db:.2f} dB; "
                   f"SVG vs PNG: {psnr_db:.1f} dB)")
    print(f"painted {len(images) - failed} of {len(images)} images into {out}")
    return 1 if failed else 0


def _unique_stem(path: Path, taken: set) -> str:
    stem, n = path.stem, 1
    while stem in taken:
        n += 1
        stem = f"{path.stem}_{n}"
    taken.add(stem)
    return stem


def export(painting: Painting, regions: torch.Tensor, base: Path, agent: str, source: str,
           target_db: float) -> float:
    """Write base.png, .gif, .json and .svg for the first painting of the batch; returns SVG-vs-PNG PSNR.

    target_db, the painting's PSNR against the image it paints, is recorded in the JSON."""
    file = lambda suffix: base.parent / f"{base.name}{suffix}"  # noqa: E731 (names may hold dots)
    png = torch.from_numpy(to_uint8(painting.canvas[0])).permute(2, 0, 1).float() / 255
    svg = to_svg(painting.strokes[0], painting.region[0], regions[0])
    psnr_db = float(psnr(render_svg(svg)[None], png[None]))
    record = strokes_record(painting.strokes[0], painting.region[0], regions.shape[-1], agent, source)
    record["svg_psnr_db"] = round(psnr_db, 2)
    record["psnr_db"] = round(target_db, 2)
    save_png(painting.canvas[0], file(".png"))
    frames = [torch.zeros_like(painting.canvas[0])] + [f[0] for _, f in sorted(painting.frames.items())]
    save_gif(frames, file(".gif"))
    write_json(file(".json"), record)
    with atomic_path(file(".svg")) as tmp:
        tmp.write_text(svg)
    return psnr_db


# ------------------------------------------------------------------------------------------- benchmark
def benchmark(params, sides: tuple[int, ...] = (), strokes: int = 200, images: int = 1) -> dict[int, float]:
    """Milliseconds per image to paint `strokes` strokes on the CPU, per canvas side (default: the params'
    canvas and 128 px), with a semantic actor of the params' architecture (untrained: the cost is the same)
    and the real rasteriser; Psi and the GBP map are not included (once per image)."""
    import time

    from semguide_core.agent.env import in_channels
    from semguide_core.agent.inference import PaintingAgent
    from semguide_core.agent.networks import Actor, actor_arch

    p = params.agent
    n_background = p.bundle - p.foreground_strokes
    actor = Actor(**actor_arch(p, in_channels(True), n_background)).eval()
    agent = PaintingAgent("semantic", "semantic", n_background, p.episode_steps, True, actor)
    result = {}
    for side in sides or (params.canvas, 128):
        soft = torch.zeros(images, 1, side, side)
        soft[..., side // 4: 3 * side // 4, side // 4: 3 * side // 4] = 1
        scene = make_scene(torch.rand(images, 3, side, side), soft, soft, 0.0, 1)
        started = time.perf_counter()
        paint(agent, scene, strokes)
        result[side] = 1000 * (time.perf_counter() - started) / images
    return result
