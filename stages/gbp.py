"""Stage `gbp`: guided-backprop maps G_I of every prepared image (expert, Psi's mask and box), where their
mass lies on the test split (object, distinguishing part), and the figure image | Psi mask | box | G_I."""
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import typer
from tqdm import tqdm

from semguide_core.config import load_params
from semguide_core.data.prepared import load_prepared
from semguide_core.errors import DataError
from semguide_core.figures import save_grid
from semguide_core.runtime import atomic_path, pick_device, run_stage, write_json
from semguide_core.semantics.boxes import box_outline
from semguide_core.semantics.expert import gbp_maps, load_expert, object_crops
from semguide_core.semantics.guided_backprop import make_guided, mass_shares
from semguide_core.semantics.model_files import run_batched


def main(prepared: Path = typer.Option(..., help="the prepared dataset (stage prepare)"),
         psi: Path = typer.Option(..., help="Psi's masks and boxes (stage train_psi)"),
         expert: Path = typer.Option(..., help="the expert classifier (stage train_expert)"),
         out: Path = typer.Option(..., help="the GBP map of every prepared image (folder)"),
         metrics: Path = typer.Option(..., help="where the maps' mass lies on the test split (JSON)"),
         figure: Path = typer.Option(..., help="image | Psi mask | box | GBP map (PNG)")):
    params = load_params()
    p = params.gbp
    data = load_prepared(prepared)
    every = data.tensors(np.arange(len(data)))
    masks, boxes = load_psi_outputs(psi, len(data))
    guided = make_guided(load_expert(expert, pick_device(params.device)))
    maps = torch.cat([gbp_maps(guided, every.images[i:i + p.batch_size], masks[i:i + p.batch_size],
                               boxes[i:i + p.batch_size], p.percentile).detach().cpu()
                      for i in tqdm(range(0, len(data), p.batch_size), desc="gbp")])
    with atomic_path(out) as tmp:
        tmp.mkdir(parents=True)
        np.save(tmp / "maps.npy", maps[:, 0].numpy().astype(np.float16))

    test = data.split("test")
    scored = test[data.index["has_mask"].to_numpy()[test]]  # true masks to score against
    crops = object_crops(every.images[test], masks[test], boxes[test], guided.resolution)
    on_psi_crops = (run_batched(guided, crops, 64).argmax(1) == every.labels[test]).float().mean().item()
    write_json(metrics, {
        **mass_shares(maps[scored], every.masks[scored], every.parts[scored]),
        "expert_test_accuracy_on_psi_crops": on_psi_crops, "n_test": len(test), "percentile": p.percentile})
    semantics_figure(every, masks, boxes, maps, test[:p.figure_images], figure)


def load_psi_outputs(folder: Path, n: int):
    """Psi's masks [N, 1, H, W] and boxes [N, 4] written by train_psi into `folder`."""
    for name in ("masks.npy", "bboxes.csv"):
        if not (folder / name).is_file():
            raise DataError(f"{folder / name}: not found (run `dvc repro train_psi`)")
    masks = np.load(folder / "masks.npy")
    boxes = pd.read_csv(folder / "bboxes.csv")
    if len(masks) != n or len(boxes) != n:
        raise DataError(f"{folder}: {len(masks)} masks / {len(boxes)} boxes for {n} prepared images "
                        f"(run `dvc repro train_psi`)")
    return (torch.from_numpy(masks.astype(np.float32)).unsqueeze(1),
            torch.tensor(boxes[["x", "y", "w", "h"]].to_numpy(np.float32)))


def semantics_figure(every, masks, boxes, maps, rows, path):
    """image | Psi mask | boxes (Psi red, true green) | G_I, one test image a row."""
    h, w = every.images.shape[2:]
    with_boxes = every.images[rows].clone()
    for box, colour in ((every.bboxes[rows], (0.0, 1.0, 0.0)), (boxes[rows], (1.0, 0.0, 0.0))):
        outline = box_outline(box, h, w)[:, None] > 0
        with_boxes = torch.where(outline, torch.tensor(colour).view(1, 3, 1, 1), with_boxes)
    save_grid([[every.images[i], masks[i, 0], with_boxes[k], maps[i, 0]] for k, i in enumerate(rows)], path,
              col_titles=["image", "Psi mask", "box (Psi red, true green)", "GBP map"])


if __name__ == "__main__":
    run_stage(main)
