"""What stage `prepare` reports about a prepared dataset: metrics/data.json and the contact sheet."""
from __future__ import annotations


import numpy as np
from PIL import Image, ImageDraw
from skimage.segmentation import find_boundaries

from semguide_core.data.prepared import PreparedDataset

MASK_COLOUR, PART_COLOUR, BOX_COLOUR = (255, 230, 0), (0, 255, 255), (255, 40, 40)


def summarise(ds: PreparedDataset, dataset: str, dropped: int) -> dict:
    """Counts, class counts, and the distribution of foreground size (fractions of the canvas)."""
    index = ds.index
    with_mask = index["has_mask"].to_numpy()
    mask_area = ds.masks[with_mask].mean(axis=(1, 2)) if with_mask.any() else np.zeros(0)
    bbox_area = (index["bbox_w"] * index["bbox_h"]).to_numpy()
    return {
        "dataset": dataset,
        "canvas": ds.canvas,
        "n_images": len(ds),
        "n_train": int((index["split"] == "train").sum()),
        "n_test": int((index["split"] == "test").sum()),
        "n_dropped_no_foreground": dropped,
        "n_classes": int(index["label"].nunique()),
        "class_counts": {str(k): int(v) for k, v in index["label_name"].value_counts().sort_index().items()},
        "has_mask_fraction": float(with_mask.mean()),
        "mask_area": _distribution(mask_area),
        "bbox_area": _distribution(bbox_area),
        "instances": _distribution(index["n_instances"].to_numpy()),
        "part_area": _distribution(ds.parts.mean(axis=(1, 2))) if ds.parts.any() else {},
    }


def _distribution(values: np.ndarray) -> dict:
    if len(values) == 0:
        return {}
    q = np.quantile(values, [0.0, 0.05, 0.5, 0.95, 1.0])
    return {"mean": round(float(np.mean(values)), 4),
            **{name: round(float(v), 4) for name, v in zip(["min", "p05", "median", "p95", "max"], q)}}


def contact_sheet(ds: PreparedDataset, count: int = 32, columns: int = 8) -> Image.Image:
    """A grid of prepared images, evenly spaced through the dataset, with the mask outline (yellow), the
    distinguishing part (cyan), the bbox (red) and the label."""
    scale = max(1, 128 // ds.canvas)  # small canvases are blown up so the outlines stay visible
    side = ds.canvas * scale
    chosen = np.unique(np.linspace(0, len(ds) - 1, min(count, len(ds))).round().astype(int))
    rows = -(-len(chosen) // columns)
    sheet = Image.new("RGB", (columns * side, rows * side))
    for n, i in enumerate(chosen):
        tile = np.repeat(np.repeat(ds.images[i], scale, 0), scale, 1).copy()
        for labels, colour in [(ds.instances[i], MASK_COLOUR), (ds.parts[i], PART_COLOUR)]:
            big = np.repeat(np.repeat(labels, scale, 0), scale, 1)
            tile[find_boundaries(big, mode="inner")] = colour
        tile = Image.fromarray(tile)
        draw = ImageDraw.Draw(tile)
        row = ds.index.iloc[i]
        x, y, w, h = (row[k] * side for k in ("bbox_x", "bbox_y", "bbox_w", "bbox_h"))
        draw.rectangle([x, y, x + w - 1, y + h - 1], outline=BOX_COLOUR)
        draw.text((2, 2), f"{row['split']} {row['label_name'][:18]}", fill=(255, 255, 255))
        sheet.paste(tile, ((n % columns) * side, (n // columns) * side))
    return sheet
