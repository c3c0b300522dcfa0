"""Stage `evaluate`: the paper's Tables 1-2, whole-image scores and the painting order of both agents.

Reads the paintings of stage paint, the prepared dataset (true masks; for a dataset without them, Stanford
Cars, the DeepLabV3 masks of stage extract_masks, as the paper does) and the segmenter. Writes the scores
(JSON), the tables {table1_segmentation,table2_foreground_l2,whole_image,painting_order,painting_sequence}
.{csv,md} into the folder `tables` and four figures: Fig. 3 (the test images), Fig. 4 (the sample-scenes
pass of stage paint), Fig. 6 (the painting sequence, on images both agents paint equally well) and Fig. 7
(the test images' segmentation maps, from which Table 1 is scored).
"""
import json
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import typer

from semguide_core.config import load_params
from semguide_core.data.prepared import load_prepared
from semguide_core.errors import ConfigError, DataError
from semguide_core.evaluate import (comparison_figure, foreground_accuracy, masked_l2, score_agent,
                                    score_sequences, sequence_figure)
from semguide_core.evaluate import tables as make_tables  # `tables` is main's argument, their folder
from semguide_core.runtime import pick_device, run_stage, write_json
from semguide_core.semantics.boxes import mask_iou
from semguide_core.semantics.datasets import masks_with_extracted
from semguide_core.semantics.model_files import run_batched
from semguide_core.semantics.segmenter import load_segmenter
from semguide_core.tables import write_table

AGENTS = ("baseline", "semantic")
TITLES = {"table1_segmentation": "Table 1: segmentation of the canvases against the true foreground",
          "table2_foreground_l2": "Table 2: foreground L2 distance",
          "whole_image": "Whole-image distance",
          "painting_order": "Painting order (Sec. 7.2): share of the blank canvas' error gone after n strokes",
          "painting_sequence": "Painting sequence (Sec. 7.2): top-down or bottom-up, on the images both agents "
                               "paint equally well"}


def as_float(images: np.ndarray) -> torch.Tensor:
    """uint8 [..., H, W, 3] -> float [..., 3, H, W] in [0, 1]."""
    return torch.from_numpy(images).movedim(-1, -3).float() / 255


def read(path: Path):
    """An .npy or .json file of stage paint; missing or broken: a one-line DataError naming it."""
    try:
        return np.load(path) if path.suffix == ".npy" else json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: cannot read ({type(err).__name__}; run `dvc repro paint`)") from None


def load_paintings(folder: Path):
    """One agent's paintings: canvases [N,3,H,W] and frames [N,F,3,H,W] in [0,1], and the frames' counts."""
    return (as_float(read(folder / "canvases.npy")), as_float(read(folder / "frames.npy")),
            read(folder / "frames.json")["counts"])


def scenes_scores(p, scenes: Path, figure: Path):
    """Fig. 4 and the foreground / whole-image L2 of the sample-scenes pass against the true vehicle masks."""
    canvases = {name: load_paintings(scenes / name)[0] for name in AGENTS}
    targets = as_float(read(scenes / "targets.npy"))
    truth = torch.from_numpy(read(scenes / "instances.npy") > 0).float()[:, None]
    comparison_figure(canvases["baseline"], canvases["semantic"], targets, figure, "sample-scenes")
    return {name: {"fg_l2": float(masked_l2(targets, c, truth, p.l2_side).mean()),
                   "l2": float(masked_l2(targets, c, torch.ones_like(truth), p.l2_side).mean())}
            for name, c in canvases.items()} | {"images": len(targets)}


def main(prepared: Path = typer.Option(..., help="the prepared dataset (stage prepare)"),
         extracted_masks: Path = typer.Option(..., help="masks for images without one (stage extract_masks)"),
         paint: Path = typer.Option(..., help="the paintings (stage paint)"),
         segmenter: Path = typer.Option(..., help="the segmenter that scores the canvases"),
         metrics: Path = typer.Option(..., help="the scores (JSON)"),
         tables: Path = typer.Option(..., help="folder of the tables (CSV and Markdown)"),
         compare: Path = typer.Option(..., help="Fig. 3: baseline | semantic | target, test images (PNG)"),
         sequence: Path = typer.Option(..., help="Fig. 6: the canvases as the strokes add up (PNG)"),
         segmentation: Path = typer.Option(..., help="Fig. 7: Fig. 3's images and their segmentation maps (PNG)"),
         compare_scenes: Optional[Path] = typer.Option(None, help="Fig. 4: the same for stage paint's "
                                                                  "sample-scenes pass (PNG), when it made one"),
         dataset: Optional[str] = typer.Option(None, help="the dataset's name in the outputs; default: the "
                                                          "`dataset` param (datasets/dvc.yaml gives it)")):
    params = load_params()
    p = params.evaluate
    dataset_name = dataset or params.dataset
    device = pick_device(params.device)
    data = load_prepared(prepared)
    paintings = {name: load_paintings(paint / name) for name in AGENTS}
    idx, counts = read(paint / "baseline" / "idx.npy"), paintings["baseline"][2]
    if not (np.array_equal(read(paint / "semantic" / "idx.npy"), idx) and paintings["semantic"][2] == counts):
        raise DataError(f"{paint}: the agents painted different images or stroke counts (run `dvc repro paint`)")
    if p.sequence_strokes not in counts:
        raise ConfigError(f"params.yaml: evaluate.sequence_strokes = {p.sequence_strokes} is not one of the kept "
                          f"frame counts {counts} (paint.frame_counts)")
    batch = data.tensors(idx)
    # datasets without masks (Stanford Cars): the DeepLabV3 masks of stage extract_masks, as in the paper
    truth = torch.from_numpy(masks_with_extracted(data, extracted_masks)[idx]).float()[:, None]
    targets = batch.images

    model = load_segmenter(segmenter, device)
    scores, predicted = {}, {}
    for name, (canvases, frames, _) in paintings.items():
        predicted[name] = run_batched(model, canvases, 32)  # foreground probability [N, 1, H, W]
        scores[name] = score_agent(targets, canvases, frames, counts, truth, predicted[name], p.l2_side)
    sequences = score_sequences(targets, {name: frames for name, (_, frames, _) in paintings.items()}, counts,
                                truth, p.l2_side, p)
    on_targets = run_batched(model, targets, 32)
    reference = {"seg_accuracy": 100 * float(foreground_accuracy(on_targets[:, 0], truth[:, 0]).mean()),
                 "seg_iou": 100 * float(mask_iou(on_targets[:, 0], truth[:, 0]).mean())}

    scenes = {"scenes": scenes_scores(p, paint / "scenes", compare_scenes)} if compare_scenes else {}
    write_json(metrics, {**scores, "target": reference, "images": len(idx), "dataset": dataset_name,
                         "l2_side": p.l2_side, "painting_sequence": sequences, **scenes})
    for stem, frame in make_tables(scores, reference, sequences, p.sequence_strokes).items():
        write_table(frame, tables / stem, TITLES[stem])

    shown = slice(0, p.figure_images)
    comparison_figure(paintings["baseline"][0][shown], paintings["semantic"][0][shown], batch.images[shown],
                      compare, dataset_name)
    comparison_figure(paintings["baseline"][0][shown], paintings["semantic"][0][shown], batch.images[shown],
                      segmentation, dataset_name,
                      segmentations=(predicted["baseline"][shown], predicted["semantic"][shown], on_targets[shown]))
    # Fig. 6 as the paper selects its images: two that both agents paint equally well (else the first two)
    rows = (sequences["matched"] + [i for i in range(len(idx)) if i not in sequences["matched"]])[:2]
    sequence_figure(paintings["baseline"][1][rows], paintings["semantic"][1][rows], batch.images[rows], counts,
                    sequence)


if __name__ == "__main__":
    run_stage(main)
