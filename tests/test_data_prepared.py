"""The prepared-dataset reader: round trip, tensors, bad folders."""
import numpy as np
import pandas as pd
import pytest
import torch

from semguide_core.data.prepared import INDEX_COLUMNS, PreparedDataset, load_prepared, write_prepared
from semguide_core.errors import DataError


def tiny_prepared(directory, n=3, side=8):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, side, side, 3), dtype=np.uint8)
    instances = np.zeros((n, side, side), np.uint8)
    instances[0, 1:3, 1:3] = 1
    instances[0, 5:7, 4:8] = 2
    instances[1, 2:6, 2:6] = 1
    masks = (instances > 0).astype(np.uint8)
    parts = np.zeros_like(masks)
    parts[1, 2, 2] = 1
    index = pd.DataFrame({
        "idx": range(n), "split": ["train", "test", "train"], "label": [0, 2, 1],
        "label_name": ["a", "c", "b"], "source": [f"img{i}.jpg" for i in range(n)],
        "has_mask": [True, True, False], "bbox_x": [0.125, 0.25, 0.0], "bbox_y": [0.125, 0.25, 0.0],
        "bbox_w": [0.875, 0.5, 1.0], "bbox_h": [0.75, 0.5, 1.0], "n_instances": [2, 1, 0]})[INDEX_COLUMNS]
    write_prepared(directory, PreparedDataset(index, images, masks, instances, parts))
    return images, masks, instances


def test_round_trip_and_tensors(tmp_path):
    images, masks, instances = tiny_prepared(tmp_path / "prepared")
    ds = load_prepared(tmp_path / "prepared")
    assert len(ds) == 3 and ds.canvas == 8 and ds.n_classes == 3
    assert list(ds.split("train")) == [0, 2] and list(ds.split("test")) == [1]
    batch = ds.tensors([2, 0])
    assert batch.images.shape == (2, 3, 8, 8) and batch.images.dtype == torch.float32
    assert torch.allclose(batch.images[1], torch.from_numpy(images[0]).permute(2, 0, 1).float() / 255)
    assert batch.masks.shape == (2, 1, 8, 8) and batch.masks[1].sum() == masks[0].sum() == 12
    assert batch.parts.sum() == 0 and batch.instances.shape == (2, 8, 8)
    assert batch.labels.tolist() == [1, 0] and batch.has_mask.tolist() == [False, True]
    assert torch.allclose(batch.bboxes[1], torch.tensor([0.125, 0.125, 0.875, 0.75]))
    inst = ds.instance_masks(0)
    assert inst.shape == (2, 8, 8) and inst[0].sum() == 4 and inst[1].sum() == 8
    assert ds.instance_masks(2).shape == (0, 8, 8)


def test_missing_file_names_it(tmp_path):
    tiny_prepared(tmp_path / "prepared")
    (tmp_path / "prepared" / "parts.npy").unlink()
    with pytest.raises(DataError, match="parts.npy"):
        load_prepared(tmp_path / "prepared")
    with pytest.raises(DataError, match="index.csv"):
        load_prepared(tmp_path / "nowhere")


def test_shape_mismatch_names_file(tmp_path):
    tiny_prepared(tmp_path / "prepared")
    np.save(tmp_path / "prepared" / "masks.npy", np.zeros((3, 4, 4), np.uint8))
    with pytest.raises(DataError, match="masks.npy"):
        load_prepared(tmp_path / "prepared")
