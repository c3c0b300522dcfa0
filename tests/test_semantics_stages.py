"""The five semantic stages end to end with `dvc repro` on tiny params, and their one-line errors."""
import json

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import stage_command

TINY = {
    "canvas": 32,
    "prepare": {"max_images": 40},
    "segmenter": {"datasets": ["sample-birds", "sample-scenes"], "max_images": 24, "resolution": 32,
                  "width_mult": 0.25, "aspp_channels": 8, "batch_size": 4, "steps": 3, "checkpoint_every": 2,
                  "weights": "none"},
    "psi": {"widths": [4, 8], "batch_size": 4, "steps": 3},
    "expert": {"width_mult": 0.25, "depth_mult": 0.25, "resolution": 32, "batch_size": 4, "steps": 3},
    "gbp": {"figure_images": 2},
}


@pytest.mark.slow
def test_semantic_stages_run_end_to_end(repo_copy):
    repo = repo_copy(extra=("data",))
    repo.set_params(TINY)
    repo.run("dvc", "repro", "gbp")
    root = repo.root
    n = len(pd.read_csv(root / "artifacts/prepared/index.csv"))

    psi_masks = np.load(root / "artifacts/psi/masks.npy")
    boxes = pd.read_csv(root / "artifacts/psi/bboxes.csv")
    maps = np.load(root / "artifacts/gbp/maps.npy")
    assert psi_masks.shape == maps.shape == (n, 32, 32) and psi_masks.dtype == maps.dtype == np.float16
    assert list(boxes.columns) == ["idx", "x", "y", "w", "h"] and len(boxes) == n
    assert 0 <= maps.min() and maps.max() <= 1 and maps.max() > 0
    extracted = np.load(root / "artifacts/extracted_masks/masks.npy")
    assert extracted.shape[1:] == (32, 32) and set(np.unique(extracted)) <= {0, 1}

    metrics = {name: json.loads((root / f"metrics/{name}.json").read_text())
               for name in ("segmenter", "extract_masks", "psi", "expert", "gbp")}
    assert set(metrics["segmenter"]["heldout_iou"]) == {"sample-birds", "sample-scenes"}
    assert 0 <= metrics["extract_masks"]["iou_test"] <= 1   # sample-cars' kept-aside masks were found
    assert 0 <= metrics["psi"]["mask_iou"] <= 1 and 0 <= metrics["psi"]["bbox_iou"] <= 1
    assert metrics["expert"]["chance"] == 1 / 8
    assert metrics["gbp"]["part_area_share"] > 0 and metrics["gbp"]["part_ratio"] is not None
    assert (root / "figures/semantics.png").stat().st_size > 0
    for stage in ("train_segmenter", "train_psi", "train_expert"):  # cleared once the outputs were written
        assert not (root / "checkpoints" / f"{stage}.pt").exists()

    # a changed expert param invalidates train_expert (and so gbp) only
    repo.set_params({"expert": {"dropout": 0.1}})
    out = repo.run("dvc", "status").stdout
    assert "train_expert:" in out
    assert not any(f"{stage}:" in out for stage in ("train_segmenter", "extract_masks", "train_psi", "prepare"))

    # models load back through the API paint and evaluate use
    from semguide_core.semantics.expert import gbp_maps, load_expert
    from semguide_core.semantics.psi import load_psi
    from semguide_core.semantics.segmenter import load_segmenter
    images = torch.rand(2, 3, 32, 32)
    masks, bboxes = load_psi(root / "models/psi.pt")(images)
    assert masks.shape == (2, 1, 32, 32) and bboxes.shape == (2, 4)
    assert gbp_maps(load_expert(root / "models/expert.pt"), images, masks, bboxes).shape == (2, 1, 32, 32)
    assert load_segmenter(root / "models/segmenter.pt")(images).shape == (2, 1, 32, 32)

    # a missing or mismatched weights file: one line naming it, non-zero exit, previous outputs kept
    # (a mismatched file's message is checked in test_semantics_models)
    before = (root / "models/expert.pt").read_bytes()
    repo.set_params({"expert": {"weights": "missing_b0.pth"}})
    result = repo.run("python", *stage_command("train_expert"), check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "error: missing_b0.pth: EfficientNet-B0 ImageNet weights not found"
    assert (root / "models/expert.pt").read_bytes() == before
    (root / "models/segmenter.pt").unlink()
    result = repo.run("python", *stage_command("extract_masks"), check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == "error: models/segmenter.pt: segmenter not found"
