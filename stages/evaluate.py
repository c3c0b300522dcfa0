"""Stage `evaluate`: the paper's Tables 1-2, whole-image scores and the painting order of both agents.

Reads artifacts/paint, artifacts/prepared and models/segmenter.pt. Writes metrics/eval.json, the tables
metrics/{table1_segmentation,table2_foreground_l2,whole_image,painting_order}.{csv,md} and the figures
figures/compare.png (Fig. 3 / Fig. 4 layout) and figures/sequence.png (Fig. 6 layout).
"""
import json

import numpy as np
import torch

from semguide_core.config import load_params
from semguide_core.data.prepared import load_prepared
from semguide_core.errors import DataError
from semguide_core.evaluate import (comparison_figure, foreground_accuracy, score_agent, segmentation_iou,
                                    sequence_figure, tables, write_table)
from semguide_core.runtime import pick_device, run_stage, write_json
from semguide_core.semantics import load_segmenter
from semguide_core.semantics.model_files import run_batched

AGENTS = ("baseline", "semantic")
TITLES = {"table1_segmentation": "Table 1: segmentation of the canvases against the true foreground",
          "table2_foreground_l2": "Table 2: foreground L2 distance",
          "whole_image": "Whole-image distance",
          "painting_order": "Painting order (Sec. 7.2): share of the blank canvas' error gone after n strokes"}


def load_paintings(name):
    """One agent's paintings: canvases [N,3,H,W], frames [N,F,3,H,W] (float), idx [N], counts."""
    folder = f"artifacts/paint/{name}"
    try:
        canvases, frames = np.load(f"{folder}/canvases.npy"), np.load(f"{folder}/frames.npy")
        idx = np.load(f"{folder}/idx.npy")
        counts = json.loads(open(f"{folder}/frames.json").read())["counts"]
    except (OSError, ValueError, KeyError) as err:
        raise DataError(f"{folder}: incomplete paintings ({type(err).__name__}; run `dvc repro paint`)") from None
    as_float = lambda x: torch.from_numpy(x).movedim(-1, -3).float() / 255  # noqa: E731
    return as_float(canvases), as_float(frames), idx, counts


def main():
    params = load_params()
    p = params.evaluate
    device = pick_device(params.device)
    data = load_prepared("artifacts/prepared")
    paintings = {name: load_paintings(name) for name in AGENTS}
    idx, counts = paintings["baseline"][2], paintings["baseline"][3]
    if not all(np.array_equal(v[2], idx) and v[3] == counts for v in paintings.values()):
        raise DataError("artifacts/paint: the agents painted different images or stroke counts (run `dvc repro paint`)")
    batch = data.tensors(idx)
    scored = batch.has_mask.numpy()
    if not scored.any():
        raise DataError(f"artifacts/prepared: none of the {len(idx)} painted test images has a true mask to score")
    targets, truth = batch.images[scored], batch.masks[scored]

    segmenter = load_segmenter("models/segmenter.pt", device)
    scores = {}
    for name, (canvases, frames, _, _) in paintings.items():
        predicted = run_batched(segmenter, canvases[scored], 32)  # foreground probability [N, 1, H, W]
        scores[name] = score_agent(targets, canvases[scored], frames[scored], counts, truth, predicted,
                                   p.l2_side, p.order_fraction)
    on_targets = run_batched(segmenter, targets, 32)
    reference = {"seg_accuracy": 100 * float(foreground_accuracy(on_targets[:, 0], truth[:, 0]).mean()),
                 "seg_iou": 100 * float(segmentation_iou(on_targets[:, 0], truth[:, 0]).mean())}

    write_json("metrics/eval.json", {**scores, "target": reference, "images": int(scored.sum()),
                                     "dataset": params.dataset, "l2_side": p.l2_side,
                                     "order_fraction": p.order_fraction})
    for stem, frame in tables(scores, reference).items():
        write_table(frame, f"metrics/{stem}", TITLES[stem])

    shown = slice(0, p.figure_images)
    comparison_figure(paintings["baseline"][0][shown], paintings["semantic"][0][shown], batch.images[shown],
                      "figures/compare.png", params.dataset)
    sequence_figure(paintings["baseline"][1][:2], paintings["semantic"][1][:2], batch.images[:2], counts,
                    "figures/sequence.png")


if __name__ == "__main__":
    run_stage(main)
