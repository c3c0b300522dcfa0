"""Writing a painting: PNG, GIF of the process, strokes JSON, and an SVG that renders as the PNG."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from semguide_core import strokes as S
from semguide_core.metrics import psnr
from semguide_core.painting import BACKGROUND, UNMASKED, Painting
from semguide_core.runtime import atomic_path, write_json


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


def to_svg(strokes: torch.Tensor, region: torch.Tensor, regions: torch.Tensor, layered: bool) -> str:
    """An SVG of a painting: strokes [N,13], their region [N], region maps [K+1, H, W] (binary).

    Each stroke is drawn as the rasteriser draws it: its discs, grey level = opacity w, later discs covering
    earlier ones, form a luminance mask (the density map); through that mask the stroke's colour is laid
    over the canvas (C * (1 - density) + density * rgb). A masked stroke (`strokes.composite`), its region
    being a clip path of whole pixels: layered, the stroke clipped to its region; Eq. 3-4 as printed, black
    outside its region and its colour inside.
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
        elif layered:
            out.append(f'<g clip-path="url(#r{r})"><rect {full} fill="{colour}" mask="url(#s{i})"/></g>')
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


def export(painting: Painting, regions: torch.Tensor, base: Path, agent: str, source: str,
           target_db: float, refine_steps: int = 0) -> float:
    """Write base.png, .gif, .json and .svg for the first painting of the batch; returns SVG-vs-PNG PSNR.

    target_db, the painting's PSNR against the image it paints, is recorded in the JSON."""
    file = lambda suffix: base.parent / f"{base.name}{suffix}"  # noqa: E731 (names may hold dots)
    png = torch.from_numpy(to_uint8(painting.canvas[0])).permute(2, 0, 1).float() / 255
    svg = to_svg(painting.strokes[0], painting.region[0], regions[0], painting.layered)
    psnr_db = float(psnr(render_svg(svg)[None], png[None]))
    record = strokes_record(painting.strokes[0], painting.region[0], regions.shape[-1], agent, source)
    if (painting.region[0] != UNMASKED).any():  # how its masked strokes composited (strokes.composite)
        record["compositing"] = "layered" if painting.layered else "paper"
    record["svg_psnr_db"] = round(psnr_db, 2)
    record["psnr_db"] = round(target_db, 2)
    record["refine_steps"] = refine_steps  # > 0: the agent's strokes were then optimised for the image
    save_png(painting.canvas[0], file(".png"))
    frames = [torch.zeros_like(painting.canvas[0])] + [f[0] for _, f in sorted(painting.frames.items())]
    if not torch.equal(frames[-1], painting.canvas[0]):  # refined (`--refine`): the GIF ends on the result
        frames.append(painting.canvas[0])
    save_gif(frames, file(".gif"))
    write_json(file(".json"), record)
    with atomic_path(file(".svg")) as tmp:
        tmp.write_text(svg)
    return psnr_db
