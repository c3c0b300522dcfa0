"""Stage `prepare`: resizing, selection, bad input, and the stage end to end."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from semguide_core.data.prepare import prepare, resize_labels, select
from semguide_core.data.prepared import load_prepared
from semguide_core.data.record import Pixels, Record
from semguide_core.errors import DataError

from conftest import stage_command
from test_data_loaders import write_cub

REPO = Path(__file__).resolve().parents[1]


def record(split="train", instances=None, bbox=None, label=0, part=None):
    image = np.full((8, 8, 3), 100, np.uint8)
    pixels = Pixels(image=image, instances=instances, bbox=bbox, part=part)
    return Record(source=f"x/{split}.jpg", split=split, label=label, label_name=f"c{label}", read=lambda: pixels)


def test_resize_labels_majority_and_renumbering():
    labels = np.zeros((4, 4), np.uint8)
    labels[0:2, 0:2] = 3          # a whole top-left block: survives, renumbered 1
    labels[3, 3] = 5              # one pixel of four: background wins, instance gone
    labels[2, 0:2] = 7            # 3 of the 4 pixels of the bottom-left block: instance wins, renumbered 2
    labels[3, 0] = 7
    assert resize_labels(labels, 2).tolist() == [[1, 0], [2, 0]]


def test_select_spreads_through_the_list():
    records = [record(label=i) for i in range(10)]
    assert [r.label for r in select(records, 4)] == [0, 3, 6, 9]
    assert select(records, 0) is records and len(select(records, 50)) == 10


def test_prepare_masks_boxes_and_drops():
    mask = np.zeros((8, 8), np.uint8)
    mask[2:6, 4:8] = 1
    records = [record("train", mask, bbox=None), record("test", None, bbox=(0.1, 0.2, 0.3, 0.4), label=1),
               record("train", np.zeros((8, 8), np.uint8))]  # no foreground: dropped
    ds, dropped = prepare(records, canvas=4, where="test")
    assert dropped == 1 and len(ds) == 2 and ds.images.shape == (2, 4, 4, 3)
    assert ds.index["has_mask"].tolist() == [True, False]
    assert ds.masks[0].tolist() == [[0, 0, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 0, 0]]
    assert ds.masks[1].sum() == 0 and ds.index["n_instances"].tolist() == [1, 0]
    row0, row1 = ds.index.iloc[0], ds.index.iloc[1]
    assert (row0.bbox_x, row0.bbox_y, row0.bbox_w, row0.bbox_h) == (0.5, 0.25, 0.5, 0.5)  # box of the mask
    assert (row1.bbox_x, row1.bbox_y, row1.bbox_w, row1.bbox_h) == (0.1, 0.2, 0.3, 0.4)  # annotated box


def test_empty_split_is_an_error():
    with pytest.raises(DataError, match="mine: the test split is empty"):
        prepare([record("train", None, (0, 0, 1, 1))], canvas=4, where="mine")


def run_stage(cwd: Path) -> subprocess.CompletedProcess:
    """Stage prepare in `cwd` with the paths its cmd in dvc.yaml passes."""
    script, *args = stage_command("prepare")
    return subprocess.run([sys.executable, str(REPO / script), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def test_stage_bad_data_one_line_and_nothing_written(tmp_path):
    files = write_cub(tmp_path / "data" / "cub-copy")
    (tmp_path / "data" / "cub-copy").rename(tmp_path / "data" / "sample-birds")
    (tmp_path / "data" / "sample-birds" / "images" / files[1]).write_bytes(b"garbage")
    (tmp_path / "params.yaml").write_text("dataset: sample-birds\ncanvas: 16\n")
    result = run_stage(tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "Laysan_Albatross_0002_2.jpg: cannot read image" in result.stderr
    assert not (tmp_path / "artifacts").exists() and not (tmp_path / "metrics").exists()
    assert not (tmp_path / "figures").exists()


@pytest.mark.parametrize("box", ["3 4.0 2.0 -5.0 6.0", "3 40.0 30.0 5.0 5.0"])  # negative width; outside
def test_stage_bad_bbox_one_line_and_previous_outputs_untouched(tmp_path, box):
    root = tmp_path / "data" / "sample-birds"
    write_cub(root)
    (tmp_path / "params.yaml").write_text("dataset: sample-birds\ncanvas: 16\n")
    assert run_stage(tmp_path).returncode == 0
    outputs = [tmp_path / "artifacts/prepared/index.csv", tmp_path / "metrics/data.json",
               tmp_path / "figures/contact_sheet.png"]
    before = [path.read_bytes() for path in outputs]
    lines = (root / "bounding_boxes.txt").read_text().splitlines()
    (root / "bounding_boxes.txt").write_text("\n".join(lines[:2] + [box]) + "\n")
    result = run_stage(tmp_path)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert result.returncode == 1 and len(errors) == 1 and "Laysan_Albatross_0003_3.jpg: bounding box" in errors[0]
    assert [path.read_bytes() for path in outputs] == before


def test_stage_unknown_dataset(tmp_path):
    (tmp_path / "params.yaml").write_text("dataset: imagenet\n")
    result = run_stage(tmp_path)
    assert result.returncode == 1 and "dataset = 'imagenet'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_fresh_clone_pulls_offline_and_reproduces_prepare(tmp_path):
    """The README's route: clone, `dvc pull` from the remote inside the repo, `dvc repro prepare`."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    for name in ("dvc.yaml", "params.yaml", "stages/prepare.py"):  # the working tree's (maybe uncommitted)
        shutil.copy(REPO / name, clone / name)
    params = yaml.safe_load((clone / "params.yaml").read_text())
    params["prepare"]["max_images"] = 40
    (clone / "params.yaml").write_text(yaml.safe_dump(params))
    dvc = [sys.executable, "-m", "dvc"]
    subprocess.run(dvc + ["pull", "-q", "data.dvc"], cwd=clone, check=True, timeout=300)
    assert (clone / "data" / "sample-birds" / "images.txt").is_file()
    result = subprocess.run(dvc + ["repro", "prepare"], cwd=clone, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    ds = load_prepared(clone / "artifacts" / "prepared")
    metrics = json.loads((clone / "metrics" / "data.json").read_text())
    assert len(ds) == metrics["n_images"] == 40 and metrics["n_classes"] == 8
    assert ds.canvas == params["canvas"] and ds.parts.any()
    assert (clone / "figures" / "contact_sheet.png").stat().st_size > 0
