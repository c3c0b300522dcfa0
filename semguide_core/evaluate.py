"""The paper's evaluation (Appendix A, Sec. 7.2) of the paintings that stage `paint` made, and its figures.

- Table 1 (semantic similarity): a segmenter (DeepLabV3, stage train_segmenter) segments each final
  canvas; its foreground (probability > 0.5) is scored against the true foreground mask of the target:
  accuracy = share of the true foreground pixels that are detected, |P & T| / |T|, and IoU. The same
  segmenter on the targets themselves is the reference row: no painting can be expected to beat it.
- Table 2 (foreground resemblance): foreground L2 as the paper reports it, the Frobenius norm
  ||S * (I - C)||_F with images in [0, 1] resized to 128 x 128 (`l2_side`) and S the true mask; and,
  independent of image size and object area, the per-pixel RMSE over the foreground pixels and channels.
- Whole image: L2 (Frobenius, at `l2_side`) and PSNR at the canvas size.
- Painting order (Sec. 7.2): after each kept stroke count n, the share of the blank canvas' error that is
  gone, separately inside and outside the true foreground: progress(n) = 1 - ||M * (I - C_n)|| / ||M * I||.
  A top-down painter (the paper's claim for semantic guidance) gets the foreground's progress early.
  Summary: the stroke count at which the mean foreground (background) error first falls below
  `order_fraction` of its blank-canvas value.

Every score is computed per image and averaged over the test images that have a true mask.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from semguide_core.figures import save_grid
from semguide_core.metrics import psnr
from semguide_core.runtime import atomic_path
from semguide_core.semantics.boxes import mask_iou


# ------------------------------------------------------------------------------------------- metrics
def foreground_accuracy(predicted: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Share of the true foreground pixels detected: |P & T| / |T| per image, masks [N, H, W] (> 0.5 = on).

    An image without true foreground scores 1 when nothing is detected, 0 otherwise.
    """
    p, t = predicted > 0.5, truth > 0.5
    hits = (p & t).flatten(1).sum(1).float()
    total = t.flatten(1).sum(1).float()
    empty_ok = (~p).flatten(1).all(1).float()
    return torch.where(total > 0, hits / total.clamp(min=1), empty_ok)


def resized(x: torch.Tensor, side: int, nearest: bool = False) -> torch.Tensor:
    """Images or masks [N, C, H, W] at side x side: bilinear (antialiased when shrinking), or nearest when
    enlarging a mask, so that a binary mask stays binary."""
    if x.shape[-1] == side:
        return x
    if nearest and side > x.shape[-1]:
        return F.interpolate(x, size=(side, side), mode="nearest")
    return F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False, antialias=x.shape[-1] > side)


def masked_l2(target: torch.Tensor, canvas: torch.Tensor, mask: torch.Tensor, side: int | None = None) -> torch.Tensor:
    """||M * (I - C)||_F per image; images [N,3,H,W] and mask [N,1,H,W] in [0,1], resized to `side` first.

    With M = S (the true mask) and side = 128 this is the paper's foreground L2 (Table 2).
    """
    if side is not None:
        target, canvas, mask = resized(target, side), resized(canvas, side), resized(mask, side, nearest=True)
    return (mask * (target - canvas)).flatten(1).norm(dim=1)


def foreground_rmse(target: torch.Tensor, canvas: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Root mean squared error over the foreground pixels (weights = mask [N,1,H,W]) and the 3 channels."""
    squared = (mask * (target - canvas) ** 2).flatten(1).sum(1)
    count = 3 * mask.flatten(1).sum(1)
    return (squared / count.clamp(min=1e-12)).sqrt()


def progress(target: torch.Tensor, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Share of the blank canvas' error inside `mask` gone after each frame: [N, F] from frames [N,F,3,H,W].

    progress = 1 - ||M * (I - C_n)||_F / ||M * I||_F (the blank canvas is black, C_0 = 0).
    """
    start = (mask * target).flatten(1).norm(dim=1)
    after = (mask[:, None] * (target[:, None] - frames)).flatten(2).norm(dim=2)
    return 1 - after / start[:, None].clamp(min=1e-12)


def strokes_to_fraction(counts: list[int], mean_progress: np.ndarray, fraction: float) -> float | None:
    """The first stroke count whose mean error is at most `fraction` of the blank canvas' (None if none)."""
    for count, done in zip(counts, mean_progress):
        if 1 - done <= fraction:
            return int(count)
    return None


# ------------------------------------------------------------------------------------- one agent's scores
def score_agent(target, canvas, frames, counts, truth, predicted, l2_side: int, fraction: float) -> dict:
    """All scores of one agent's paintings. target, canvas [N,3,H,W]; frames [N,F,3,H,W] after `counts`
    strokes; truth [N,1,H,W] true mask; predicted [N,1,H,W] the segmenter's foreground probability."""
    fg_progress = progress(target, frames, truth).mean(0).numpy()
    bg_progress = progress(target, frames, 1 - truth).mean(0).numpy()
    return {
        "seg_accuracy": 100 * float(foreground_accuracy(predicted[:, 0], truth[:, 0]).mean()),
        "seg_iou": 100 * float(mask_iou(predicted[:, 0], truth[:, 0]).mean()),
        "fg_l2": float(masked_l2(target, canvas, truth, l2_side).mean()),
        "fg_rmse": float(foreground_rmse(target, canvas, truth).mean()),
        "l2": float(masked_l2(target, canvas, torch.ones_like(truth), l2_side).mean()),
        "psnr": float(psnr(target, canvas).clamp(max=99).mean()),
        "fg_strokes_to_fraction": strokes_to_fraction(counts, fg_progress, fraction),
        "bg_strokes_to_fraction": strokes_to_fraction(counts, bg_progress, fraction),
        "fg_progress": {str(c): round(float(v), 4) for c, v in zip(counts, fg_progress)},
        "bg_progress": {str(c): round(float(v), 4) for c, v in zip(counts, bg_progress)},
    }


# ----------------------------------------------------------------------------------------------- tables
def tables(scores: dict, reference: dict) -> dict[str, pd.DataFrame]:
    """Table 1, Table 2, whole image and painting order as DataFrames, one row per agent."""
    agents = list(scores)
    table1 = pd.DataFrame(
        [[name, scores[name]["seg_accuracy"], scores[name]["seg_iou"]] for name in agents]
        + [["target image (segmenter reference)", reference["seg_accuracy"], reference["seg_iou"]]],
        columns=["method", "accuracy (%)", "IoU (%)"])
    table2 = pd.DataFrame([[name, scores[name]["fg_l2"], scores[name]["fg_rmse"]] for name in agents],
                          columns=["method", "foreground L2 (Frobenius, 128 px)", "foreground RMSE"])
    whole = pd.DataFrame([[name, scores[name]["l2"], scores[name]["psnr"]] for name in agents],
                         columns=["method", "L2 (Frobenius, 128 px)", "PSNR (dB)"])
    counts = list(scores[agents[0]]["fg_progress"])
    order = pd.DataFrame(
        [[name, region] + [100 * scores[name][f"{region}_progress"][c] for c in counts]
         + [scores[name][f"{region}_strokes_to_fraction"]]
         for name in agents for region in ("fg", "bg")],
        columns=["method", "region"] + [f"{c} strokes (%)" for c in counts] + ["strokes to fraction"])
    return {"table1_segmentation": table1, "table2_foreground_l2": table2, "whole_image": whole,
            "painting_order": order}


def write_table(frame: pd.DataFrame, stem, title: str) -> None:
    """frame as stem.csv and stem.md (a Markdown table under a heading)."""
    with atomic_path(f"{stem}.csv") as tmp:
        frame.to_csv(tmp, index=False, float_format="%.4g")
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    with atomic_path(f"{stem}.md") as tmp:
        tmp.write_text("\n".join([f"### {title}", "", header, rule, *rows]) + "\n")


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


# ---------------------------------------------------------------------------------------------- figures
def comparison_figure(baseline: torch.Tensor, semantic: torch.Tensor, target: torch.Tensor, path, title: str) -> None:
    """Fig. 3 / Fig. 4 layout: one row per image, baseline | semantic | target. Images [N,3,H,W]."""
    rows = [[b, s, t] for b, s, t in zip(baseline, semantic, target)]
    save_grid(rows, path, col_titles=["baseline", "semantic guidance", f"target ({title})"])


def sequence_figure(baseline_frames: torch.Tensor, semantic_frames: torch.Tensor, target: torch.Tensor,
                    counts: list[int], path) -> None:
    """Fig. 6 layout: per image a baseline row and a semantic row, target then the canvas after each count.
    Frames [N, F, 3, H, W]."""
    rows, names = [], []
    for b, s, t in zip(baseline_frames, semantic_frames, target):
        rows += [[t, *b], [t, *s]]
        names += ["baseline", "semantic"]
    save_grid(rows, path, col_titles=["target"] + [f"{c} strokes" for c in counts], row_titles=names)
