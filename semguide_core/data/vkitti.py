"""Virtual KITTI 2 (Cabon et al. 2020): vehicles of Camera_0 as foreground instances.

    vkitti2/Scene01/clone/colors.txt         "Category r g b" header, then e.g. "Car 255 127 80"
    vkitti2/Scene01/clone/frames/rgb/Camera_0/rgb_00000.jpg
    vkitti2/Scene01/clone/frames/classSegmentation/Camera_0/classgt_00000.png
                                             RGB, in the colours of colors.txt
    vkitti2/Scene01/clone/frames/instanceSegmentation/Camera_0/instancegt_00000.png
                                             one channel (palette PNG): trackID + 1, 0 = no instance
(scenes Scene01/02/06/18/20; variations clone, fog, morning, overcast, rain, sunset, 15/30-deg-left/right;
the rgb, classSegmentation, instanceSegmentation and textgt archives extracted into the same tree).

Foreground = instance pixels whose class is a vehicle (VEHICLES); each track is one instance, numbered
1..k by trackID. VKITTI has no official split: the last `test_fraction` of the frames of every
scene/variation sequence are the test split (whole blocks, so near-identical neighbouring frames rarely
straddle the split). The label is the scene (Scene01 -> 0, ...): the paper's VKITTI expert is an ImageNet
classifier, so the label is bookkeeping only.
"""
from __future__ import annotations

import re
from functools import partial
from pathlib import Path

import numpy as np

from semguide_core.data.record import Pixels, Record, read_label_image, read_lines
from semguide_core.errors import DataError
from semguide_core.images import read_rgb

VEHICLES = ("Car", "Van", "Truck")
FRAME = re.compile(r"rgb_(\d+)\.jpg$")


def load(root: Path, test_fraction: float) -> list[Record]:
    sequences = sorted(p.parents[2] for p in root.glob("Scene*/*/frames/rgb/Camera_0"))
    if not sequences:
        raise DataError(f"{root}: no Scene*/<variation>/frames/rgb/Camera_0 folders")
    scenes = sorted({sequence.parent.name for sequence in sequences})
    records = []
    for sequence in sequences:
        colours = _vehicle_colours(sequence / "colors.txt")
        frames = sorted((sequence / "frames" / "rgb" / "Camera_0").glob("rgb_*.jpg"))
        n_test = int(round(len(frames) * test_fraction))
        for position, rgb in enumerate(frames):
            number = FRAME.search(rgb.name).group(1)
            frames_dir = sequence / "frames"
            records.append(Record(
                source=str(rgb.relative_to(root.parent)),
                split="test" if position >= len(frames) - n_test else "train",
                label=scenes.index(sequence.parent.name),
                label_name=sequence.parent.name,
                read=partial(_read, rgb, frames_dir / "classSegmentation" / "Camera_0" / f"classgt_{number}.png",
                             frames_dir / "instanceSegmentation" / "Camera_0" / f"instancegt_{number}.png",
                             colours),
            ))
    return records


def _vehicle_colours(path: Path) -> np.ndarray:
    """The RGB colours of the vehicle classes in this sequence's colors.txt, as [n, 3]."""
    rows = [row for row in read_lines(path, 4) if row[0] != "Category"]
    try:
        colours = [[int(v) for v in row[1:]] for row in rows if row[0] in VEHICLES]
    except ValueError:
        raise DataError(f"{path}: colours must be three integers per line") from None
    if not colours:
        raise DataError(f"{path}: none of the vehicle classes {', '.join(VEHICLES)} listed")
    return np.array(colours, dtype=np.uint8)


def _read(rgb: Path, classgt: Path, instancegt: Path, vehicle_colours: np.ndarray) -> Pixels:
    image = read_rgb(rgb)
    size = (image.shape[1], image.shape[0])
    classes = np.asarray(read_label_image(classgt, size, "class segmentation").convert("RGB"))
    ids = read_label_image(instancegt, size, "instance segmentation")
    if ids.mode not in ("P", "L", "I", "I;16"):
        raise DataError(f"{instancegt}: expected one channel of track ids, got mode {ids.mode}")
    ids = np.asarray(ids).astype(np.int64)
    is_vehicle = (classes[:, :, None, :] == vehicle_colours[None, None]).all(-1).any(-1)
    ids = np.where(is_vehicle, ids, 0)
    tracks = [t for t in np.unique(ids) if t > 0][:255]
    instances = np.zeros(ids.shape, np.uint8)
    for k, track in enumerate(tracks, start=1):
        instances[ids == track] = k
    return Pixels(image=image, instances=instances, bbox=None)
