"""The common record every loader returns, and the checked file readers the loaders share.

A loader lists a dataset cheaply (annotation files only) as `Record`s; the pixels of one record are read
on demand with `record.read()`, so a real dataset of thousands of images never sits in memory at full
resolution. Every reader turns a missing, corrupt or inconsistent file into a one-line DataError that
names the file.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, UnidentifiedImageError

from semguide_core.errors import DataError


@dataclass(frozen=True)
class Pixels:
    """One image at its native size."""
    image: np.ndarray                 # uint8 [H, W, 3]
    instances: np.ndarray | None      # uint8 [H, W]: 0 = background, k = instance k; None = no masks
    bbox: tuple | None                # normalised (x, y, w, h) from the annotation; None = box of the mask
    part: np.ndarray | None = None    # bool [H, W]: the distinguishing part (sample-birds only)


@dataclass(frozen=True)
class Record:
    """One image of a dataset: its annotations, and `read()` for its pixels."""
    source: str                       # image path relative to the data dir
    split: str                        # 'train' or 'test'
    label: int                        # 0-based class index
    label_name: str
    read: Callable[[], Pixels]


def read_lines(path: Path, columns: int) -> list[list[str]]:
    """A whitespace-separated annotation file, `columns` fields a line (the last one keeps its spaces)."""
    if not path.is_file():
        raise DataError(f"{path}: annotation file not found")
    rows = []
    # utf-8-sig: a byte-order mark (Windows editors write one) is not part of the first id
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split(maxsplit=columns - 1)
        if len(fields) != columns:
            raise DataError(f"{path}:{number}: expected {columns} fields, got {line!r}")
        rows.append(fields)
    return rows


def read_label_image(path: Path, size: tuple[int, int], what: str) -> Image.Image:
    """A mask or label PNG (any mode), checked to be `size` = (width, height) like its image."""
    image = _open(path, what)
    if image.size != size:
        raise DataError(f"{path}: {what} size {image.size[0]}x{image.size[1]} differs from its image "
                        f"{size[0]}x{size[1]}")
    return image


def read_mask(path: Path, size: tuple[int, int]) -> np.ndarray:
    """A foreground mask PNG as bool [H, W]; soft masks (CUB's are annotator votes 0..255) count above half."""
    return np.asarray(read_label_image(path, size, "mask").convert("L")) > 127


def _open(path: Path, what: str) -> Image.Image:
    if not path.is_file():
        raise DataError(f"{path}: {what} not found")
    try:
        image = Image.open(path)
        image.load()  # decode now, so a truncated file fails here and not later
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise DataError(f"{path}: cannot read {what} ({type(err).__name__})") from None
    return image


def pixel_box(x: float, y: float, w: float, h: float, width: int, height: int) -> tuple:
    """A pixel box (top-left corner + size) as a normalised (x, y, w, h), clipped to the image."""
    x0, y0 = np.clip([x / width, y / height], 0.0, 1.0)
    x1, y1 = np.clip([(x + w) / width, (y + h) / height], 0.0, 1.0)
    return (float(x0), float(y0), float(x1 - x0), float(y1 - y0))


def mask_pixel_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """The tightest box (x, y, w, h) in whole pixels around the true pixels of `mask` [H, W]; None if none.

    The one mask-to-box rule of the project: the loaders, the sample generator and (through
    `semantics.boxes.mask_to_bbox`) Psi, painting and the agents' instances all use it.
    """
    rows, cols = np.nonzero(mask)
    if len(rows) == 0:
        return None
    return int(cols.min()), int(rows.min()), int(cols.max() + 1 - cols.min()), int(rows.max() + 1 - rows.min())


def mask_box(mask: np.ndarray) -> tuple:
    """The normalised (x, y, w, h) of the pixels where `mask` is true; (0, 0, 0, 0) for an empty mask."""
    box = mask_pixel_box(mask)
    if box is None:
        return (0.0, 0.0, 0.0, 0.0)
    height, width = mask.shape
    return pixel_box(*box, width, height)
