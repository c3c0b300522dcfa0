"""The prepared dataset: every image of the chosen dataset resized to the canvas, written by stage `prepare`.

Layout of `artifacts/prepared/` (the contract in docs/architecture.md):

- `index.csv`: one row per image, `idx, split, label, label_name, source, has_mask,
  bbox_x, bbox_y, bbox_w, bbox_h, n_instances` (bbox normalised, top-left corner + size).
- `images.npy` uint8 [N, H, W, 3]; `masks.npy` uint8 [N, H, W] in {0, 1} (foreground union, zeros where
  `has_mask` is false); `instances.npy` uint8 [N, H, W] (0 = background, k = instance k);
  `parts.npy` uint8 [N, H, W] (the distinguishing part; sample-birds only, zeros elsewhere).

Row `idx` of index.csv is row `idx` of every array. Other stages read it with `load_prepared(dir)` and
turn rows into float tensors with `PreparedDataset.tensors(idx)`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from semguide_core.errors import DataError
from semguide_core.runtime import atomic_path

INDEX_COLUMNS = ["idx", "split", "label", "label_name", "source", "has_mask",
                 "bbox_x", "bbox_y", "bbox_w", "bbox_h", "n_instances"]
ARRAYS = ["images", "masks", "instances", "parts"]
SPLITS = ("train", "test")


@dataclass(frozen=True)
class PreparedBatch:
    """Rows of the prepared dataset as tensors (NCHW, float in [0, 1] unless said otherwise)."""
    images: torch.Tensor     # [B, 3, H, W]
    masks: torch.Tensor      # [B, 1, H, W] foreground union, zeros where has_mask is false
    parts: torch.Tensor      # [B, 1, H, W] distinguishing part (sample-birds), else zeros
    instances: torch.Tensor  # [B, H, W] long, 0 = background, k = instance k
    bboxes: torch.Tensor     # [B, 4] normalised (x, y, w, h)
    labels: torch.Tensor     # [B] long
    has_mask: torch.Tensor   # [B] bool
    idx: torch.Tensor        # [B] long, rows of index.csv

    def to(self, device) -> "PreparedBatch":
        return PreparedBatch(**{name: value.to(device) for name, value in vars(self).items()})


@dataclass(frozen=True)
class PreparedDataset:
    index: pd.DataFrame
    images: np.ndarray      # uint8 [N, H, W, 3]
    masks: np.ndarray       # uint8 [N, H, W]
    instances: np.ndarray   # uint8 [N, H, W]
    parts: np.ndarray       # uint8 [N, H, W]

    def __len__(self) -> int:
        return len(self.index)

    @property
    def canvas(self) -> int:
        return self.images.shape[1]

    @property
    def n_classes(self) -> int:
        return int(self.index["label"].max()) + 1

    def split(self, name: str) -> np.ndarray:
        """The idx values of one split ('train' or 'test')."""
        if name not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {name!r}")
        # a copy: pandas' copy-on-write hands out read-only views, which torch warns about when they index tensors
        return self.index.loc[self.index["split"] == name, "idx"].to_numpy(copy=True)

    def instance_masks(self, i: int) -> np.ndarray:
        """The k instance masks of image i as bool [k, H, W] (k = n_instances, may be 0)."""
        k = int(self.index.at[i, "n_instances"])
        return self.instances[i][None] == np.arange(1, k + 1)[:, None, None]

    def tensors(self, idx, device=None) -> PreparedBatch:
        """Rows `idx` (ints, array or tensor) as a PreparedBatch on `device`."""
        idx = np.asarray(idx.cpu() if torch.is_tensor(idx) else idx, dtype=np.int64).reshape(-1)
        rows = self.index.iloc[idx]
        batch = PreparedBatch(
            images=torch.from_numpy(self.images[idx]).permute(0, 3, 1, 2).float() / 255.0,
            masks=torch.from_numpy(self.masks[idx]).unsqueeze(1).float(),
            parts=torch.from_numpy(self.parts[idx]).unsqueeze(1).float(),
            instances=torch.from_numpy(self.instances[idx]).long(),
            bboxes=torch.tensor(rows[["bbox_x", "bbox_y", "bbox_w", "bbox_h"]].to_numpy(np.float32)),
            labels=torch.tensor(rows["label"].to_numpy(np.int64)),
            has_mask=torch.tensor(rows["has_mask"].to_numpy(bool)),
            idx=torch.from_numpy(idx),
        )
        return batch if device is None else batch.to(device)


def load_prepared(directory: str | Path = "artifacts/prepared") -> PreparedDataset:
    """Read a prepared dataset; a missing or inconsistent file is a one-line DataError naming it."""
    directory = Path(directory)
    index_path = directory / "index.csv"
    if not index_path.is_file():
        raise DataError(f"{index_path}: not found (run `dvc repro prepare`)")
    index = pd.read_csv(index_path)
    missing = [c for c in INDEX_COLUMNS if c not in index.columns]
    if missing:
        raise DataError(f"{index_path}: missing columns {', '.join(missing)}")
    if not np.array_equal(index["idx"].to_numpy(), np.arange(len(index))):
        raise DataError(f"{index_path}: idx must be 0..N-1 in order")
    index["has_mask"] = index["has_mask"].astype(bool)
    arrays = {}
    for name in ARRAYS:
        path = directory / f"{name}.npy"
        if not path.is_file():
            raise DataError(f"{path}: not found (run `dvc repro prepare`)")
        arrays[name] = np.load(path, mmap_mode="r")
        if arrays[name].shape[:3] != arrays["images"].shape[:3] or len(arrays[name]) != len(index):
            raise DataError(f"{path}: shape {arrays[name].shape} does not match images.npy "
                            f"{arrays['images'].shape} / {len(index)} rows of index.csv")
    return PreparedDataset(index=index, **arrays)


def write_prepared(directory: str | Path, dataset: PreparedDataset) -> None:
    """Write the folder atomically: it appears whole or not at all."""
    assert list(dataset.index.columns) == INDEX_COLUMNS, dataset.index.columns
    with atomic_path(directory) as tmp:
        tmp.mkdir(parents=True)
        dataset.index.to_csv(tmp / "index.csv", index=False)
        for name in ARRAYS:
            np.save(tmp / f"{name}.npy", np.ascontiguousarray(getattr(dataset, name), dtype=np.uint8))
