"""The sample generator: deterministic from its seed, and the properties the later stages rely on."""
import filecmp

import numpy as np
import pytest
import scipy.io
from PIL import Image

from semguide_core.data import cars, cub, vkitti
from semguide_core.data.record import mask_box
from semguide_core.data.synth import (BIRD_SPECIES, CAR_STYLES, VARIATIONS, VKITTI_COLOURS, synth, write_birds,
                                       write_cars, write_scenes)

N_BIRDS = 24  # 3 per species


@pytest.fixture(scope="module")
def birds(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "sample-birds"
    write_birds(root, seed=3, count=N_BIRDS)
    return root


def same_tree(a, b) -> bool:
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    return files_a == files_b and all(filecmp.cmp(a / f, b / f, shallow=False) for f in files_a)


def test_deterministic_from_seed(tmp_path):
    """Byte for byte, all three samples (so `synth` reproduces the tracked data/ exactly)."""
    for name, seed in [("one", 3), ("again", 3), ("other", 4)]:
        synth(tmp_path / name, seed=seed, birds=8, cars=6, scenes=15)
    assert same_tree(tmp_path / "one", tmp_path / "again")
    for sample in ("sample-birds", "sample-cars", "sample-cars-truth", "sample-scenes"):
        assert not same_tree(tmp_path / "one" / sample, tmp_path / "other" / sample)


def test_birds_properties(birds):
    records = cub.load(birds)
    assert len(records) == N_BIRDS
    assert {r.label for r in records} == set(range(len(BIRD_SPECIES))) and len(BIRD_SPECIES) >= 8
    for split in ("train", "test"):  # every species in both splits
        assert {r.label for r in records if r.split == split} == set(range(len(BIRD_SPECIES)))
    box_areas = []
    for record in records:
        pixels = record.read()
        mask, part = pixels.instances > 0, pixels.part
        height, width = mask.shape
        assert 128 < height and 128 < width, "a little bigger than the paper's 128 px canvas"
        assert pixels.bbox == pytest.approx(mask_box(mask))  # bounding_boxes.txt agrees with the mask
        assert part.any() and not (part & ~mask).any()        # the part is inside the object
        assert 0.01 < mask.mean() < 0.45
        box_areas.append(pixels.bbox[2] * pixels.bbox[3])
    assert 0.04 <= min(box_areas) and max(box_areas) <= 0.62
    assert max(box_areas) / min(box_areas) > 3, "scales should vary widely"


def test_cars_layout_and_truth_outside(tmp_path):
    write_cars(tmp_path / "sample-cars", tmp_path / "sample-cars-truth", seed=0, count=12)
    records = cars.load(tmp_path / "sample-cars")
    assert len(records) == 12 and {r.label for r in records} == set(range(len(CAR_STYLES)))
    assert {r.split for r in records} == {"train", "test"}
    assert not list((tmp_path / "sample-cars").rglob("*.png")), "no masks inside the Cars dataset"
    # the devkit's own test annotations carry no class, as published
    devkit_test = scipy.io.loadmat(tmp_path / "sample-cars" / "devkit" / "cars_test_annos.mat")["annotations"]
    assert "class" not in devkit_test.dtype.names
    for record in records:
        truth = np.asarray(Image.open(tmp_path / "sample-cars-truth" / record.source.split("/", 1)[1]
                                      .replace(".jpg", ".png"))) > 0
        assert record.read().bbox == pytest.approx(mask_box(truth))


def test_scenes_instances_and_variations(tmp_path):
    write_scenes(tmp_path / "sample-scenes", seed=0, count=15)
    records = vkitti.load(tmp_path / "sample-scenes", test_fraction=0.0)
    assert len(records) == 15
    vehicle_colours = [VKITTI_COLOURS[k] for k in vkitti.VEHICLES]
    for record in records:
        instances = record.read().instances
        assert 2 <= instances.max() <= 6
        assert set(np.unique(instances)) == set(range(instances.max() + 1))
    frames = tmp_path / "sample-scenes" / "Scene01"
    ids = [np.asarray(Image.open(frames / v / "frames/instanceSegmentation/Camera_0/instancegt_00000.png"))
           for v in VARIATIONS]
    assert all(np.array_equal(ids[0], other) for other in ids[1:]), "variations share the geometry"
    classes = np.asarray(Image.open(frames / "clone/frames/classSegmentation/Camera_0/classgt_00000.png"))
    on_instances = classes[ids[0] > 0]
    assert all(tuple(c) in vehicle_colours for c in np.unique(on_instances, axis=0))


def test_synth_into_an_existing_file_is_one_line_error(tmp_path):
    from typer.testing import CliRunner

    from semguide_core.cli import app
    (tmp_path / "data").write_text("not a folder")
    result = CliRunner().invoke(app, ["data", "synth", "--out", str(tmp_path / "data")])
    assert result.exit_code == 1 and result.output.strip() == f"error: {tmp_path / 'data'}: exists and is not a folder"
