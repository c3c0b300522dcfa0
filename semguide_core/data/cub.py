"""CUB-200-2011 (Wah et al. 2011) in its published layout, plus its separately published segmentations.

    CUB_200_2011/
      images.txt              <image_id> <path under images/>
      classes.txt             <class_id> <class_name>          (class ids 1..200)
      image_class_labels.txt  <image_id> <class_id>
      bounding_boxes.txt      <image_id> <x> <y> <width> <height>   (pixels, top-left corner)
      train_test_split.txt    <image_id> <is_training_image>   (the official split: 1 = train, 0 = test)
      images/<class_name>/<name>.jpg
      segmentations/<class_name>/<name>.png    (segmentations.tgz; also accepted beside CUB_200_2011/)
      part_masks/<class_name>/<name>.png       (sample-birds only: the distinguishing part)

Segmentation PNGs are soft (annotator agreement 0..255); a pixel is foreground above half.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path

from semguide_core.data.record import Pixels, Record, pixel_box, read_lines, read_mask
from semguide_core.errors import DataError
from semguide_core.images import read_rgb


def load(root: Path) -> list[Record]:
    """Every image of a CUB-layout folder, with the official train/test split."""
    images = dict(read_lines(root / "images.txt", 2))
    class_names = dict(read_lines(root / "classes.txt", 2))
    labels = dict(read_lines(root / "image_class_labels.txt", 2))
    boxes = {i: fields for i, *fields in read_lines(root / "bounding_boxes.txt", 5)}
    is_train = dict(read_lines(root / "train_test_split.txt", 2))
    segmentations = _segmentations_dir(root)
    parts = root / "part_masks"
    records = []
    for image_id, relative in images.items():
        for name, table in [("image_class_labels.txt", labels), ("bounding_boxes.txt", boxes),
                            ("train_test_split.txt", is_train)]:
            if image_id not in table:
                raise DataError(f"{root / name}: no line for image id {image_id}")
        class_id = labels[image_id]
        if class_id not in class_names:
            raise DataError(f"{root / 'image_class_labels.txt'}: class id {class_id} not in classes.txt")
        mask_name = Path(relative).with_suffix(".png")
        records.append(Record(
            source=str((root / "images" / relative).relative_to(root.parent)),
            split=_split(is_train[image_id], root / "train_test_split.txt", image_id),
            label=int(class_id) - 1,
            label_name=class_names[class_id],
            read=partial(_read, root / "images" / relative, segmentations / mask_name,
                         parts / mask_name if parts.is_dir() else None, boxes[image_id]),
        ))
    return records


def _split(is_training_image: str, path: Path, image_id: str) -> str:
    if is_training_image not in ("0", "1"):
        raise DataError(f"{path}: image id {image_id} has is_training_image {is_training_image!r}, expected 1 or 0")
    return "train" if is_training_image == "1" else "test"


def _segmentations_dir(root: Path) -> Path:
    for candidate in (root / "segmentations", root.parent / "segmentations"):
        if candidate.is_dir():
            return candidate
    raise DataError(f"{root / 'segmentations'}: not found (extract CUB's segmentations.tgz there or beside "
                    f"{root.name})")


def _read(image_path: Path, mask_path: Path, part_path: Path | None, box: list[str]) -> Pixels:
    image = read_rgb(image_path)
    height, width = image.shape[:2]
    mask = read_mask(mask_path, (width, height))
    part = read_mask(part_path, (width, height)) if part_path is not None else None
    try:
        bbox = pixel_box(*map(float, box), width, height)
    except ValueError:
        raise DataError(f"{image_path}: bounding box {' '.join(box)} is not four numbers") from None
    return Pixels(image=image, instances=mask.astype("uint8"), bbox=bbox, part=part)
