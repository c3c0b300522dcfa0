"""Stage `paint`: paint the test images with the baseline and the semantic agent (Sec. 6.3, Eq. 16).

Reads the prepared dataset, Psi's masks, the GBP maps and the two agents. Writes into the folder `out`,
per agent, <agent>/: canvases.npy, frames.npy (the canvas after each of paint.frame_counts strokes),
strokes.npy, region.npy, idx.npy, frames.json.

Fig. 4 pass: `paint.scenes` test images of sample-scenes (street scenes with several vehicles, read from
prepare.data_dir), are painted by the same two agents, whatever dataset they were trained on. Their
foreground comes from the segmenter (trained on sample-scenes too; Psi only knows the prepared dataset),
each connected vehicle an instance for Eq. 16, and their GBP map from the expert. Written to
`out`/scenes/. Made when `--segmenter` and `--expert` are given (dvc.yaml; not datasets/dvc.yaml, whose
agents are trained on the dataset they paint).
"""
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import typer
from tqdm import tqdm

from semguide_core.agent import load_agent
from semguide_core.config import load_params
from semguide_core.data.prepare import select
from semguide_core.data.prepared import load_prepared
from semguide_core.errors import ConfigError, DataError
from semguide_core.exports import to_uint8
from semguide_core.painting import make_scene, paint
from semguide_core.runtime import atomic_path, pick_device, run_stage, seed_everything, write_json
from semguide_core.semantics.boxes import mask_to_bbox
from semguide_core.semantics.datasets import prepare_in_memory
from semguide_core.semantics.expert import gbp_maps, load_expert
from semguide_core.semantics.guided_backprop import make_guided
from semguide_core.semantics.model_files import run_batched
from semguide_core.semantics.segmenter import load_segmenter


def load_map(path, n_images):
    """A float16 [N, H, W] map file as float32 [N, 1, H, W]; a missing or mis-sized file is a DataError."""
    try:
        maps = np.load(path)
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: cannot read ({type(err).__name__}; run `dvc repro`)") from None
    if maps.ndim != 3 or len(maps) != n_images:
        raise DataError(f"{path}: shape {maps.shape}, expected [{n_images}, H, W] (one map per prepared image)")
    return torch.from_numpy(maps.astype(np.float32))[:, None]


def paint_set(agent, targets, soft_masks, gbp, p, counts, device, folder):
    """Paint targets [N,3,H,W] in batches and write the arrays into `folder`."""
    canvases, frames, strokes, regions = [], [], [], []
    for start in tqdm(range(0, len(targets), p.batch_size), desc=f"paint {folder.name}", unit="batch"):
        chunk = slice(start, start + p.batch_size)
        scene = make_scene(targets[chunk].to(device), soft_masks[chunk].to(device), gbp[chunk].to(device),
                           p.min_instance_area, p.max_instances)
        painting = paint(agent, scene, p.strokes, frame_counts=counts)
        canvases.append(painting.canvas.cpu())
        frames.append(torch.stack([painting.frames[c].cpu() for c in counts], 1))
        strokes.append(painting.strokes.cpu())
        regions.append(painting.region.cpu())
    folder.mkdir(parents=True)
    np.save(folder / "canvases.npy", to_uint8(torch.cat(canvases)))
    np.save(folder / "frames.npy", to_uint8(torch.cat(frames)))
    np.save(folder / "strokes.npy", torch.cat(strokes).numpy().astype(np.float32))
    np.save(folder / "region.npy", torch.cat(regions).numpy().astype(np.int16))
    write_json(folder / "frames.json", {"counts": counts, "strokes": p.strokes, "agent_kind": agent.kind})


def scenes(params, segmenter: Path, expert: Path, device):
    """The Fig. 4 inputs: targets [N,3,H,W], true instances [N,H,W], segmenter masks and GBP maps [N,1,H,W]."""
    street = prepare_in_memory("sample-scenes", params, 0)
    test = select(list(street.split("test")), params.paint.scenes)
    batch = street.tensors(test)
    soft_masks = run_batched(load_segmenter(segmenter, device), batch.images, 16)
    guided = make_guided(load_expert(expert, device))
    gbp = gbp_maps(guided, batch.images, soft_masks, mask_to_bbox(soft_masks[:, 0]), params.gbp.percentile)
    return batch.images, batch.instances.numpy().astype(np.uint8), soft_masks, gbp.detach().cpu()


def main(prepared: Path = typer.Option(..., help="the prepared dataset (stage prepare)"),
         psi: Path = typer.Option(..., help="Psi's masks (stage train_psi)"),
         gbp: Path = typer.Option(..., help="the GBP maps (stage gbp)"),
         baseline: Path = typer.Option(..., help="the baseline agent (stage train_agent@baseline)"),
         semantic: Path = typer.Option(..., help="the semantic agent (stage train_agent@semantic)"),
         out: Path = typer.Option(..., help="the paintings (folder)"),
         segmenter: Optional[Path] = typer.Option(None, help="the segmenter, for the sample-scenes pass"),
         expert: Optional[Path] = typer.Option(None, help="the expert classifier, for the sample-scenes pass")):
    params = load_params()
    p = params.paint
    device = pick_device(params.device)
    seed_everything(0)
    data = load_prepared(prepared)
    test = data.split("test")
    test = test[:p.max_images] if p.max_images else test
    soft_masks = load_map(psi / "masks.npy", len(data))[test]
    maps = load_map(gbp / "maps.npy", len(data))[test]
    targets = data.tensors(test).images
    counts = sorted(set(c for c in p.frame_counts if c <= p.strokes) | {p.strokes})
    agents = {name: load_agent(path, device, name, params.canvas)
              for name, path in (("baseline", baseline), ("semantic", semantic))}
    if (segmenter is None) != (expert is None):
        raise ConfigError("paint: the sample-scenes pass needs both --segmenter and --expert")
    street = scenes(params, segmenter, expert, device) if segmenter else None

    with atomic_path(out) as tmp:
        for name, agent in agents.items():
            paint_set(agent, targets, soft_masks, maps, p, counts, device, tmp / name)
            np.save(tmp / name / "idx.npy", np.asarray(test, dtype=np.int64))
        if street is not None:
            street_targets, instances, street_masks, street_gbp = street
            for name, agent in agents.items():
                paint_set(agent, street_targets, street_masks, street_gbp, p, counts, device, tmp / "scenes" / name)
            np.save(tmp / "scenes" / "targets.npy", to_uint8(street_targets))
            np.save(tmp / "scenes" / "instances.npy", instances)


if __name__ == "__main__":
    run_stage(main)
