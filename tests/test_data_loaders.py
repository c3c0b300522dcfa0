"""The loaders read tiny fixture trees written in each real layout, and reject bad data by name."""
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from semguide_core.config import Params
from semguide_core.data import cars, cub, vkitti
from semguide_core.data.datasets import DATASETS, list_records
from semguide_core.data.synth import VKITTI_COLOURS, devkit_annotations
from semguide_core.errors import ConfigError, DataError

W, H = 20, 16


def jpeg(path: Path, colour=(200, 100, 50), size=(W, H)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def png(path: Path, image):
    """Save an array or a PIL image as PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    (image if isinstance(image, Image.Image) else Image.fromarray(image)).save(path)


# --------------------------------------------------------------------------------------------- CUB
def write_cub(root: Path, segmentations_beside=False):
    """2 classes, 3 images; image 1: mask = rows 2..7, cols 4..13 (soft value 153 = 3 of 5 annotators)."""
    names = ["001.Black_footed_Albatross", "002.Laysan_Albatross"]
    files = [f"{names[0]}/Black_Footed_Albatross_0001_1.jpg", f"{names[1]}/Laysan_Albatross_0002_2.jpg",
             f"{names[1]}/Laysan_Albatross_0003_3.jpg"]
    (root).mkdir(parents=True)
    (root / "images.txt").write_text("".join(f"{i + 1} {f}\n" for i, f in enumerate(files)))
    (root / "classes.txt").write_text("".join(f"{i + 1} {n}\n" for i, n in enumerate(names)))
    (root / "image_class_labels.txt").write_text("1 1\n2 2\n3 2\n")
    (root / "bounding_boxes.txt").write_text("1 4.0 2.0 10.0 6.0\n2 0.0 0.0 20.0 16.0\n3 5.0 5.0 5.0 5.0\n")
    (root / "train_test_split.txt").write_text("1 1\n2 0\n3 1\n")
    segmentations = (root.parent if segmentations_beside else root) / "segmentations"
    for f in files:
        jpeg(root / "images" / f)
        mask = np.zeros((H, W), np.uint8)
        mask[2:8, 4:14] = 153
        mask[0, 0] = 102  # a minority of annotators: background
        png(segmentations / f.replace(".jpg", ".png"), mask)
    return files


@pytest.mark.parametrize("beside", [False, True])
def test_cub_layout(tmp_path, beside):
    files = write_cub(tmp_path / "CUB_200_2011", segmentations_beside=beside)
    records = cub.load(tmp_path / "CUB_200_2011")
    assert [r.split for r in records] == ["train", "test", "train"]
    assert [r.label for r in records] == [0, 1, 1]
    assert records[1].label_name == "002.Laysan_Albatross"
    assert records[0].source == f"CUB_200_2011/images/{files[0]}"
    pixels = records[0].read()
    assert pixels.image.shape == (H, W, 3) and pixels.image.dtype == np.uint8
    assert pixels.instances.sum() == 60 and pixels.instances[2:8, 4:14].all() and pixels.instances[0, 0] == 0
    assert pixels.bbox == pytest.approx((4 / W, 2 / H, 10 / W, 6 / H))
    assert pixels.part is None


def test_cub_reads_16_bit_png_and_exif_rotated_jpeg_as_paint_does(tmp_path):
    """One reader (images.py) for datasets and `semguide paint`: 16-bit grey is scaled, not clipped to
    white, and an EXIF orientation is applied, so the image matches its mask's size."""
    from semguide_core.images import load_image
    root = tmp_path / "CUB_200_2011"
    files = write_cub(root)
    deep = root / "images" / files[0]
    Image.fromarray(np.full((H, W), 65535 // 4, np.uint16)).save(deep, format="PNG")  # CUB names: .jpg
    upright = np.zeros((H, W, 3), np.uint8)
    upright[:, :W // 2, 0] = 255                      # left half red, right half blue, as displayed
    upright[:, W // 2:, 2] = 255
    exif = Image.Exif()
    exif[0x0112] = 6                                  # orientation: rotate 90 degrees clockwise to display
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)  # W x H on disk becomes H x W
    rotated = root / "images" / files[1]
    stored.save(rotated, format="JPEG", quality=95, exif=exif)
    records = cub.load(root)
    grey = records[0].read().image
    assert grey.shape == (H, W, 3) and abs(int(grey.mean()) - 64) <= 1   # 16383 / 65535 * 255, not 255
    image = records[1].read().image                  # its mask is W x H: a size mismatch if not rotated
    assert image.shape == (H, W, 3)
    assert image[H // 2, 2, 0] > 200 and image[H // 2, W - 3, 2] > 200  # red left, blue right: upright
    painted = load_image(rotated, W)
    assert abs(float(painted[0, H // 2, 2]) - image[H // 2, 2, 0] / 255) < 0.1  # paint reads it the same way


def test_cub_annotations_with_a_byte_order_mark_load(tmp_path):
    root = tmp_path / "CUB_200_2011"
    write_cub(root)
    for name in ("images.txt", "classes.txt", "image_class_labels.txt", "train_test_split.txt"):
        (root / name).write_bytes(b"\xef\xbb\xbf" + (root / name).read_bytes().replace(b"\n", b"\r\n"))
    records = cub.load(root)
    assert [r.label for r in records] == [0, 1, 1] and [r.split for r in records] == ["train", "test", "train"]


def test_cub_split_value_other_than_0_or_1_is_named(tmp_path):
    root = tmp_path / "CUB_200_2011"
    write_cub(root)
    (root / "train_test_split.txt").write_text("1 1\n2 yes\n3 1\n")
    with pytest.raises(DataError, match="train_test_split.txt: image id 2 has is_training_image 'yes', expected 1 or 0"):
        cub.load(root)


def test_cub_missing_annotation_file(tmp_path):
    write_cub(tmp_path / "CUB_200_2011")
    (tmp_path / "CUB_200_2011" / "bounding_boxes.txt").unlink()
    with pytest.raises(DataError, match=r"bounding_boxes\.txt: annotation file not found"):
        cub.load(tmp_path / "CUB_200_2011")


def test_cub_missing_segmentations(tmp_path):
    files = write_cub(tmp_path / "CUB_200_2011")
    (tmp_path / "CUB_200_2011" / "segmentations" / files[2].replace(".jpg", ".png")).unlink()
    with pytest.raises(DataError, match="Laysan_Albatross_0003_3.png: mask not found"):
        cub.load(tmp_path / "CUB_200_2011")[2].read()


def test_corrupt_image_names_file(tmp_path):
    files = write_cub(tmp_path / "CUB_200_2011")
    (tmp_path / "CUB_200_2011" / "images" / files[1]).write_bytes(b"not a jpeg at all")
    with pytest.raises(DataError, match=r"Laysan_Albatross_0002_2\.jpg: cannot read image") as err:
        cub.load(tmp_path / "CUB_200_2011")[1].read()
    assert "\n" not in str(err.value)


def test_truncated_image_names_file(tmp_path):
    files = write_cub(tmp_path / "CUB_200_2011")
    path = tmp_path / "CUB_200_2011" / "images" / files[0]
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (H, W, 3), np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match="Black_Footed_Albatross_0001_1.jpg: cannot read image"):
        cub.load(tmp_path / "CUB_200_2011")[0].read()


def test_mask_size_differs_from_image(tmp_path):
    files = write_cub(tmp_path / "CUB_200_2011")
    png(tmp_path / "CUB_200_2011" / "segmentations" / files[0].replace(".jpg", ".png"), np.zeros((8, 8), np.uint8))
    with pytest.raises(DataError, match=r"0001_1\.png: mask size 8x8 differs from its image 20x16"):
        cub.load(tmp_path / "CUB_200_2011")[0].read()


# -------------------------------------------------------------------------------------------- Cars
def write_cars_devkit(root: Path, labelled_test=True):
    names = np.array(["AM General Hummer SUV 2000", "Acura RL Sedan 2012"], dtype=object)[None]
    (root / "devkit").mkdir(parents=True)
    scipy.io.savemat(root / "devkit" / "cars_meta.mat", {"class_names": names})
    train = [(3, 2, 12, 9, 2, "00001.jpg"), (1, 1, 20, 16, 1, "00002.jpg")]
    test = [(5, 5, 10, 10, 1, "00001.jpg")]
    scipy.io.savemat(root / "devkit" / "cars_train_annos.mat", {"annotations": devkit_annotations(train)})
    scipy.io.savemat(root / "devkit" / "cars_test_annos.mat",
                     {"annotations": devkit_annotations([row[:4] + row[5:] for row in test])})
    if labelled_test:
        scipy.io.savemat(root / "cars_test_annos_withlabels.mat", {"annotations": devkit_annotations(test)})
    for split, rows in [("train", train), ("test", test)]:
        for row in rows:
            jpeg(root / f"cars_{split}" / row[-1])


def test_cars_devkit_layout(tmp_path):
    write_cars_devkit(tmp_path / "stanford_cars")
    records = cars.load(tmp_path / "stanford_cars")
    assert [(r.split, r.label, r.source) for r in records] == [
        ("train", 1, "stanford_cars/cars_train/00001.jpg"), ("train", 0, "stanford_cars/cars_train/00002.jpg"),
        ("test", 0, "stanford_cars/cars_test/00001.jpg")]
    assert records[0].label_name == "Acura RL Sedan 2012"
    pixels = records[0].read()
    assert pixels.instances is None
    # MATLAB box x1=3..x2=12, y1=2..y2=9 (1-based, inclusive) = pixels 2..11 x 1..8
    assert pixels.bbox == pytest.approx((2 / W, 1 / H, 10 / W, 8 / H))
    assert records[1].read().bbox == pytest.approx((0, 0, 1, 1))


def test_cars_unlabelled_test_annotations(tmp_path):
    write_cars_devkit(tmp_path / "stanford_cars", labelled_test=False)
    with pytest.raises(DataError, match=r"cars_test_annos\.mat: annotations lack the field\(s\) class"):
        cars.load(tmp_path / "stanford_cars")


def test_cars_missing_annotation_file(tmp_path):
    write_cars_devkit(tmp_path / "stanford_cars")
    (tmp_path / "stanford_cars" / "devkit" / "cars_train_annos.mat").unlink()
    with pytest.raises(DataError, match=r"cars_train_annos\.mat: annotation file not found"):
        cars.load(tmp_path / "stanford_cars")


def test_cars_all_in_one_layout(tmp_path):
    root = tmp_path / "stanford_cars"
    fields = ["relative_im_path", "bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "test"]
    table = np.zeros((1, 2), dtype=[(f, object) for f in fields])
    table[0, 0] = ("car_ims/000001.jpg", 3, 2, 12, 9, 2, 0)
    table[0, 1] = ("car_ims/000002.jpg", 1, 1, 20, 16, 1, 1)
    root.mkdir()
    scipy.io.savemat(root / "cars_annos.mat", {"annotations": table, "class_names": np.array(
        ["AM General Hummer SUV 2000", "Acura RL Sedan 2012"], dtype=object)[None]})
    jpeg(root / "car_ims" / "000001.jpg")
    jpeg(root / "car_ims" / "000002.jpg")
    records = cars.load(root)
    assert [(r.split, r.label, r.label_name) for r in records] == [
        ("train", 1, "Acura RL Sedan 2012"), ("test", 0, "AM General Hummer SUV 2000")]
    assert records[0].read().bbox == pytest.approx((2 / W, 1 / H, 10 / W, 8 / H))


# ---------------------------------------------------------------------------------------- VKITTI 2
def write_vkitti(root: Path, frames=2):
    """Scene01/clone: a car (track 0) and a van (track 2) on the road, and an instance id on a building
    (not a vehicle: ignored)."""
    sequence = root / "Scene01" / "clone"
    sequence.mkdir(parents=True)
    (sequence / "colors.txt").write_text(
        "Category r g b\n" + "".join(f"{k} {r} {g} {b}\n" for k, (r, g, b) in VKITTI_COLOURS.items()))
    classes = np.zeros((H, W, 3), np.uint8)
    classes[:] = VKITTI_COLOURS["Road"]
    classes[0:4, :] = VKITTI_COLOURS["Building"]
    classes[8:12, 2:6] = VKITTI_COLOURS["Car"]
    classes[9:15, 10:18] = VKITTI_COLOURS["Van"]
    ids = np.zeros((H, W), np.uint8)
    ids[8:12, 2:6] = 1
    ids[9:15, 10:18] = 3
    ids[0:2, 0:2] = 5
    for f in range(frames):
        jpeg(sequence / "frames" / "rgb" / "Camera_0" / f"rgb_{f:05d}.jpg")
        png(sequence / "frames" / "classSegmentation" / "Camera_0" / f"classgt_{f:05d}.png", classes)
        instance = Image.fromarray(ids, "L").convert("P")  # VKITTI 2 stores track ids in a palette PNG
        instance.putpalette(list(range(256)) * 3)
        png(sequence / "frames" / "instanceSegmentation" / "Camera_0" / f"instancegt_{f:05d}.png", instance)


def test_vkitti_layout(tmp_path):
    write_vkitti(tmp_path / "vkitti2", frames=4)
    records = vkitti.load(tmp_path / "vkitti2", test_fraction=0.25)
    assert [r.split for r in records] == ["train", "train", "train", "test"]
    assert {r.label_name for r in records} == {"Scene01"} and records[0].label == 0
    assert records[0].source == "vkitti2/Scene01/clone/frames/rgb/Camera_0/rgb_00000.jpg"
    pixels = records[0].read()
    assert pixels.bbox is None
    assert pixels.instances.max() == 2
    assert (pixels.instances == 1).sum() == 16 and (pixels.instances == 2).sum() == 48
    assert pixels.instances[0:2, 0:2].sum() == 0  # the building's id is not a vehicle


def test_vkitti_missing_colors(tmp_path):
    write_vkitti(tmp_path / "vkitti2")
    (tmp_path / "vkitti2" / "Scene01" / "clone" / "colors.txt").unlink()
    with pytest.raises(DataError, match=r"colors\.txt: annotation file not found"):
        vkitti.load(tmp_path / "vkitti2", 0.25)


def test_vkitti_instance_size_differs(tmp_path):
    write_vkitti(tmp_path / "vkitti2")
    png(tmp_path / "vkitti2/Scene01/clone/frames/instanceSegmentation/Camera_0/instancegt_00001.png",
        np.zeros((4, 4), np.uint8))
    with pytest.raises(DataError, match=r"instancegt_00001\.png: instance segmentation size 4x4 differs"):
        vkitti.load(tmp_path / "vkitti2", 0.25)[1].read()


# ---------------------------------------------------------------------------------------- registry
def test_unknown_dataset_name(tmp_path):
    with pytest.raises(ConfigError, match="dataset = 'birds': unknown"):
        list_records("birds", tmp_path, 0.25)


def test_config_accepts_exactly_the_registered_names():
    field = Params.__dataclass_fields__["dataset"]
    assert sorted(field.metadata["choices"]) == sorted(DATASETS)


def test_missing_dataset_folder(tmp_path):
    with pytest.raises(DataError, match="CUB_200_2011: dataset folder for 'cub' not found"):
        list_records("cub", tmp_path, 0.25)
