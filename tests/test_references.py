"""Reference canvases (`semguide references`): hand-computed cases, the per-image optimum, the command."""
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import stage_command
from soft_rasteriser import SoftRasteriser
from typer.testing import CliRunner

from semguide_core import metrics as M
from semguide_core import references as R
from semguide_core.cli import app
from semguide_core.data.prepared import INDEX_COLUMNS, PreparedDataset, write_prepared
from semguide_core.renderer import NeuralRenderer, renderer_file
from semguide_core.tables import markdown
from semguide_core.strokes import paint

REPO = Path(__file__).resolve().parents[1]


def half_black_half_white(side=4) -> torch.Tensor:
    image = torch.zeros(1, 3, side, side)
    image[..., side // 2:] = 1.0
    return image


def mean_mse(canvas, target) -> float:
    return M.mse(target, canvas).mean().item()


def test_mean_colour_of_a_two_colour_image():
    target = half_black_half_white()
    canvas = R.mean_colour(target)
    # every pixel 0.5 away from the mean grey: MSE 1/4, PSNR 10 log10(4)
    assert torch.equal(canvas, torch.full_like(target, 0.5))
    assert mean_mse(canvas, target) == pytest.approx(0.25) and M.db(0.25) == pytest.approx(10 * math.log10(4))


def test_mosaic_is_exact_on_constant_blocks_and_averages_each_cell():
    blocks = torch.rand(2, 3, 2, 2, generator=torch.Generator().manual_seed(0))
    target = blocks.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)  # 4x4, constant 2x2 blocks
    assert mean_mse(R.mosaic(target, 2), target) == 0.0 and mean_mse(R.mosaic(target, 4), target) == 0.0
    assert torch.allclose(R.mosaic(target, 1), R.mean_colour(target))
    # a 4x4 image with columns 0, 0, 0, 1: a 2x2 mosaic paints the right half 1/2, errors 1/4 on half the pixels
    target = torch.zeros(1, 3, 4, 4)
    target[..., 3] = 1.0
    assert mean_mse(R.mosaic(target, 2), target) == pytest.approx(1 / 8)
    with pytest.raises(ValueError, match="divisible by 3"):
        R.mosaic(target, 3)


def test_foreground_reference_hand_case():
    targets = torch.tensor([[[[0.0, 1.0, 1.0]], [[0.0, 1.0, 1.0]], [[0.0, 1.0, 1.0]]]])  # pixels 0, 1, 1 (grey)
    mask = torch.tensor([[[[0.0, 1.0, 1.0]]]])                                          # object: the two 1s
    # image mean 2/3: errors (2/3)^2, (1/3)^2, (1/3)^2 -> mean 6/27; the object's own mean is exact
    assert mean_mse(R.mean_colour(targets), targets) == pytest.approx(6 / 27)
    assert M.image_means(targets, R.object_mean_colour(targets, mask), mask)["fg_l2"] == pytest.approx(0.0)
    # foreground MSE of a black canvas: the two white pixels, 1 each; an image without a mask is left out
    two = torch.cat([targets, targets]), torch.cat([mask, torch.zeros_like(mask)])
    assert M.image_means(two[0], torch.zeros_like(two[0]), two[1])["fg_l2"] == pytest.approx(1.0)
    assert M.foreground_mse(two[0], torch.zeros_like(two[0]), two[1])[1].isnan()


def test_optimum_beats_the_mean_colour_and_is_scored_with_the_real_rasteriser():
    side = 16
    targets = torch.zeros(2, 3, side, side)
    targets[0, 0, 4:12, 4:12] = 1.0                                     # a red square on black
    targets[1, 1:, :, 10:] = 0.8                                        # a cyan band on the right
    strokes, canvas = R.optimum(targets, SoftRasteriser(side), strokes=10, stage=5, steps=40, lr=0.1)
    assert strokes.shape == (2, 10, 13) and 0 <= strokes.min() and strokes.max() <= 1
    assert torch.allclose(canvas, paint(torch.zeros_like(targets), strokes))  # the real rasteriser, in order
    assert mean_mse(canvas, targets) < 0.3 * mean_mse(R.mean_colour(targets), targets)


def test_table_rows_and_markdown():
    targets = half_black_half_white(8).repeat(3, 1, 1, 1)
    table = R.reference_table(targets, torch.ones(3, 1, 8, 8), max_images=2)
    assert list(table) == ["mean_colour", "mosaic_2", "mosaic_4", "mosaic_8", "object_mean_colour"]
    assert table["mean_colour"] == {"reference": "each image's mean colour", "mse": pytest.approx(0.25),
                                    "psnr_db": pytest.approx(10 * math.log10(4)), "images": 2}
    assert table["mosaic_2"]["mse"] == 0.0 and table["mosaic_2"]["psnr_db"] == pytest.approx(100.0)
    lines = markdown(R.as_frame(table)).splitlines()
    assert lines[0] == "| reference | MSE | PSNR dB |" and lines[2] == "| each image's mean colour | 0.25 | 6.021 |"
    assert len(lines) == 2 + len(table)
    small = R.reference_table(half_black_half_white(4), torch.ones(1, 1, 4, 4))  # no 8 x 8 mosaic of 4 px
    assert list(small) == ["mean_colour", "mosaic_2", "mosaic_4", "object_mean_colour"]


# ------------------------------------------------------------------------------------ `semguide references`
def write_tiny_prepared(directory, side=8):
    """Two images, one of them in the test split: half black, half white, the white half the object."""
    images = np.zeros((2, side, side, 3), np.uint8)
    images[:, :, side // 2:] = 255
    masks = (images[..., 0] > 0).astype(np.uint8)
    index = pd.DataFrame({
        "idx": [0, 1], "split": ["train", "test"], "label": [0, 0], "label_name": ["a", "a"],
        "source": ["a.jpg", "b.jpg"], "has_mask": [True, True], "bbox_x": [0.5, 0.5], "bbox_y": [0.0, 0.0],
        "bbox_w": [0.5, 0.5], "bbox_h": [1.0, 1.0], "n_instances": [1, 1]})[INDEX_COLUMNS]
    write_prepared(directory, PreparedDataset(index, images, masks, masks.copy(), np.zeros_like(masks)))


def run_references(tmp_path, *args):
    (tmp_path / "params.yaml").write_text("device: cpu\n")
    return CliRunner().invoke(app, ["references", "--params", str(tmp_path / "params.yaml"),
                                    "--artifacts", str(tmp_path / "artifacts"), *args])


def test_references_command_prints_and_writes_the_table(tmp_path):
    write_tiny_prepared(tmp_path / "artifacts" / "prepared")
    result = run_references(tmp_path, "--no-optimum", "--out", str(tmp_path / "refs.json"))
    assert result.exit_code == 0, result.output
    assert "references on 1 test images" in result.output
    assert "| each image's mean colour | 0.25 | 6.021 |" in result.output
    table = json.loads((tmp_path / "refs.json").read_text())
    assert table["mean_colour"]["mse"] == pytest.approx(0.25) and table["object_mean_colour"]["mse"] == 0.0


def test_references_stage_writes_the_metrics_and_the_table(tmp_path):
    """Stage `references` as dvc.yaml runs it: the flat references (no optimum) as JSON and Markdown."""
    write_tiny_prepared(tmp_path / "artifacts" / "prepared")
    script, *args = stage_command("references")
    done = subprocess.run([sys.executable, str(REPO / script), *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    table = json.loads((tmp_path / "metrics/references.json").read_text())
    assert set(table) == {"mean_colour", "mosaic_2", "mosaic_4", "mosaic_8", "object_mean_colour"}
    assert table["mean_colour"]["mse"] == pytest.approx(0.25) and table["mosaic_2"]["mse"] == 0.0  # halves = cells
    lines = (tmp_path / "metrics/references.md").read_text().splitlines()
    assert lines[0] == "### Reference canvases on the 1 test images" and "| 0.25 | 6.021 |" in lines[4]


@pytest.mark.parametrize("missing", ["prepared", "renderer", "canvas"])
def test_references_command_names_a_missing_or_unfit_artifact_in_one_line(tmp_path, missing):
    if missing != "prepared":
        write_tiny_prepared(tmp_path / "artifacts" / "prepared")
    if missing == "canvas":  # a renderer for 16 px against the 8 px test images
        (tmp_path / "models").mkdir()
        torch.save(renderer_file(NeuralRenderer(16, [8], 4, upsample_blocks=1)), tmp_path / "models" / "renderer.pt")
    result = run_references(tmp_path, "--renderer", str(tmp_path / "models" / "renderer.pt"))
    assert result.exit_code == 1
    expected = {"prepared": "artifacts/prepared/index.csv: not found",
                "renderer": "models/renderer.pt: renderer not found",
                "canvas": "models/renderer.pt: paints 16 px, the prepared test images are 8 px"}[missing]
    assert result.stderr.count("\n") == 1 and expected in result.stderr


def test_weighted_maps_hand_case():
    """Part and GBP-weighted errors (Sec. 7.1's metric): a map in [0, 1] weighs each pixel's squared error."""
    targets = torch.tensor([[[[0.0, 1.0, 1.0]]] * 3])    # pixels 0, 1, 1 (grey)
    canvas = torch.zeros_like(targets)                   # squared errors 0, 1, 1
    mask = torch.tensor([[[[1.0, 1.0, 1.0]]]])
    part = torch.tensor([[[[0.0, 0.0, 1.0]]]])
    gbp = torch.tensor([[[[1.0, 0.5, 0.0]]]])            # weighted mean (0 * 1 + 1 * 0.5) / 1.5 = 1/3
    scores = M.image_means(targets, canvas, mask, part=part, gbp=gbp)
    assert scores["fg_l2"] == pytest.approx(2 / 3)
    assert scores["part_l2"] == pytest.approx(1.0) and scores["gbp_l2"] == pytest.approx(1 / 3)
    # an image whose map is all zero is left out of that map's mean
    two = lambda x: torch.cat([x, x])  # noqa: E731
    none = torch.cat([part, torch.zeros_like(part)])
    assert M.image_means(two(targets), two(canvas), two(mask), part=none)["part_l2"] == pytest.approx(1.0)
