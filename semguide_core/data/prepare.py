"""Turn a dataset's records into the prepared dataset: every image, mask and part resized to the canvas."""
from __future__ import annotations

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from semguide_core.data.prepared import INDEX_COLUMNS, SPLITS, PreparedDataset
from semguide_core.data.record import Record, mask_box
from semguide_core.errors import DataError


def select(records: list[Record], max_images: int) -> list[Record]:
    """`max_images` records evenly spaced through the list (0 = all), so every class and split stays in."""
    if max_images == 0 or max_images >= len(records):
        return records
    keep = np.unique(np.linspace(0, len(records) - 1, max_images).round().astype(int))
    return [records[i] for i in keep]


def prepare(records: list[Record], canvas: int, where: str) -> tuple[PreparedDataset, int]:
    """Read and resize every record; drop images whose masks leave no foreground at the canvas size.

    Returns the dataset and the number of images dropped. `where` names the dataset in errors.
    """
    for split in SPLITS:
        if not any(r.split == split for r in records):
            raise DataError(f"{where}: the {split} split is empty")
    images = np.zeros((len(records), canvas, canvas, 3), np.uint8)
    instances = np.zeros((len(records), canvas, canvas), np.uint8)
    parts = np.zeros_like(instances)
    rows = []
    for record in tqdm(records, desc=f"prepare {where}", unit="img"):
        pixels = record.read()
        i = len(rows)
        images[i] = resize_image(pixels.image, canvas)
        bbox = pixels.bbox
        if pixels.instances is not None:
            instances[i] = resize_labels(pixels.instances, canvas)
            if not instances[i].any():
                continue  # no foreground left (e.g. a VKITTI frame without vehicles)
            bbox = bbox or mask_box(pixels.instances > 0)
        bbox = check_bbox(bbox, record.source)
        if pixels.part is not None:
            parts[i] = resize_fraction(pixels.part, canvas) >= 0.5
        rows.append([i, record.split, record.label, record.label_name, record.source,
                     pixels.instances is not None, *bbox, int(instances[i].max())])
    n = len(rows)
    index = pd.DataFrame(rows, columns=INDEX_COLUMNS)
    for split in SPLITS:
        if not (index["split"] == split).any():
            raise DataError(f"{where}: the {split} split is empty after dropping images without foreground")
    prepared = PreparedDataset(index=index, images=images[:n], masks=(instances[:n] > 0).astype(np.uint8),
                               instances=instances[:n], parts=parts[:n])
    return prepared, len(records) - n


def check_bbox(bbox: tuple | None, source: str) -> tuple:
    """A record's normalised (x, y, w, h), checked to have a positive size inside the image; None = whole image."""
    if bbox is None:
        return (0.0, 0.0, 1.0, 1.0)
    x, y, w, h = bbox
    tolerance = 1e-6
    if not (w > 0 and h > 0 and x >= -tolerance and y >= -tolerance and x + w <= 1 + tolerance
            and y + h <= 1 + tolerance):
        raise DataError(f"{source}: bounding box (x, y, w, h) = ({x:.3f}, {y:.3f}, {w:.3f}, {h:.3f}) in image "
                        "fractions is empty or outside the image")
    return bbox


def resize_image(image: np.ndarray, canvas: int) -> np.ndarray:
    """RGB to canvas x canvas (the aspect ratio is not kept, as in the published code)."""
    return np.asarray(Image.fromarray(image).resize((canvas, canvas), Image.Resampling.LANCZOS))


def resize_fraction(mask: np.ndarray, canvas: int) -> np.ndarray:
    """The fraction of each canvas pixel that `mask` covers (area average), float [canvas, canvas]."""
    image = Image.fromarray(mask.astype(np.float32), mode="F")
    return np.asarray(image.resize((canvas, canvas), Image.Resampling.BOX))


def resize_labels(labels: np.ndarray, canvas: int) -> np.ndarray:
    """Resize a label image (0 = background, k = instance k) by majority per canvas pixel, then number the
    instances still present 1..k' in their original order (small ones can vanish at the canvas size)."""
    present = [k for k in np.unique(labels) if k > 0]
    coverage = np.stack([resize_fraction(labels == k, canvas) for k in [0, *present]])
    winner = coverage.argmax(0)  # 0 = background, j = present[j - 1]
    kept = [j for j in range(1, len(present) + 1) if (winner == j).any()]
    out = np.zeros((canvas, canvas), np.uint8)
    for new, j in enumerate(kept, start=1):
        out[winner == j] = new
    return out
