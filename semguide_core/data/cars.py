"""Stanford Cars-196 (Krause et al. 2013): images with a bbox and a class, no masks.

Two published layouts are read (MATLAB .mat files, via scipy):

devkit layout (car_devkit.tgz + cars_train.tgz + cars_test.tgz + the test labels released later):

    stanford_cars/
      devkit/cars_meta.mat                class_names (1 x 196)
      devkit/cars_train_annos.mat         annotations: bbox_x1 bbox_y1 bbox_x2 bbox_y2 class fname
      cars_test_annos_withlabels.mat      the same fields for the test images (also looked for in devkit/;
                                          devkit/cars_test_annos.mat is used when it carries `class`)
      cars_train/00001.jpg ...   cars_test/00001.jpg ...

all-in-one layout (car_ims.tgz + cars_annos.mat):

    stanford_cars/
      cars_annos.mat     annotations: relative_im_path bbox_x1 bbox_y1 bbox_x2 bbox_y2 class test; class_names
      car_ims/000001.jpg ...

Boxes are MATLAB pixel indices, 1-based and inclusive; classes are 1..196.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import scipy.io

from semguide_core.data.record import Pixels, Record, pixel_box
from semguide_core.errors import DataError
from semguide_core.images import read_rgb

BOX_FIELDS = ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2")


def load(root: Path) -> list[Record]:
    if (root / "cars_annos.mat").is_file():
        return _load_all_in_one(root)
    class_names = _class_names(root / "devkit" / "cars_meta.mat")
    test_annos = next((p for p in (root / "cars_test_annos_withlabels.mat",
                                   root / "devkit" / "cars_test_annos_withlabels.mat",
                                   root / "devkit" / "cars_test_annos.mat") if p.is_file()),
                      root / "cars_test_annos_withlabels.mat")
    records = []
    for split, annos_path, folder in [("train", root / "devkit" / "cars_train_annos.mat", "cars_train"),
                                      ("test", test_annos, "cars_test")]:
        for row in _annotations(annos_path, ("fname", "class") + BOX_FIELDS):
            records.append(_record(root, root / folder / str(row["fname"]), split, row, class_names, annos_path))
    return records


def _load_all_in_one(root: Path) -> list[Record]:
    path = root / "cars_annos.mat"
    class_names = _class_names(path)
    return [_record(root, root / str(row["relative_im_path"]), "test" if int(row["test"]) else "train",
                    row, class_names, path)
            for row in _annotations(path, ("relative_im_path", "class", "test") + BOX_FIELDS)]


def _record(root: Path, image_path: Path, split: str, row, class_names: list[str], annos_path: Path) -> Record:
    class_id = int(row["class"])
    if not 1 <= class_id <= len(class_names):
        raise DataError(f"{annos_path}: class {class_id} of {image_path.name} is outside 1..{len(class_names)}")
    box = [float(row[name]) for name in BOX_FIELDS]
    return Record(source=str(image_path.relative_to(root.parent)), split=split, label=class_id - 1,
                  label_name=class_names[class_id - 1], read=partial(_read, image_path, box))


def _read(image_path: Path, box: list[float]) -> Pixels:
    image = read_rgb(image_path)
    x1, y1, x2, y2 = box
    bbox = pixel_box(x1 - 1, y1 - 1, x2 - x1 + 1, y2 - y1 + 1, image.shape[1], image.shape[0])
    return Pixels(image=image, instances=None, bbox=bbox)


def _load_mat(path: Path) -> dict:
    if not path.is_file():
        raise DataError(f"{path}: annotation file not found")
    try:
        return scipy.io.loadmat(path, squeeze_me=True)
    except Exception as err:  # scipy raises several kinds for a file that is not a .mat
        raise DataError(f"{path}: cannot read .mat file ({type(err).__name__})") from None


def _annotations(path: Path, fields: tuple[str, ...]) -> np.ndarray:
    mat = _load_mat(path)
    if "annotations" not in mat:
        raise DataError(f"{path}: no 'annotations' variable")
    rows = np.atleast_1d(mat["annotations"])
    missing = [f for f in fields if f not in (rows.dtype.names or ())]
    if missing:
        hint = " (the test labels are in cars_test_annos_withlabels.mat)" if "class" in missing else ""
        raise DataError(f"{path}: annotations lack the field(s) {', '.join(missing)}{hint}")
    return rows


def _class_names(path: Path) -> list[str]:
    mat = _load_mat(path)
    if "class_names" not in mat:
        raise DataError(f"{path}: no 'class_names' variable")
    return [str(name) for name in np.atleast_1d(mat["class_names"])]
