"""`semguide paint IMAGE...`: paint image files with a trained agent and export each painting.

Loading the models an arbitrary image needs (the agent; for the semantic agent Psi and the expert that
give S_I and G_I), painting (painting.py) and writing PNG, GIF, JSON and SVG (exports.py).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from semguide_core.errors import SemguideError
from semguide_core.exports import export
from semguide_core.images import load_image
from semguide_core.metrics import psnr
from semguide_core.painting import make_scene, paint, paint_divided
from semguide_core.painting import refine as refine_painting
from semguide_core.renderer import load_renderer


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

        agent = load_agent(agent_path, device, name, canvas)
        if not agent.semantic_inputs:  # the baseline reads neither mask nor GBP map
            return cls(agent, None, None, gbp_percentile)
        # imported here: the expert's builder needs torchvision, about a second of start-up the baseline skips
        from semguide_core.semantics.expert import load_expert
        from semguide_core.semantics.guided_backprop import make_guided
        from semguide_core.semantics.psi import load_psi

        return cls(agent, load_psi(psi_path, device), make_guided(load_expert(expert_path, device)), gbp_percentile)

    def semantics(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Psi's mask S_I and the expert's GBP map G_I, [B,1,H,W] each, for images [B,3,H,W] (zeros for
        the baseline)."""
        if self.psi is None:
            zeros = images.new_zeros(len(images), 1, *images.shape[-2:])
            return zeros, zeros
        from semguide_core.semantics.expert import gbp_maps

        with torch.no_grad():
            masks, boxes = self.psi(images)
        return masks, gbp_maps(self.guided_expert, images, masks, boxes, self.gbp_percentile).detach()


# `semguide paint` warns past MANY_STROKES strokes per image, with an estimate from these (measured at 64 px
# on 2 cores: 200 strokes painted and exported in about 2 s, a 2.6 MB SVG)
MANY_STROKES, SECONDS_PER_STROKE, SVG_BYTES_PER_STROKE = 2000, 0.01, 13_000


def paint_files(images: list[Path], agent: str = "semantic", strokes: int = 200, out: Path = Path("paintings"),
                divide: int = 1, models: Path = Path("models"), params_file: Path = Path("params.yaml"),
                refine: int = 0) -> int:
    """`semguide paint IMAGE... --agent semantic|baseline --strokes N --out DIR [--divide D | --refine N]`.

    Writes DIR/<name>.png, .gif, .json (strokes) and .svg per image, and prints the PSNR of the rendered
    SVG against the PNG. With `refine` > 0 the agent's strokes are then optimised for the image by that
    many Adam steps (`painting.refine`). Images are painted `paint.batch_size` at a time (one actor forward
    per step for the batch). A file that cannot be read is reported on one line and skipped. Returns the
    exit status: 0 when every image was painted, 1 otherwise.
    """
    from tqdm import tqdm

    from semguide_core.config import load_params
    from semguide_core.runtime import pick_device

    if agent not in ("semantic", "baseline"):
        raise SemguideError(f"--agent {agent!r}: must be semantic or baseline")
    if strokes < 1 or divide < 1:
        raise SemguideError(f"--strokes {strokes} / --divide {divide}: must be >= 1")
    if refine < 0 or (refine and divide > 1):
        raise SemguideError(f"--refine {refine}: must be >= 0, and 0 with --divide (the neural renderer paints "
                            "one canvas size)")
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
    renderer = load_renderer(models / "renderer.pt", device) if refine else None
    side, batch_size = params.canvas, params.paint.batch_size
    failed, names = 0, set()
    with tqdm(total=len(images), desc=f"paint ({agent})", unit="image") as bar:
        for first in range(0, len(images), batch_size):  # one actor forward per step for the whole batch
            paths, small, big = [], [], []
            for path in images[first:first + batch_size]:
                try:
                    image = load_image(path, side)
                    big.append(load_image(path, side * divide) if divide > 1 else image)
                except SemguideError as err:
                    tqdm.write(f"error: {err}", file=sys.stderr)
                    failed += 1
                    continue
                small.append(image)
                paths.append(path)
            bar.update(len(images[first:first + batch_size]))
            if paths:
                _paint_batch(paths, torch.stack(small).to(device), torch.stack(big).to(device), loaded, params,
                             agent, strokes, divide, refine, renderer, out, names)
    print(f"painted {len(images) - failed} of {len(images)} images into {out}")
    return 1 if failed else 0


def _paint_batch(paths: list[Path], small: torch.Tensor, big: torch.Tensor, loaded: Models, params, agent: str,
                 strokes: int, divide: int, refine: int, renderer, out: Path, names: set):
    """Paint a batch of loaded images [B,3,H,W] (and at `divide` times the side) and export each one."""
    from tqdm import tqdm

    soft_mask, gbp = loaded.semantics(small)
    scene = make_scene(small, soft_mask, gbp, params.paint.min_instance_area, params.paint.max_instances)
    if divide > 1:
        painting = paint_divided(loaded.agent, scene, big, strokes, divide, every_bundle=True)
        regions = scene.upsampled(big).regions
    else:
        painting = paint(loaded.agent, scene, strokes, every_bundle=True)
        regions = scene.regions
    agent_db = psnr(big, painting.canvas)
    if refine:
        painting = refine_painting(painting, scene, renderer, refine)
    target_db = psnr(big, painting.canvas)
    for i, path in enumerate(paths):
        name = _unique_stem(Path(path), names)
        svg_db = export(painting.select(i), regions[i:i + 1], Path(out) / name, agent, str(path),
                        float(target_db[i]), refine)
        refined = f", the agent's {float(agent_db[i]):.2f} dB refined by {refine} steps" if refine else ""
        tqdm.write(f"{path} -> {Path(out) / name}.{{png,gif,json,svg}} (vs the image: {float(target_db[i]):.2f} dB"
                   f"{refined}; SVG vs PNG: {svg_db:.1f} dB)")


def _unique_stem(path: Path, taken: set) -> str:
    stem, n = path.stem, 1
    while stem in taken:
        n += 1
        stem = f"{path.stem}_{n}"
    taken.add(stem)
    return stem
