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
- Painting sequence (Sec. 7.2, Fig. 6, top-down vs bottom-up): on the images whose final whole-image L2
  is most alike for both agents (the share `matched_share` of the test images with the smallest gap, as
  the paper selects images both agents paint equally well), the object's
  progress after `sequence_strokes` strokes measured twice: on its coarse structure (the images blurred,
  Gaussian sigma = `coarse_sigma` x side, against the object's flat mean colour) and on its detail (image
  minus its blur: edges, small high-contrast parts). A top-down painter has much of the coarse structure
  and little detail early: top-down index = coarse progress - detail progress, in points.

Every score is computed per image and averaged over the test images that have a true mask.
"""
from __future__ import annotations

import math

import pandas as pd
import torch
import torch.nn.functional as F
from torchvision.transforms.functional import gaussian_blur

from semguide_core.figures import save_grid
from semguide_core.metrics import psnr
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


def coarse_and_detail(images: torch.Tensor, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """images [..., 3, H, W] split into coarse structure (Gaussian blur, sigma in pixels) and detail (the rest)."""
    radius = max(1, math.ceil(3 * sigma))
    flat = images.reshape(-1, *images.shape[-3:])
    coarse = gaussian_blur(flat, [2 * radius + 1] * 2, [sigma] * 2).reshape(images.shape)
    return coarse, images - coarse


def sequence_progress(target: torch.Tensor, frames: torch.Tensor, mask: torch.Tensor, sigma: float):
    """The object's progress on its coarse structure and on its detail, each [N, F] (frames [N,F,3,H,W]).

    Coarse: 1 - ||M * (c(I) - c(C_n))|| / ||M * (c(I) - m)||, c the blur and m the object's mean colour, so
    a canvas of the object's flat colour scores 0 and the black canvas below 0: what counts is the spatial
    structure, not the mean colour that any first stroke gets. Detail: `progress` on I - c(I), which the
    black and flat canvases both lack (0); detail painted wrong (false edges) makes it negative.
    """
    (coarse_target, detail_target), (coarse_frames, detail_frames) = (coarse_and_detail(x, sigma) for x in (target, frames))
    flat = (mask * target).sum((-2, -1), keepdim=True) / mask.sum((-2, -1), keepdim=True).clamp(min=1e-12)
    return (progress(coarse_target - flat, coarse_frames - flat[:, None], mask),
            progress(detail_target, detail_frames, mask))


def matched_images(l2_a: torch.Tensor, l2_b: torch.Tensor, share: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The images two agents paint most equally well (Sec. 7.2): the ceil(share x N) with the smallest gap
    |a - b| / ((a + b) / 2) between their final L2 (ties: the first). Returns their indices and gaps."""
    gap = (l2_a - l2_b).abs() / ((l2_a + l2_b) / 2).clamp(min=1e-12)
    keep = math.ceil(share * len(gap))
    order = torch.sort(gap, stable=True).indices[:keep]
    return order, gap[order]


# ------------------------------------------------------------------------------------- one agent's scores
def score_agent(target, canvas, frames, counts, truth, predicted, l2_side: int) -> dict:
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
        "fg_progress": {str(c): round(float(v), 4) for c, v in zip(counts, fg_progress)},
        "bg_progress": {str(c): round(float(v), 4) for c, v in zip(counts, bg_progress)},
    }


def score_sequences(target, frames: dict, counts: list[int], truth, l2_side: int, p) -> dict:
    """Sec. 7.2's comparison of two agents' painting sequences (frames {name: [N,F,3,H,W]}, the last frame
    the final canvas) on the images both paint equally well: per agent the object's coarse-structure and
    detail progress after p.sequence_strokes strokes and at the end, and the top-down index."""
    first, second = (masked_l2(target, f[:, -1], torch.ones_like(truth), l2_side) for f in frames.values())
    matched, gap = matched_images(first, second, p.matched_share)
    early, sigma = counts.index(p.sequence_strokes), p.coarse_sigma * target.shape[-1]
    scores = {"images": len(matched), "matched": matched.tolist(), "l2_gap": 100 * float(gap.mean())}
    for name, f in frames.items():
        coarse, detail = (x[matched].mean(0) for x in sequence_progress(target, f, truth, sigma))
        scores[name] = {"coarse_early": 100 * float(coarse[early]), "detail_early": 100 * float(detail[early]),
                        "coarse_end": 100 * float(coarse[-1]), "detail_end": 100 * float(detail[-1]),
                        "top_down_index": 100 * float(coarse[early] - detail[early])}
    return scores


# ----------------------------------------------------------------------------------------------- tables
def tables(scores: dict, reference: dict, sequences: dict, sequence_strokes: int) -> dict[str, pd.DataFrame]:
    """Table 1, Table 2, whole image, painting order and painting sequence as DataFrames, one row per agent."""
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
         for name in agents for region in ("fg", "bg")],
        columns=["method", "region"] + [f"{c} strokes (%)" for c in counts])
    n, keys = sequence_strokes, ("coarse_early", "detail_early", "coarse_end", "detail_end", "top_down_index")
    sequence = pd.DataFrame(
        [[name, sequences["images"], sequences["l2_gap"], *(sequences[name][k] for k in keys)] for name in agents],
        columns=["method", "matched images", "their L2 gap (%)", f"coarse structure after {n} strokes (%)",
                 f"detail after {n} strokes (%)", "coarse structure at the end (%)", "detail at the end (%)",
                 "top-down index (points)"])
    return {"table1_segmentation": table1, "table2_foreground_l2": table2, "whole_image": whole,
            "painting_order": order, "painting_sequence": sequence}


# ---------------------------------------------------------------------------------------------- figures
def comparison_figure(baseline: torch.Tensor, semantic: torch.Tensor, target: torch.Tensor, path, title: str,
                      segmentations: tuple | None = None) -> None:
    """Fig. 3 / Fig. 4 layout: one row per image, baseline | semantic | target. Images [N,3,H,W].

    With `segmentations`, the segmenter's foreground probability [N,1,H,W] of each of the three, Fig. 7's
    layout: each row followed by the segmentation maps of its images.
    """
    rows = []
    for i, images in enumerate(zip(baseline, semantic, target)):
        rows.append(list(images))
        if segmentations is not None:
            rows.append([maps[i, 0] for maps in segmentations])
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
