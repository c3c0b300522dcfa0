"""Datasets the semantic stages read besides the prepared one.

`train_segmenter` trains on several datasets with masks and `extract_masks` segments a dataset without
them (Stanford Cars); both read them through the data loaders and resize them to the canvas exactly as
stage `prepare` does, in memory. The true masks of sample-cars are kept outside its dataset folder, in
`<folder>-truth/` with the image's relative path and a .png suffix, so extracted masks can be scored.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from semguide_core.config import Params
from semguide_core.data.datasets import list_records
from semguide_core.data.prepare import prepare, resize_fraction, select
from semguide_core.data.prepared import PreparedBatch, PreparedDataset, load_prepared
from semguide_core.data.record import read_mask
from semguide_core.errors import DataError
from semguide_core.images import open_image


def prepare_in_memory(name: str, params: Params, max_images: int) -> PreparedDataset:
    """Dataset `name` from params.prepare.data_dir at the canvas size (`max_images` evenly spaced, 0 = all)."""
    records = list_records(name, params.prepare.data_dir, params.prepare.test_fraction)
    prepared, _ = prepare(select(records, max_images), params.canvas, name)
    return prepared


def truth_path(data_dir: str | Path, source: str) -> Path:
    """Where the kept-aside true mask of image `source` (relative to the data dir) lives."""
    folder, *rest = Path(source).parts
    return Path(data_dir, folder + "-truth", *rest).with_suffix(".png")


def kept_aside_masks(data_dir: str | Path, dataset: PreparedDataset) -> np.ndarray | None:
    """The true masks [N, H, W] in {0, 1} at the canvas size, or None when the dataset has no truth folder."""
    sources = dataset.index["source"]
    if not truth_path(data_dir, sources.iloc[0]).parent.is_dir():
        return None
    masks = np.zeros(dataset.masks.shape, np.uint8)
    for i, source in enumerate(sources):
        path = truth_path(data_dir, source)
        mask = read_mask(path, size=open_image(Path(data_dir, source)).size)  # upright, as prepare read it
        masks[i] = resize_fraction(mask, dataset.canvas) >= 0.5
    return masks


def masks_with_extracted(dataset: PreparedDataset, extracted_dir: str | Path) -> np.ndarray:
    """The prepared masks [N, H, W], with the images that have none (has_mask false: Stanford Cars) filled
    in from stage extract_masks' output, matched by source path."""
    masks = np.array(dataset.masks)
    missing = np.flatnonzero(~dataset.index["has_mask"].to_numpy())
    if len(missing) == 0:
        return masks
    index_path, masks_path = Path(extracted_dir) / "index.csv", Path(extracted_dir) / "masks.npy"
    for path in (index_path, masks_path):
        if not path.is_file():
            raise DataError(f"{path}: not found (run `dvc repro extract_masks`)")
    row_of = {source: row for row, source in enumerate(pd.read_csv(index_path)["source"])}
    extracted = np.load(masks_path, mmap_mode="r")
    for i in missing:
        source = dataset.index.at[i, "source"]
        if source not in row_of:
            raise DataError(f"{index_path}: no extracted mask for {source} (set extract_masks.dataset to the "
                            f"`dataset` param, and the same prepare.max_images)")
        masks[i] = extracted[row_of[source]]
    return masks


@dataclass(frozen=True)
class ObjectData:
    """What Psi and the expert learn from: every prepared image as tensors, object masks, the splits."""
    data: PreparedDataset
    every: PreparedBatch   # all prepared images, in idx order
    masks: torch.Tensor    # [N, 1, H, W] in {0, 1}: true masks, extracted ones where the dataset has none
    train: np.ndarray      # idx of the train split
    test: np.ndarray       # idx of the test split

    def identity(self) -> tuple:
        """What a training checkpoint must have been trained on to be resumed (with the params)."""
        return self.data.images.shape, self.data.index["source"].tolist()


def load_object_data(prepared_dir: str | Path, extracted_dir: str | Path) -> ObjectData:
    data = load_prepared(prepared_dir)
    masks = torch.from_numpy(masks_with_extracted(data, extracted_dir)).unsqueeze(1).float()
    return ObjectData(data, data.tensors(np.arange(len(data))), masks, data.split("train"), data.split("test"))
