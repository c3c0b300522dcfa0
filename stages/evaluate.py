"""Stage `evaluate`: the paper's Tables 1-2, whole-image scores and the painting order of both agents.

Reads artifacts/paint, artifacts/prepared (true masks; for a dataset without them, Stanford Cars, the
DeepLabV3 masks of artifacts/extracted_masks, as the paper does) and models/segmenter.pt. Writes metrics/eval.json, the tables
metrics/{table1_segmentation,table2_foreground_l2,whole_image,painting_order}.{csv,md} and the figures
figures/compare.png (Fig. 3: the test images), figures/compare_scenes.png (Fig. 4: the sample-scenes pass
of stage paint) and figures/sequence.png (Fig. 6).
"""
import json

import numpy as np
import torch

from semguide_core.config import load_params
from semguide_core.data.prepared import load_prepared
from semguide_core.errors import DataError
from semguide_core.evaluate import (comparison_figure, foreground_accuracy, masked_l2, score_agent,
                                    sequence_figure, tables, write_table)
from semguide_core.runtime import pick_device, run_stage, write_json
from semguide_core.semantics import load_segmenter
from semguide_core.semantics.boxes import mask_iou
from semguide_core.semantics.datasets import masks_with_extracted
from semguide_core.semantics.model_files import run_batched

AGENTS = ("baseline", "semantic")
TITLES = {"table1_segmentation": "Table 1: segmentation of the canvases against the true foreground",
          "table2_foreground_l2": "Table 2: foreground L2 distance",
          "whole_image": "Whole-image distance",
          "painting_order": "Painting order (Sec. 7.2): share of the blank canvas' error gone after n strokes"}


def as_float(images: np.ndarray) -> torch.Tensor:
    """uint8 [..., H, W, 3] -> float [..., 3, H, W] in [0, 1]."""
    return torch.from_numpy(images).movedim(-1, -3).float() / 255


def read(path):
    """An .npy or .json file of stage paint; missing or broken: a one-line DataError naming it."""
    try:
        return np.load(path) if path.endswith(".npy") else json.loads(open(path).read())
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: cannot read ({type(err).__name__}; run `dvc repro paint`)") from None


def load_paintings(folder):
    """One agent's paintings: canvases [N,3,H,W] and frames [N,F,3,H,W] in [0,1], and the frames' counts."""
    return (as_float(read(f"{folder}/canvases.npy")), as_float(read(f"{folder}/frames.npy")),
            read(f"{folder}/frames.json")["counts"])


def scenes_scores(p):
    """Fig. 4 and the foreground / whole-image L2 of the sample-scenes pass against the true vehicle masks."""
    canvases = {name: load_paintings(f"artifacts/paint/scenes/{name}")[0] for name in AGENTS}
    targets = as_float(read("artifacts/paint/scenes/targets.npy"))
    truth = torch.from_numpy(read("artifacts/paint/scenes/instances.npy") > 0).float()[:, None]
    comparison_figure(canvases["baseline"], canvases["semantic"], targets, "figures/compare_scenes.png",
                      "sample-scenes")
    return {name: {"fg_l2": float(masked_l2(targets, c, truth, p.l2_side).mean()),
                   "l2": float(masked_l2(targets, c, torch.ones_like(truth), p.l2_side).mean())}
            for name, c in canvases.items()} | {"images": len(targets)}


def main():
    params = load_params()
    p = params.evaluate
    device = pick_device(params.device)
    data = load_prepared("artifacts/prepared")
    paintings = {name: load_paintings(f"artifacts/paint/{name}") for name in AGENTS}
    idx, counts = read("artifacts/paint/baseline/idx.npy"), paintings["baseline"][2]
    if not (np.array_equal(read("artifacts/paint/semantic/idx.npy"), idx) and paintings["semantic"][2] == counts):
        raise DataError("artifacts/paint: the agents painted different images or stroke counts (run `dvc repro paint`)")
    batch = data.tensors(idx)
    # datasets without masks (Stanford Cars): the DeepLabV3 masks of stage extract_masks, as in the paper
    truth = torch.from_numpy(masks_with_extracted(data, "artifacts/extracted_masks")[idx]).float()[:, None]
    targets = batch.images

    segmenter = load_segmenter("models/segmenter.pt", device)
    scores = {}
    for name, (canvases, frames, _) in paintings.items():
        predicted = run_batched(segmenter, canvases, 32)  # foreground probability [N, 1, H, W]
        scores[name] = score_agent(targets, canvases, frames, counts, truth, predicted, p.l2_side,
                                   p.order_fraction)
    on_targets = run_batched(segmenter, targets, 32)
    reference = {"seg_accuracy": 100 * float(foreground_accuracy(on_targets[:, 0], truth[:, 0]).mean()),
                 "seg_iou": 100 * float(mask_iou(on_targets[:, 0], truth[:, 0]).mean())}

    write_json("metrics/eval.json", {**scores, "target": reference, "images": len(idx),
                                     "dataset": params.dataset, "l2_side": p.l2_side,
                                     "order_fraction": p.order_fraction, "scenes": scenes_scores(p)})
    for stem, frame in tables(scores, reference).items():
        write_table(frame, f"metrics/{stem}", TITLES[stem])

    shown = slice(0, p.figure_images)
    comparison_figure(paintings["baseline"][0][shown], paintings["semantic"][0][shown], batch.images[shown],
                      "figures/compare.png", params.dataset)
    sequence_figure(paintings["baseline"][1][:2], paintings["semantic"][1][:2], batch.images[:2], counts,
                    "figures/sequence.png")


if __name__ == "__main__":
    run_stage(main)
